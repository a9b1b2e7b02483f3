"""The kill switch engaged from another process stops new exposure within a second."""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
import time

import pytest
from daemon_harness import NotifyListener, events, log_lines, run_cli, start_daemon, write_config

from trader.live.journal import JournalControl, read_journal
from trader.live.journal_replay import replay_journal
from trader.live.status import read_snapshot


def _engage_with_trader_kill(data_dir) -> None:
    res = run_cli("kill", "--data-dir", str(data_dir), "--reason", "test: stop now")
    assert res.returncode == 0, res.stderr


def _engage_the_store_row(data_dir) -> None:
    # Another process flips the kill switch row in the daemon's database.
    code = ("import sys; from risk.killswitch import DatabaseBackend, KillSwitch; "
            "from trader.store import open_store; "
            "s = open_store(None, sys.argv[1], migrate=False); "
            "KillSwitch(DatabaseBackend(s)).engage('test: stop now', who='test'); s.close()")
    subprocess.run([sys.executable, "-c", code, str(data_dir)], check=True, timeout=30)


def _t(line) -> float:
    return dt.datetime.fromisoformat(line["time"]).timestamp()


@pytest.mark.parametrize("engage", [_engage_with_trader_kill, _engage_the_store_row],
                         ids=["flag_file", "store_row"])
def test_kill_switch_from_another_process_stops_orders_within_a_second(tmp_path, engage):
    models = [{"name": "btc_busy", "model": "SmaCross", "stage": "paper", "budget": 0.8,
               "instruments": ["BTCUSD"], "timeframe": "1h",
               "params": {"fast": 2, "slow": 4, "allow_short": True}}]
    cfg = write_config(tmp_path, speed=360_000, exit_at_end=False, data_end=None, models=models)
    data_dir = tmp_path / "data"
    listener = NotifyListener()
    try:
        proc, log_path = start_daemon(cfg, env={"NOTIFY_SOCKET": listener.address})
        try:
            listener.wait_for("READY=1", timeout=20)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # the session trades before the switch
                snap = read_snapshot(data_dir)
                if snap and snap["orders_submitted"] >= 3:
                    break
                time.sleep(0.1)
            assert snap["orders_submitted"] >= 3
            engage(data_dir)
            engaged_at = time.time()
            time.sleep(1.5)  # ~150 more bars: the model keeps wanting to trade
            snap = json.loads(run_cli("status", "--data-dir", str(data_dir), "--json").stdout)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        listener.close()

    assert snap["kill_switch"] is True and snap["risk_state"] in ("HALTED", "halted")
    lines = log_lines(log_path)
    noticed = [x for x in events(lines, "kill_switch_engaged") if "reason" in x]
    assert noticed and _t(noticed[0]) - engaged_at < 1.0
    # Only orders that shrink exposure (the risk engine's flattening, if configured) may follow.
    late = [x for x in events(lines, "order_submitted")
            if _t(x) > engaged_at + 1.0 and not x["reduce_only"]]
    assert late == []
    # The halt is in the journal, so the replay stops at the same point.
    read = read_journal(snap["journal"])
    halts = [r for r in read.records if isinstance(r, JournalControl) and r.kind == "halt"]
    assert halts and halts[0].value["engaged"] is True
    outcome = replay_journal(snap["journal"])
    assert outcome.identical
    assert outcome.engine.risk.counts["kill_switch"] > 0  # the model did try after the switch
