"""A crafted price path falls 15% and then 20% from its peak: de-risk, then flatten and halt."""

from __future__ import annotations

import pytest
from risk_fixtures import Scripted, make_config, path_bars

from risk.drawdown import DrawdownAction, DrawdownMonitor, drawdown, drawdown_action
from risk.events import DrawdownEvent, TradingStateChanged
from risk.state import TradingState
from trader.core.events import Bar
from trader.engine.build import build_engine
from trader.replay.backtest import summarize
from trader.replay.reports import write_reports

RISK = {
    "instrument_exposure": {"limit": 1.0},
    "drawdown": {"trigger": 0.15, "halt": 0.20, "derisk_factor": 0.5},
}


def closes() -> list[float]:
    up = [100.0 + k for k in range(11)]  # peak at 110
    down = [110.0 * (0.99 ** k) for k in range(1, 60)]
    return up + down


def alternate(bar: Bar, n: int) -> dict[str, float]:
    # Keeps trying to trade on every bar, so "no order after the halt" means something.
    return {"AAA": 1.0 if n % 2 == 0 else 0.9}


def run_path():
    cfg = make_config(RISK, models=[{"name": "m", "model": "SmaCross", "budget": 1.0,
                                     "instruments": ["AAA"], "timeframe": "1m"}])
    model = Scripted("m", ["AAA"], "1m", alternate)
    seen: list[tuple[int, float, float, str, float]] = []
    events: list = []

    engine = build_engine(cfg, models=[model])
    bus = engine.kernel.bus
    bus.subscribe(DrawdownEvent, events.append)
    bus.subscribe(TradingStateChanged, events.append)
    bus.subscribe(Bar, lambda b: seen.append((
        b.ts, engine.portfolio.drawdown, engine.allocator.scale, engine.risk.state.value,
        engine.portfolio.position("AAA"))))
    engine.kernel.run(path_bars("AAA", closes()))
    return engine, seen, events


def test_derisk_at_first_bar_reaching_trigger_and_halt_flat_from_next_fill():
    engine, seen, events = run_path()
    ts = [s[0] for s in seen]
    i = next(k for k, s in enumerate(seen) if s[1] >= 0.15)
    j = next(k for k, s in enumerate(seen) if s[1] >= 0.20)
    assert 0 < i < j < len(seen) - 2

    # Budgets scale at exactly the first bar at or beyond the trigger, not before.
    assert all(s[2] == 1.0 for s in seen[:i])
    assert seen[i][2] == 0.5
    derisk = [e for e in events if isinstance(e, DrawdownEvent) and e.level == "derisk"]
    assert [e.ts for e in derisk] == [ts[i]]
    # ... and the re-planned orders went out on that bar and were filled on the next.
    sells = [o for o in engine.orders if o.ts == ts[i] and o.side.value == "SELL"]
    assert sells, "de-risking re-plans through the runner"
    assert 0 < seen[i + 1][4] <= 0.6 * seen[i][4]

    # The halt: HALTED at the first bar reaching 20%, flat from the next fill, no order after.
    halts = [e for e in events if isinstance(e, TradingStateChanged) and e.state == "HALTED"]
    assert [(e.ts, e.reason) for e in halts] == [(ts[j], "drawdown_halt")]
    assert all(s[3] == "HALTED" for s in seen[j:])
    assert all(s[3] == "ACTIVE" for s in seen[:j])
    assert seen[j][4] > 0
    assert all(s[4] == 0 for s in seen[j + 1:])
    last = [o for o in engine.orders if o.ts >= ts[j]]
    assert last and all(o.reduce_only and o.ts == ts[j] for o in last)
    assert not any(o.ts > ts[j] for o in engine.orders)
    # The model kept trying; each attempt after the halt was refused and counted.
    assert engine.risk.counts["kill_switch"] + engine.risk.counts["trading_halted"] >= 10
    assert engine.risk.kill_switch.engaged


def test_backtest_reports_risk_events(tmp_path):
    cfg = make_config(RISK, models=[{"name": "m", "model": "SmaCross", "budget": 1.0,
                                     "instruments": ["AAA"], "timeframe": "1m"}])
    engine = build_engine(cfg, models=[Scripted("m", ["AAA"], "1m", alternate)])
    engine.kernel.run(path_bars("AAA", closes()))
    engine.recorder.finish()
    metrics = summarize(engine)
    write_reports(engine, metrics, tmp_path)
    risk = metrics["risk"]
    assert risk["state"] == "HALTED"
    assert risk["counts_by_reason"]["drawdown_derisk"] == 1
    assert risk["counts_by_reason"]["drawdown_halt"] == 1
    t = risk["time_in_state"]
    assert t["ACTIVE"]["seconds"] > 0 and t["HALTED"]["seconds"] > 0
    assert t["ACTIVE"]["fraction"] + t["HALTED"]["fraction"] == pytest.approx(1.0)
    import json

    assert json.loads((tmp_path / "metrics.json").read_text())["risk"]["state"] == "HALTED"
    rows = (tmp_path / "risk_events.csv").read_text().splitlines()
    assert rows[0].startswith("ts,kind,client_order_id")
    kinds = [r.split(",")[1] for r in rows[1:]]
    assert {"drawdown", "state", "kill_switch", "order"} <= set(kinds)


