"""Writes a run's reports: metrics.json, trades.csv (streamed), equity.csv, report.html.

``report.html`` is the tear sheet (``trader.replay.tearsheet``); the figures it
shows beyond the headline metrics are computed here once, by
:func:`tear_sheet_metrics`, and stored in ``metrics.json`` too.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trader.core.events import ns_to_iso
from trader.replay import analytics
from trader.replay.observers import ModelCurves, RunTrace

TOP_DRAWDOWNS = 5


@dataclass
class RunViews:
    """What the run's observers collected besides the recorder's equity curve."""

    curves: ModelCurves
    trace: RunTrace

    def finish(self) -> None:
        """The replay ended: take the observers' last samples."""
        self.curves.finish()
        self.trace.finish()


def write_reports(engine: Any, metrics: dict[str, Any], out_dir: Path,
                  views: RunViews | None = None) -> None:
    """Write every report of a finished run into ``out_dir``."""
    from trader.replay.tearsheet import write_tear_sheet

    (out_dir / "metrics.json").write_text(metrics_json(metrics))
    with open(out_dir / "equity.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["ts", "nav", "cash", "gross_exposure", "drawdown"])
        for p in engine.recorder.equity:
            w.writerow([ns_to_iso(p.ts), repr(p.nav), repr(p.cash), repr(p.gross_exposure),
                        repr(p.drawdown)])
    if hasattr(engine.risk, "write_events_csv"):
        engine.risk.write_events_csv(out_dir / "risk_events.csv")
    if getattr(engine, "overlays", None) is not None:
        engine.overlays.write_events_csv(out_dir / "overlay_events.csv")
    write_tear_sheet(engine, metrics, views, out_dir / "report.html")


def benchmark_id(cfg: Any) -> str:
    """The instrument whose buy-and-hold the run is compared with."""
    return cfg.report.benchmark or cfg.instruments[0].id


def tear_sheet_metrics(engine: Any, metrics: dict[str, Any], views: RunViews) -> dict[str, Any]:
    """The tear sheet's figures for metrics.json: per model, per instrument, benchmark, ..."""
    from trader.engine.build import sim_costs
    from trader.store.runs import config_hash

    cfg = engine.cfg
    eq = engine.recorder.equity
    ts = [p.ts for p in eq]
    navs = [p.nav for p in eq]
    initial = engine.portfolio.initial_cash
    pnl = metrics.get("model_pnl", {})
    per_model = {}
    for name, m in views.curves.metrics().items():
        per_model[name] = {**m, "pnl": pnl.get(name, 0.0),
                           "contribution": pnl.get(name, 0.0) / initial}
    per_instrument = {
        inst: {**c, "contribution": float(c["pnl"]) / initial}
        for inst, c in views.trace.contribution().items()
    }
    bench_id = benchmark_id(cfg)
    bench = analytics.buy_and_hold(views.trace.closes.get(bench_id, []), ts, initial)
    bench_navs = [v for v in bench if v is not None]
    ex = cfg.execution
    return {
        "per_model": per_model,
        "per_instrument": per_instrument,
        "benchmark": {"instrument": bench_id,
                      **analytics.curve_summary(ts[-len(bench_navs):] if bench_navs else [],
                                                bench_navs)},
        "monthly_returns": analytics.period_returns(ts, navs, "%Y-%m"),
        "yearly_returns": analytics.period_returns(ts, navs, "%Y"),
        "drawdown_periods": [d.as_dict() for d in
                             analytics.drawdown_periods(ts, navs, TOP_DRAWDOWNS)],
        "cost_model": {"description": sim_costs(cfg)[0].describe(),
                       "slippage_bps": ex.slippage_bps, "commission_bps": ex.commission_bps,
                       "fee_per_order": ex.fee_per_order,
                       "commission_paid": engine.portfolio.account.commission},
        "config_hash": config_hash(cfg),
    }


def regime_metrics(engine: Any) -> dict[str, Any]:
    """Per regime: its changes, last state, and time and performance in each state."""
    regimes = engine.regimes
    eq = engine.recorder.equity
    ts = [p.ts for p in eq]
    navs = [p.nav for p in eq]
    out: dict[str, Any] = {}
    for clf in regimes.classifiers:
        changes = [(e.ts, e.state) for e in regimes.history if e.regime == clf.name]
        out[clf.name] = {
            "changes": len(changes),
            "first_state_at": ns_to_iso(changes[0][0]) if changes else None,
            "current": regimes.states[clf.name],
            "states": analytics.regime_performance(ts, navs, changes),
        }
    return out


def metrics_json(metrics: dict[str, Any]) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                return None
            return round(v, 10)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        if isinstance(v, list | tuple):
            return [clean(x) for x in v]
        return v

    return json.dumps(clean(metrics), indent=2, sort_keys=True) + "\n"
