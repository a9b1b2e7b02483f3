"""A bad bar on the replay-as-live feed is a health event the daemon records: the session
no longer reports healthy (``trader status --check`` exits 1) and ``trader status`` says why.

Runs ``python -m trader.cli run`` on the shipped BTC hourly file with one row made bad
(high < low) and ``data.on_bad_row: error``; small read batches put the bad row in the
live part of the stream, after READY.
"""

from __future__ import annotations

import signal
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from daemon_harness import (
    DATA,
    events,
    log_lines,
    register_stages,
    run_cli,
    start_daemon,
    write_config,
)

from trader.live.status import read_snapshot

BAD_TS = pd.Timestamp("2018-08-20 05:00", tz="UTC")


def _bad_btc_config(tmp_path: Path, *, exit_at_end: bool, kind: str) -> Path:
    df = pd.read_parquet(DATA / "btcusd_1h.parquet")
    df = df[(df.ts >= "2018-06-01") & (df.ts < "2018-09-15")].reset_index(drop=True)
    i = int(df.index[df.ts == BAD_TS][0])
    if kind == "high_below_low":
        df.loc[i, "high"] = df.loc[i, "low"] - 10.0
    else:
        df.loc[i, "close"] = float("nan")
    bad = tmp_path / "btc_bad.parquet"
    df.to_parquet(bad)
    models = [{"name": "btc_fast", "model": "SmaCross", "stage": "paper", "budget": 0.5,
               "instruments": ["BTCUSD"], "timeframe": "1h", "params": {"fast": 3, "slow": 8}}]
    path = write_config(tmp_path, exit_at_end=exit_at_end, models=models, register=False)
    cfg = yaml.safe_load(path.read_text())
    cfg["instruments"] = [dict(cfg["instruments"][0], data={"path": str(bad), "timeframe": "1h"})]
    cfg["data"].update(on_bad_row="error", batch_size=64)
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    register_stages(path)
    return path


def _wait(pred, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return False


@pytest.mark.parametrize("kind", ["high_below_low", "nan"])
def test_bad_bar_makes_status_check_fail_and_status_show_the_feed(tmp_path, kind):
    cfg = _bad_btc_config(tmp_path, exit_at_end=False, kind=kind)
    data_dir = tmp_path / "data"
    proc, log_path = start_daemon(cfg)
    try:
        assert _wait(lambda: (read_snapshot(data_dir) or {}).get("feed_failed"), 30), \
            log_path.read_text()[-3000:]
        snap = read_snapshot(data_dir)
        assert proc.poll() is None  # the daemon keeps running: positions, kill switch, status
        assert snap["state"] == "trading"
        assert "feed failed" in snap["feed_failed"] and "row" in snap["feed_failed"]
        assert snap["feeds"]["replay"]["state"] == "disconnected"
        assert snap["feeds"]["replay"]["ts"].startswith("2018-08-20")  # the last good bar
        check = run_cli("status", "--config", str(cfg), "--check")
        assert check.returncode == 1, check.stdout
        shown = run_cli("status", "--config", str(cfg))
        assert shown.returncode == 0, shown.stderr
        assert "market data FAILED" in shown.stdout
        assert "gateway health" in shown.stdout and "disconnected" in shown.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    [failed] = events(log_lines(log_path), "market_data_failed")
    assert failed["gateway"] == "replay"


def test_a_healthy_feed_end_is_not_a_failure_but_a_bad_bar_stops_with_exit_2(tmp_path):
    # exit_at_end: the end of a good file is a clean stop (0); a bad bar is bad data (2).
    (tmp_path / "good").mkdir()
    good = write_config(tmp_path / "good", exit_at_end=True, start="2018-09-10")
    proc, log_path = start_daemon(good)
    assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    snap = read_snapshot(tmp_path / "good" / "data")
    assert snap["feed_failed"] == "" and snap["feeds"]["replay"]["reason"] == "feed ended"

    bad = _bad_btc_config(tmp_path, exit_at_end=True, kind="high_below_low")
    proc, log_path = start_daemon(bad)
    assert proc.wait(timeout=60) == 2, log_path.read_text()[-3000:]
    assert events(log_lines(log_path), "replay_failed_stopping")
    assert run_cli("status", "--config", str(bad), "--check").returncode == 1