def test_drawdown_pure_rules():
    assert drawdown(85.0, 100.0) == pytest.approx(0.15)
    assert drawdown(120.0, 100.0) == 0.0
    assert drawdown_action(0.1499, 0.15, 0.2, False, False) is None
    assert drawdown_action(0.15, 0.15, 0.2, False, False) is DrawdownAction.DERISK
    assert drawdown_action(0.17, 0.15, 0.2, True, False) is None
    assert drawdown_action(0.2, 0.15, 0.2, True, False) is DrawdownAction.HALT
    assert drawdown_action(0.25, 0.15, 0.2, False, False) is DrawdownAction.HALT  # gap past both
    assert drawdown_action(0.3, 0.15, 0.2, True, True) is None


def test_monitor_acts_once_per_level_and_rebases():
    m = DrawdownMonitor(0.15, 0.2, 100.0)
    assert [m.update(x) for x in (110, 94, 93.5, 90, 88, 87)] == [
        None, None, DrawdownAction.DERISK, None, DrawdownAction.HALT, None]
    m.rebase(87.0)
    assert m.update(80.0) is None  # 8% from the new base
    assert m.update(69.0) is DrawdownAction.HALT
    assert TradingState.HALTED.value == "HALTED"


def test_backtest_cli_prints_the_risk_summary(tmp_path):
    import os
    import subprocess
    import sys
    from pathlib import Path

    import yaml

    repo = Path(__file__).resolve().parents[2]
    cfg = {
        "name": "risk-cli",
        "instruments": [{"id": "SPY", "symbol": "SPY", "venue": "ARCA", "asset_class": "equity",
                         "lot_step": 1, "min_quantity": 1,
                         "data": {"path": str(repo / "data" / "spy_1d.parquet"),
                                  "timeframe": "1d"}}],
        "models": [{"name": "sma", "model": "SmaCross", "budget": 0.9, "instruments": ["SPY"],
                    "timeframe": "1d", "params": {"fast": 20, "slow": 100}}],
        "data": {"start": "2015-01-01"},
        "risk": {"instrument_exposure": {"limit": 0.5}},
    }
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(cfg))
    out = tmp_path / "out"
    r = subprocess.run([sys.executable, "-m", "trader.cli", "backtest", str(path), "--out",
                        str(out), "--no-progress"], capture_output=True, text=True, timeout=120,
                       env=dict(os.environ, PYTHONPATH=str(repo), COLUMNS="200"))
    assert r.returncode == 0, r.stderr
    assert "Risk" in r.stdout and "time ACTIVE" in r.stdout
    assert "instrument_exposure" in r.stdout  # every entry at 90% was cut to 50%
    rows = (out / "risk_events.csv").read_text().splitlines()
    assert len(rows) > 1 and all(",instrument_exposure," in x for x in rows[1:])


def test_restore_gives_budgets_back_once_recovered():
    assert drawdown_action(0.051, 0.15, 0.2, True, False, 0.05) is None
    assert drawdown_action(0.05, 0.15, 0.2, True, False, 0.05) is DrawdownAction.RESTORE
    assert drawdown_action(0.0, 0.15, 0.2, True, False, None) is None  # latched by default
    assert drawdown_action(0.0, 0.15, 0.2, True, True, 0.05) is None   # halted stays halted

    risk = dict(RISK, drawdown={"trigger": 0.15, "halt": 0.30, "restore_at": 0.05})
    cfg = make_config(risk, models=[{"name": "m", "model": "SmaCross", "budget": 1.0,
                                     "instruments": ["AAA"], "timeframe": "1m"}])
    engine = build_engine(cfg, models=[Scripted("m", ["AAA"], "1m",
                                                lambda b, n: {"AAA": 1.0} if n == 0 else None)])
    scales: list[tuple[float, float]] = []
    engine.kernel.bus.subscribe(Bar, lambda b: scales.append(
        (engine.portfolio.drawdown, engine.allocator.scale)))
    down = [100.0 - 2 * k for k in range(10)]    # about -18% for a full long book
    up = [down[-1] + 2 * k for k in range(1, 30)]
    engine.kernel.run(path_bars("AAA", [100.0, 100.0] + down + up))
    levels = [e.level for e in engine.risk.events if isinstance(e, DrawdownEvent)]
    assert levels == ["derisk", "restore"]
    k = next(i for i, (_, s) in enumerate(scales) if s == 0.5)
    r = next(i for i, (_, s) in enumerate(scales) if i > k and s == 1.0)
    assert scales[k][0] >= 0.15 and scales[k - 1][0] < 0.15
    # Restored at the first bar whose drawdown (from the de-risked book's peak) is back
    # at 5% or less; the monitor's peak is the portfolio's high-water mark.
    assert scales[r][0] <= 0.05 + 1e-9 and all(d > 0.05 + 1e-9 for d, _ in scales[k:r])


def test_restore_must_be_below_trigger(tmp_path):
    from trader.engine.config import AppConfig

    with pytest.raises(ValueError, match="restore_at"):
        AppConfig.model_validate({
            "instruments": [{"id": "A", "symbol": "A", "venue": "X", "asset_class": "equity"}],
            "risk": {"drawdown": {"trigger": 0.1, "halt": 0.2, "restore_at": 0.1}}})
