"""Parity with portfolio overlays: a paper session whose overlays re-size the models
(volatility targeting, Kelly caps, per-model drawdown control, a rebalance band) replays
from its journal to identical orders, and the replay takes the decisions the session
logged, at the same bars."""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path

import yaml
from daemon_harness import events, log_lines, run_cli, start_daemon, wait_for_exit, write_config

from trader.core.events import OverlayEvent, ns_to_iso
from trader.live.journal import read_journal
from trader.live.journal_replay import order_key, replay_journal
from trader.store import open_store

OVERLAYS = {
    "timeframe": "4h",
    "vol_target": {"annual_vol": 0.15, "lookback": 30, "min_periods": 10, "max_leverage": 1.0},
    "kelly": {"fraction": 0.5, "lookback": 60, "min_periods": 20, "floor": 0.2},
    "model_drawdown": {"trigger": 0.02, "halt": 0.5, "derisk_factor": 0.5, "restore_at": 0.01},
    "rebalance_band": 0.01,
}


def test_paper_session_with_overlays_replays_identically(tmp_path) -> None:
    cfg = write_config(tmp_path)
    doc = yaml.safe_load(cfg.read_text())
    doc["portfolio"]["overlays"] = OVERLAYS
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    proc, log = start_daemon(cfg)
    wait_for_exit(proc, log)
    lines = log_lines(log)
    submitted = events(lines, "order_submitted")
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    outcome = replay_journal(snap["journal"])
    assert outcome.identical, outcome.first_difference()
    assert [order_key(o) for o in outcome.session_orders] == [
        order_key(o) for o in outcome.replay_orders]
    assert [o.client_order_id for o in outcome.replay_orders] == [
        x["client_order_id"] for x in submitted]
    engine = outcome.engine
    assert engine is not None and engine.overlays is not None
    # The overlays traded during the session, not only in warm-up.
    overlay_orders = [c for c, r in engine.pipeline.reasons.items() if r == "overlay"]
    assert overlay_orders and set(overlay_orders) <= {x["client_order_id"] for x in submitted}
    # Every decision the session logged, the replay took at the same bar with the same value.
    logged = [(x["ts"], x["kind"], x["model"], x["value"], x["action"])
              for x in events(lines, "overlay_decision")]
    replayed = [(ns_to_iso(e.ts), e.kind, e.model, e.value, e.level)
                for e in engine.overlays.events]
    assert logged and logged == replayed
    assert {e.kind for e in engine.overlays.events} == {"vol_target", "kelly", "model_drawdown"}
    # The journal holds the session's decisions as they were published; the replay's equal them.
    journaled = [r for r in read_journal(snap["journal"]).records if type(r) is OverlayEvent]
    assert journaled == outcome.session_decisions == outcome.replay_decisions
    assert len(journaled) == len(logged)
    dropped = outcome.session_decisions.pop()
    assert not outcome.identical and "budget decisions" in (outcome.first_difference() or "")
    outcome.session_decisions.append(dropped)
    # The CLI says so too.
    res = run_cli("backtest", "--journal", snap["journal"], "--out", str(tmp_path / "replay"))
    assert res.returncode == 0 and "identical orders" in res.stdout, res.stdout + res.stderr


def _with_overlays(cfg: Path, overlays: dict) -> Path:
    doc = yaml.safe_load(cfg.read_text())
    doc["portfolio"]["overlays"] = overlays
    cfg.write_text(yaml.safe_dump(doc, sort_keys=False))
    return cfg


def _session(cfg: Path, log_name: str) -> tuple[list[dict], dict]:
    proc, log = start_daemon(cfg, log_path=cfg.parent / log_name)
    wait_for_exit(proc, log)
    return log_lines(log), json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)


