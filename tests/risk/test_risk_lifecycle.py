"""After a halt: resuming by release, snapshots, timer polling, and the bare engine."""

from __future__ import annotations

from risk_fixtures import MIN, T0, Scripted, make_config, order, path_bars, priced_engine

from risk.engine import RiskAction, RiskEngine
from risk.killswitch import FileBackend, KillSwitch
from risk.state import TradingState
from trader.core.events import Timer
from trader.engine.build import build_engine

RISK = {"instrument_exposure": {"limit": 1.0},
        "drawdown": {"trigger": 0.15, "halt": 0.20, "derisk_factor": 0.5}}


def falling_engine():
    cfg = make_config(RISK, models=[{"name": "m", "model": "SmaCross", "budget": 1.0,
                                     "instruments": ["AAA"], "timeframe": "1m"}])
    engine = build_engine(cfg, models=[Scripted(
        "m", ["AAA"], "1m", lambda b, n: {"AAA": 1.0 if n % 2 == 0 else 0.9})])
    closes = [100.0] * 3 + [100.0 * 0.98 ** k for k in range(1, 20)]
    engine.kernel.run(path_bars("AAA", closes))
    return engine, closes


def test_release_after_a_drawdown_halt_resumes_from_the_current_nav():
    engine, closes = falling_engine()
    risk = engine.risk
    assert risk.state is TradingState.HALTED and engine.portfolio.position("AAA") == 0
    snap = risk.state_snapshot()
    assert snap["state"] == "HALTED" and snap["kill_switch"] and snap["budget_scale"] == 0.5
    n_orders = len(engine.orders)
    risk.kill_switch.release("reviewed the model")
    assert risk.state is TradingState.ACTIVE
    assert risk.drawdown.peak == engine.portfolio.nav  # measured afresh
    start = T0 + len(closes) * MIN
    engine.kernel.run(path_bars("AAA", [closes[-1]] * 4, start=start))
    assert len(engine.orders) > n_orders  # trading again, at the de-risked budget
    assert engine.allocator.scale == 0.5


def test_snapshot_restores_into_a_new_engine():
    engine, _ = falling_engine()
    snap = engine.risk.state_snapshot()
    fresh = priced_engine(RISK)
    fresh.risk.restore(snap)
    assert fresh.risk.state is TradingState.HALTED
    assert fresh.allocator.scale == 0.5
    assert fresh.risk.drawdown.halted and fresh.risk.drawdown.derisked
    d = fresh.risk.check(order("AAA", "BUY", 1))
    assert (d.action, d.reason) == (RiskAction.REJECT, "trading_halted")


def test_timer_events_poll_the_flag_file(tmp_path):
    path = tmp_path / "ks.json"
    engine = priced_engine({"kill_switch": {"backend": "file", "path": str(path),
                                            "poll_seconds": 1.0}})
    KillSwitch(FileBackend(path), who="ops").engage("from elsewhere")
    assert not engine.risk.kill_switch.engaged
    engine.kernel.run([Timer(T0 + 2 * 10**9)])
    assert engine.risk.kill_switch.engaged
    KillSwitch(FileBackend(path), who="ops").release("fine")
    engine.kernel.run([Timer(T0 + 2 * 10**9 + 1)])  # within poll_seconds: not read yet
    assert engine.risk.kill_switch.engaged
    engine.kernel.run([Timer(T0 + 3 * 10**9)])
    assert not engine.risk.kill_switch.engaged


def test_bare_engine_approves_for_unit_tests_of_other_components():
    d = RiskEngine().check(order("ANY", "BUY", 1.5))
    assert (d.action, d.quantity) == (RiskAction.APPROVE, 1.5)
