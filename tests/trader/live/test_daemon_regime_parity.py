"""Parity with regimes: a paper session's regime changes and budget switches replay exactly."""

from __future__ import annotations

import json

import yaml
from daemon_harness import (
    events,
    log_lines,
    register_stages,
    run_cli,
    start_daemon,
    wait_for_exit,
    write_config,
)

from trader.core.events import RegimeChanged, ns_to_iso
from trader.data.feed import parse_time
from trader.engine.regime import REASON
from trader.live.journal import read_journal
from trader.live.journal_replay import order_key, replay_journal

REGIMES = {
    "regimes": [
        # BTC's hourly realised vol against its last two days: changes many times a day.
        {"name": "crypto_vol", "kind": "VolatilityRegime", "instruments": ["BTCUSD"],
         "timeframe": "1h", "params": {"window": 12, "lookback": 48, "low": 0.3, "high": 0.7}},
        # BTC's 4-hour close against its 20-bar average (built from the hourly bars).
        {"name": "crypto_trend", "kind": "TrendRegime", "instruments": ["BTCUSD"],
         "timeframe": "4h", "params": {"window": 20}},
        {"name": "equity_trend", "kind": "TrendRegime", "instruments": ["SPY"],
         "timeframe": "1d", "params": {"window": 10}},
    ],
    "regime_budgets": {
        "crypto_vol": {"high": {"crypto": 0.5}, "low": {"btc_fast": 1.5}},
        "crypto_trend": {"down": {"btc_4h": 0.25}},
        "equity_trend": {"down": {"equity": 0.5}},
    },
}


def test_paper_session_with_regimes_replays_to_identical_orders_and_changes(tmp_path):
    path = write_config(tmp_path, register=False)
    raw = yaml.safe_load(path.read_text())
    raw.update(REGIMES)
    # The shipped default caps crypto at 20% of NAV; these budgets (0.6 on BTC) test the
    # parity of switches, not the caps.
    raw["risk"] = {"asset_class_exposure": {"limits": {"crypto": 1.0}}}
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    register_stages(path)
    proc, log_path = start_daemon(path)
    wait_for_exit(proc, log_path)
    lines = log_lines(log_path)
    snap = json.loads(run_cli("status", "--config", str(path), "--json").stdout)

    live_start = parse_time(raw["daemon"]["replay"]["start"])
    logged = events(lines, "regime_changed")
    journaled = [r for r in read_journal(snap["journal"]).records if type(r) is RegimeChanged]
    assert len(logged) == len(journaled)
    assert {r.regime for r in journaled} == {"crypto_vol", "crypto_trend", "equity_trend"}
    assert sum(r.ts > live_start for r in journaled) >= 10  # changes while trading too

    outcome = replay_journal(snap["journal"])
    assert outcome.identical, outcome.first_difference()
    assert outcome.session_decisions == journaled == outcome.replay_decisions
    # trader status shows the states the session ended in and the multipliers in force.
    last = {r.regime: r for r in journaled}
    assert snap["regimes"] == {n: {"state": r.state, "since": ns_to_iso(r.ts)}
                               for n, r in last.items()}
    assert snap["budget_multipliers"] == outcome.engine.allocator.multipliers
    shown = run_cli("status", "--config", str(path)).stdout
    assert "regimes" in shown and "budget multipliers" in shown
    assert [order_key(o) for o in outcome.session_orders] == [
        order_key(o) for o in outcome.replay_orders]
    assert len(outcome.session_orders) == len(events(lines, "order_submitted"))
    # Budget switches did trade while the session was live: orders the regimes sent,
    # stamped with the bar after a change.
    engine = outcome.engine
    regime_orders = [c for c, why in engine.pipeline.reasons.items() if why == REASON]
    switch_ts = {t for t, _ in engine.regimes.switches if t > live_start}
    assert regime_orders
    assert {o.ts for o in outcome.replay_orders if o.client_order_id in regime_orders} <= switch_ts

    res = run_cli("backtest", "--journal", snap["journal"], "--out", str(tmp_path / "replay"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "identical orders" in res.stdout


def test_a_journal_whose_regime_changes_differ_is_not_identical(tmp_path):
    """The comparison can fail: a session journal with one regime change dropped."""
    path = write_config(tmp_path, register=False)
    raw = yaml.safe_load(path.read_text())
    raw.update({"regimes": REGIMES["regimes"][2:], "regime_budgets": {}})
    path.write_text(yaml.safe_dump(raw, sort_keys=False))
    register_stages(path)
    proc, log_path = start_daemon(path)
    wait_for_exit(proc, log_path)
    snap = json.loads(run_cli("status", "--config", str(path), "--json").stdout)
    outcome = replay_journal(snap["journal"])
    assert outcome.identical and outcome.session_decisions
    outcome.session_decisions.pop()
    assert not outcome.identical
    assert "budget decisions" in (outcome.first_difference() or "")