TWO_MODELS = [
    {"name": "btc_fast", "model": "SmaCross", "stage": "paper", "budget": 0.3,
     "instruments": ["BTCUSD"], "timeframe": "1h", "params": {"fast": 3, "slow": 8}},
    {"name": "spy_daily", "model": "SmaCross", "stage": "paper", "budget": 0.3,
     "instruments": ["SPY"], "timeframe": "1d", "params": {"fast": 3, "slow": 12}},
]


TIGHT = {"model_drawdown": {"trigger": 0.01, "halt": 0.02}}


def _halting_session(tmp_path: Path) -> tuple[Path, list[dict], dict]:
    cfg = _with_overlays(write_config(tmp_path, data_end="2018-08-25", models=TWO_MODELS),
                         TIGHT)
    lines, snap = _session(cfg, "one.log")
    halted = {x["model"] for x in events(lines, "overlay_decision") if x["action"] == "halt"}
    assert halted == {"btc_fast"}  # BTC fell in August 2018; SPY did not
    # The next session resumes after this one's last bar: give it new data.
    cfg = _with_overlays(write_config(tmp_path, data_end="2018-09-15", models=TWO_MODELS),
                         TIGHT)
    return cfg, lines, snap


def test_a_model_halted_by_its_own_drawdown_stays_halted_after_a_restart(tmp_path) -> None:
    cfg, _lines1, snap1 = _halting_session(tmp_path)
    lines2, snap2 = _session(cfg, "two.log")
    (restored,) = events(lines2, "overlay_state_restored")
    assert restored["drawdown_levels"]["btc_fast"] == 0.0
    # The halted model sends nothing in the new session; the other one trades on.
    sent = {x["instrument"] for x in events(lines2, "order_submitted")}
    assert sent == {"SPY"}
    for snap in (snap1, snap2):  # the restored state is in the journal header: parity holds
        outcome = replay_journal(snap["journal"])
        assert outcome.identical, outcome.first_difference()


def test_the_operator_releases_a_halted_model_between_sessions(tmp_path) -> None:
    cfg, _lines1, _snap1 = _halting_session(tmp_path)
    res = run_cli("models", "release", "btc_fast", "--reason", "reviewed", "--config", str(cfg))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "btc_fast: released (was halted" in res.stdout
    again = run_cli("models", "release", "btc_fast", "--reason", "twice", "--config", str(cfg))
    assert again.returncode != 0 and "nothing to release" in again.stdout + again.stderr
    lines2, snap2 = _session(cfg, "two.log")
    (restored,) = events(lines2, "overlay_state_restored")
    assert "btc_fast" not in restored["drawdown_levels"]
    assert "BTCUSD" in {x["instrument"] for x in events(lines2, "order_submitted")}
    assert replay_journal(snap2["journal"]).identical
    with open_store(None, tmp_path / "data", migrate=False) as store:
        (event,) = store.risk_events("model_drawdown_released")
    assert event["reason"] == "reviewed" and event["detail"]["model"] == "btc_fast"


def test_a_models_halt_is_stored_when_it_happens(tmp_path) -> None:
    """SIGKILL shortly after a model's halt: the halt is in the store although no status
    heartbeat ran (one an hour), so the next start keeps the model halted."""
    cfg = _with_overlays(write_config(tmp_path, data_end="2018-09-15", models=TWO_MODELS,
                                      speed=20_000, daemon={"status_interval": 3600}), TIGHT)
    proc, log = start_daemon(cfg)
    try:
        deadline = time.monotonic() + 60
        halted = False
        while not halted and time.monotonic() < deadline and proc.poll() is None:
            halted = any(x.get("event") == "overlay_decision" and x.get("action") == "halt"
                         for x in log_lines(log))
            time.sleep(0.05)
        assert halted, "no halt seen in time"
        time.sleep(0.3)  # the next heartbeat is an hour away: only the halt itself saves
        assert proc.poll() is None, "the session ended before the kill"
        proc.send_signal(signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
    with open_store(None, tmp_path / "data", migrate=False) as store:
        state = store.load_risk_state("overlays")
    assert state is not None and state["model_drawdown"]["btc_fast"]["halted"] is True
