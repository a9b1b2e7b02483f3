"""The HTML report of a study: history, parallel coordinates, importances, walk-forward.

One self-contained page (plotly.js embedded once, at the top) that opens offline.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.optimize import results

if TYPE_CHECKING:
    import optuna


def _figures(study: optuna.Study) -> list[tuple[str, Any]]:
    import plotly.graph_objects as go
    from optuna import visualization as vis

    target = (lambda t: t.values[0]) if len(study.directions) > 1 else None
    name = study.user_attrs.get("experiment", {}).get("objective", [{}])[0].get("metric", "value")
    figs: list[tuple[str, Any]] = []
    if results.rows(study):
        figs.append(("Optimisation history", vis.plot_optimization_history(
            study, target=target, target_name=name)))
        figs.append(("Parallel coordinates", vis.plot_parallel_coordinate(
            study, target=target, target_name=name)))
        imps = results.importances(study)
        if imps:
            figs.append(("Parameter importances", go.Figure(
                go.Bar(x=list(imps.values()), y=list(imps), orientation="h"))))
        if len(study.directions) > 1:
            figs.append(("Pareto front", vis.plot_pareto_front(study)))
    wf = study.user_attrs.get("walk_forward") or []
    if wf:
        ins = [w["in_sample_metrics"].get(name) for w in wf]
        oos = [w["out_of_sample_metrics"].get(name) for w in wf]
        fig = go.Figure(go.Scatter(x=ins, y=oos, mode="markers+text",
                                   text=[f"w{w['window']}" for w in wf], textposition="top center"))
        fig.update_layout(xaxis_title=f"in-sample {name}", yaxis_title=f"out-of-sample {name}")
        figs.append(("In-sample vs out-of-sample (walk-forward)", fig))
    return figs


def write_report(study: optuna.Study, path: Path) -> Path:
    """Write the study's report to ``path`` (its folder is made); return the path."""
    figs = _figures(study)
    parts = [f"<h1>Study {html.escape(study.study_name)}</h1>", _summary_html(study)]
    for i, (title, fig) in enumerate(figs):
        parts.append(f"<h2>{html.escape(title)}</h2>")
        # plotly.js once, in the first chart; the rest reuse it.
        parts.append(fig.to_html(full_html=False, include_plotlyjs=(i == 0)))
    if not figs:
        parts.append("<p>No completed trial yet.</p>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("<!DOCTYPE html><html><head><meta charset='utf-8'><title>"
                    f"{html.escape(study.study_name)}</title></head><body>"
                    + "\n".join(parts) + "</body></html>\n")
    return path


def _summary_html(study: optuna.Study) -> str:
    top = results.rows(study)[:10]
    of = results.overfitting(study)
    head = "<tr><th>trial</th><th>values</th><th>params</th><th>feasible</th></tr>"
    body = "".join(
        f"<tr><td>{r.number}</td><td>{', '.join(f'{v:.4f}' for v in r.values)}</td>"
        f"<td>{html.escape(str(r.params))}</td><td>{'yes' if r.feasible else 'no'}</td></tr>"
        for r in top)
    ds = of.get("deflated_sharpe")
    pbo = of.get("pbo")
    stats = (f"<p>deflated Sharpe of the best trial: {'-' if ds is None else f'{ds:.3f}'}; "
             f"probability of backtest overfitting (CSCV): {'-' if pbo is None else f'{pbo:.3f}'}"
             "</p>")
    wf = study.user_attrs.get("walk_forward") or []
    wf_rows = "".join(
        f"<tr><td>w{w['window']}</td><td>{w['in_sample'][0]} .. {w['in_sample'][1]}</td>"
        f"<td>{w['out_of_sample'][0]} .. {w['out_of_sample'][1]}</td>"
        f"<td>{html.escape(str(w['params']))}</td></tr>" for w in wf)
    wf_table = (f"<h2>Walk-forward windows</h2><table border=1><tr><th>window</th>"
                f"<th>in-sample</th><th>out-of-sample</th><th>params</th></tr>{wf_rows}</table>"
                if wf else "")
    return f"<table border=1>{head}{body}</table>{stats}{wf_table}"
