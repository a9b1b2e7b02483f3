"""SIGHUP reloads model params and stages without touching positions; stale feeds are flagged.

Both are session decisions taken on the wall clock, so both are journaled: the replay of
the journal must still give identical orders.
"""

from __future__ import annotations

import signal
import time

import yaml
from daemon_harness import NotifyListener, events, log_lines, run_cli, start_daemon, write_config

from trader.live.journal import JournalControl, read_journal
from trader.live.journal_replay import replay_journal
from trader.live.status import read_snapshot


def test_sighup_reload_and_stale_feeds_keep_parity(tmp_path):
    models = [
        {"name": "btc", "model": "SmaCross", "stage": "paper", "budget": 0.4,
         "instruments": ["BTCUSD"], "timeframe": "1h", "params": {"fast": 2, "slow": 5}},
        {"name": "spy", "model": "SmaCross", "stage": "paper", "budget": 0.4,
         "instruments": ["SPY"], "timeframe": "1d", "params": {"fast": 2, "slow": 4}},
    ]
    # A daily SPY bar every 0.24 s; weekends (3 days without a bar) exceed 1.5 intervals.
    cfg = write_config(tmp_path, speed=360_000, exit_at_end=False, data_end=None, models=models,
                       daemon={"stale_after_intervals": 1.5})
    data_dir = tmp_path / "data"
    listener = NotifyListener()
    try:
        proc, log_path = start_daemon(cfg, env={"NOTIFY_SOCKET": listener.address})
        try:
            listener.wait_for("READY=1", timeout=20)
            time.sleep(1.5)
            before = read_snapshot(data_dir)
            raw = yaml.safe_load(cfg.read_text())
            raw["models"][0]["params"] = {"fast": 3, "slow": 9}   # new params for btc
            raw["models"][0]["stage"] = "research"  # the YAML's stage counts for nothing
            cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
            # spy no longer runs in paper: demoted in the registry, as an operator does it.
            for why in ("review", "stop"):
                res = run_cli("models", "demote", "spy", "--config", str(cfg), "--reason", why)
                assert res.returncode == 0, res.stderr
            proc.send_signal(signal.SIGHUP)
            time.sleep(1.5)
            after = read_snapshot(data_dir)
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        listener.close()

    lines = log_lines(log_path)
    reloaded = events(lines, "reloaded")
    assert reloaded and reloaded[0]["paused"] == ["spy"]
    assert {m["name"]: m["active"] for m in after["models"]} == {"btc": True, "spy": False}
    assert before["orders_submitted"] > 0
    reload_ts = next(r for r in read_journal(after["journal"]).records
                     if isinstance(r, JournalControl) and r.kind == "reload").ts
    spy_orders = [x for x in events(lines, "order_submitted") if x["instrument"] == "SPY"]
    assert spy_orders  # spy did trade before
    # Positions are not dropped: the paused model sends nothing after the reload (no
    # liquidation); its holding stays as the last fills left it.
    assert all(x["decided"] <= _iso(reload_ts) for x in spy_orders)

    assert events(lines, "feed_stale") and events(lines, "feed_recovered")
    outcome = replay_journal(after["journal"])
    kinds = {r.kind for r in read_journal(after["journal"]).records
             if isinstance(r, JournalControl)}
    assert {"trading", "reload", "stale"} <= kinds
    assert outcome.identical and outcome.session_orders


def _iso(ts: int) -> str:
    from trader.core.events import ns_to_iso

    return ns_to_iso(ts)
