"""Parity with emulated orders: a paper session whose models use stops, targets, trailing
stops, timed exits, limit entries and a native stop replays from its journal to identical
orders, the emulated exits and the venue's child orders included."""

from __future__ import annotations

import json

from daemon_harness import events, log_lines, run_cli, start_daemon, wait_for_exit, write_config

from trader.live.journal_replay import order_key, replay_journal

MODELS = [
    {"name": "btc_bracket", "model": "SmaCross", "stage": "paper", "budget": 0.3,
     "instruments": ["BTCUSD"], "timeframe": "1h", "params": {"fast": 3, "slow": 8},
     "orders": {"exits": {"stop_pct": 0.01, "take_profit_pct": 0.015, "max_bars": 12},
                "cooldown_bars": 2}},
    {"name": "btc_trail", "model": "SmaCross", "stage": "paper", "budget": 0.3,
     "instruments": ["BTCUSD"], "timeframe": "4h",
     "params": {"fast": 3, "slow": 10, "enter_on_cross": True},
     "orders": {"entry": {"type": "limit", "limit_offset_bps": 20, "expiry_bars": 2},
                "exits": {"trail_atr": 2.0, "atr_period": 10}}},
    {"name": "spy_qty", "model": "SmaCross", "stage": "paper", "budget": 0.3,
     "instruments": ["SPY"], "timeframe": "1d", "params": {"fast": 3, "slow": 12},
     "orders": {"sizing": {"by": "quantity", "quantity": 20}, "exits": {"stop_pct": 0.02},
                "native": True}},  # the stop rests at the (simulated) venue
]


def test_paper_session_with_emulated_orders_replays_identically(tmp_path) -> None:
    cfg = write_config(tmp_path, models=MODELS)
    proc, log = start_daemon(cfg)
    wait_for_exit(proc, log)
    submitted = events(log_lines(log), "order_submitted")
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    outcome = replay_journal(snap["journal"])
    assert outcome.identical, outcome.first_difference()
    assert len(outcome.replay_orders) == len(submitted) >= 10
    assert [o.client_order_id for o in outcome.replay_orders] == [
        x["client_order_id"] for x in submitted]
    # The emulation did act: exits for each reason the policies allow, and limit entries.
    assert outcome.engine is not None
    reasons = set(outcome.engine.pipeline.reasons.values())
    assert {"stop", "trail"} <= reasons, reasons
    kinds = {str(o.order_type) for o in outcome.replay_orders}
    assert kinds == {"MARKET", "LIMIT", "STOP"}
    # Emulated exits leave at market (netted with the other model's orders on BTCUSD).
    by_id = {o.client_order_id: o for o in outcome.replay_orders}
    emulated = [by_id[c] for c in outcome.engine.pipeline.reasons if c in by_id]
    assert emulated and all(str(o.order_type) in ("MARKET", "STOP") for o in emulated)
    assert [order_key(o) for o in outcome.session_orders] == [
        order_key(o) for o in outcome.replay_orders]
