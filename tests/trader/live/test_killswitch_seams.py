"""The kill switch across processes: ``trader kill --config X`` reaches the daemon that
``trader run --config X`` started, and the switch fails safe at the next start (a missing
flag file while the store says engaged stays engaged; a corrupt one refuses the start)."""

from __future__ import annotations

import datetime as dt
import signal
import time

import pytest
from daemon_harness import events, log_lines, run_cli, start_daemon, write_config

from trader.live.status import read_snapshot

BUSY = [{"name": "btc_busy", "model": "SmaCross", "stage": "paper", "budget": 0.8,
         "instruments": ["BTCUSD"], "timeframe": "1h",
         "params": {"fast": 2, "slow": 4, "allow_short": True}}]


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for name in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _t(line: dict) -> float:
    return dt.datetime.fromisoformat(line["time"]).timestamp()


def test_trader_kill_with_the_config_stops_the_daemon_within_a_second(tmp_path):
    cfg = write_config(tmp_path, speed=360_000, exit_at_end=False, data_end=None, models=BUSY)
    data_dir = tmp_path / "data"  # daemon.data_dir of the config: no --data-dir anywhere
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    proc, log_path = start_daemon(cfg)
    try:
        deadline = time.monotonic() + 30
        snap: dict = {}
        while time.monotonic() < deadline and snap.get("orders_submitted", 0) < 3:
            snap = read_snapshot(data_dir) or {}
            time.sleep(0.05)
        assert snap.get("orders_submitted", 0) >= 3  # it trades before the switch
        res = run_cli("kill", "--config", str(cfg), "--reason", "test: stop now", cwd=elsewhere)
        engaged_at = time.time()
        assert res.returncode == 0, res.stderr
        assert "ENGAGED" in res.stdout and str(data_dir / "kill_switch.json") in res.stdout
        time.sleep(1.5)
        status = run_cli("status", "--config", str(cfg), cwd=elsewhere)
        assert "kill switch ENGAGED" in status.stdout, status.stdout
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = log_lines(log_path)
    noticed = [x for x in events(lines, "kill_switch_engaged") if "reason" in x]
    assert noticed and _t(noticed[0]) - engaged_at < 1.0
    late = [x for x in events(lines, "order_submitted")
            if _t(x) > engaged_at + 1.0 and not x["reduce_only"]]
    assert late == []


def test_a_vanished_flag_file_stays_engaged_at_the_next_start(tmp_path):
    cfg = write_config(tmp_path, start="2018-08-20", models=BUSY)
    data_dir = tmp_path / "data"
    res = run_cli("kill", "--config", str(cfg), "--reason", "test: broker outage")
    assert res.returncode == 0, res.stderr
    flag = data_dir / "kill_switch.json"
    flag.unlink()  # lost (a cleanup, a restore): the store row still says engaged
    proc, log_path = start_daemon(cfg)
    assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    lines = log_lines(log_path)
    [at_start] = events(lines, "kill_switch_engaged_at_start")
    assert at_start["reason"] == "test: broker outage"
    assert events(lines, "order_submitted") == []  # the busy model traded nothing
    assert read_snapshot(data_dir)["kill_switch"] is True
    assert flag.exists()  # written back, so the file and the store agree
    shown = run_cli("kill", "--status", "--config", str(cfg))
    assert shown.returncode == 0 and "ENGAGED" in shown.stdout and "broker outage" in shown.stdout

    # Released on purpose, the same session config trades again.
    assert run_cli("kill", "--release", "--config", str(cfg), "--reason", "test: fixed"
                   ).returncode == 0
    proc, log_path = start_daemon(cfg, log_path=tmp_path / "again.log")
    assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    assert events(log_lines(log_path), "order_submitted")


def test_a_corrupt_flag_file_refuses_the_start(tmp_path):
    cfg = write_config(tmp_path, start="2018-09-10", models=BUSY)
    flag = tmp_path / "data" / "kill_switch.json"
    flag.write_text('{"engaged": tru')  # torn by hand editing
    res = run_cli("run", "--config", str(cfg), "--mode", "paper")
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert err.startswith("error: ") and str(flag) in err
    assert "Traceback" not in res.stderr and "\n\n" not in err
    assert flag.read_text() == '{"engaged": tru'  # left for the operator to look at
    assert "order_submitted" not in res.stdout
