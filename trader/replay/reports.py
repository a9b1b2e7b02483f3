"""Writes a run's reports: metrics.json, trades.csv (streamed), equity.csv, report.html."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

from trader.core.events import ns_to_iso


def write_reports(engine: Any, metrics: dict[str, Any], out_dir: Path) -> None:
    (out_dir / "metrics.json").write_text(metrics_json(metrics))
    with open(out_dir / "equity.csv", "w", newline="") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["ts", "nav", "cash", "gross_exposure", "drawdown"])
        for p in engine.recorder.equity:
            w.writerow([ns_to_iso(p.ts), repr(p.nav), repr(p.cash), repr(p.gross_exposure),
                        repr(p.drawdown)])
    if hasattr(engine.risk, "write_events_csv"):
        engine.risk.write_events_csv(out_dir / "risk_events.csv")
    title = engine.cfg.name
    if "cost_model" in metrics:  # runs with a configured cost model say which one
        title += f"<br><sup>cost model: {metrics['cost_model']}</sup>"
    write_chart(engine.recorder.equity, out_dir / "report.html", title)


def write_chart(equity: list, path: Path, title: str) -> None:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = [ns_to_iso(p.ts) for p in equity]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.7, 0.3],
                        subplot_titles=("Equity (NAV)", "Drawdown"))
    fig.add_trace(go.Scatter(x=x, y=[p.nav for p in equity], name="NAV"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=[-p.drawdown for p in equity], name="Drawdown",
                             fill="tozeroy"), row=2, col=1)
    fig.update_layout(title=title, showlegend=False, yaxis2_tickformat=".0%")
    # plotly.js embedded: the report opens offline and alone (mailed, archived, copied).
    # Every run writes its own folder (runs/<name> or --out), so a plotly.min.js beside
    # each report would cost the same ~4.8 MB per run and break when the file travels alone.
    fig.write_html(path, include_plotlyjs=True, full_html=True, div_id="equity")


def metrics_json(metrics: dict[str, Any]) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                return None
            return round(v, 10)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return json.dumps(clean(metrics), indent=2, sort_keys=True) + "\n"
