"""``report.html``: the run's tear sheet, one self-contained page that opens offline.

Sections (each a ``<section id=...>``): ``metrics`` (headline table, run against
the benchmark), ``equity`` (NAV and the benchmark, linear/log), ``drawdown``
(curve and the worst periods), ``returns`` (monthly heatmap, yearly bars),
``rolling`` (Sharpe and volatility), ``exposure`` (gross exposure and
leverage), ``models`` (per-model equity, metrics, contribution),
``instruments`` (contribution), ``regimes`` (time and performance in each
regime state; only for runs with regimes), ``trades`` (a price chart per
instrument with its fills), ``risk`` (risk events timeline) and ``costs`` (cost
model, config hash). The numbers come from ``metrics.json``'s figures, never recomputed here.

plotly.js is embedded once (~4.8 MB): the page opens offline and alone (mailed,
archived, copied); every run writes its own folder, so a ``plotly.min.js``
beside each report would cost the same and break when the file travels alone.
Nothing on the page depends on the wall clock, so the same run gives the same bytes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from html import escape
from pathlib import Path
from typing import Any

from trader.core.events import ns_to_iso
from trader.replay import analytics

RISK_ROWS = 200  # risk events listed in the table (all are in risk_events.csv)
PCT = {"total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate", "exposure",
       "contribution", "depth", "time_share", "mean_return"}
HEADLINE = ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown",
            "calmar", "win_rate", "profit_factor", "trades", "exposure", "bps", "final_nav")
MODEL_COLUMNS = ("sharpe", "sortino", "cagr", "max_drawdown", "win_rate", "trades", "pnl",
                 "contribution")
CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1200px;color:#222}
h1{margin-bottom:.2em} section{margin:2em 0} h2{border-bottom:1px solid #ccc}
table{border-collapse:collapse;font-size:.9em} td,th{padding:.25em .7em;border:1px solid #ddd}
td.num{text-align:right;font-variant-numeric:tabular-nums} th{background:#f4f4f4}
.sub{color:#666}
"""


def fmt(key: str, v: Any) -> str:
    """A metric as the page shows it: percentages for fractions, thousands separators."""
    if v is None:
        return "-"
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if key in PCT:
        return f"{v:.2%}"
    return f"{v:,.2f}" if abs(v) >= 1000 else f"{v:,.3f}"


def table(header: Sequence[str], rows: Iterable[Sequence[Any]], table_id: str,
          keys: Sequence[str] | None = None) -> str:
    """An HTML table; ``keys`` name each column's metric for formatting (first col is text)."""
    keys = keys or header
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    body = []
    for row in rows:
        cells = [f"<td>{escape(str(row[0]))}</td>"]
        for k, v in zip(keys[1:], row[1:], strict=True):
            cls = ' class="num"' if isinstance(v, int | float) and not isinstance(v, bool) else ""
            cells.append(f"<td{cls}>{escape(fmt(k, v))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<table id="{table_id}"><tr>{head}</tr>{"".join(body)}</table>'


def _figure_html(fig: Any, div_id: str) -> str:
    return fig.to_html(full_html=False, include_plotlyjs=False, div_id=div_id,
                       config={"displaylogo": False})


def _section(sid: str, title: str, *parts: str) -> str:
    return f'<section id="{sid}"><h2>{escape(title)}</h2>{"".join(parts)}</section>'


def write_tear_sheet(engine: Any, metrics: dict[str, Any], views: Any, path: Path) -> None:
    """Render the tear sheet of a finished run to ``path``."""
    from plotly.offline import get_plotlyjs

    eq = engine.recorder.equity
    title = engine.cfg.name
    sections = [
        _metrics_section(metrics),
        _equity_section(eq, metrics, views),
        _drawdown_section(eq, metrics),
        _returns_section(metrics),
        _rolling_section(eq),
        _exposure_section(eq),
        _models_section(metrics, views),
        _instruments_section(metrics),
        _regimes_section(metrics),
        _trades_section(views),
        _risk_section(engine),
        _overlays_section(engine),
        _costs_section(metrics),
    ]
    html = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{escape(title)} - "
            f"tear sheet</title><style>{CSS}</style><script type=\"text/javascript\">"
            f"{get_plotlyjs()}</script></head><body><h1>{escape(title)}</h1>"
            f"<p class=\"sub\">{_span(eq)}</p>{''.join(s for s in sections if s)}</body></html>\n")
    path.write_text(html)


def _span(eq: Sequence[Any]) -> str:
    if not eq:
        return "no bars"
    return f"{ns_to_iso(eq[0].ts)[:10]} to {ns_to_iso(eq[-1].ts)[:10]}, {len(eq):,} days"


def _metrics_section(metrics: dict[str, Any]) -> str:
    bench = metrics.get("benchmark", {})
    rows = [(k, metrics.get(k), bench.get(k)) for k in HEADLINE]
    name = bench.get("instrument", "-")
    header = ["metric", "run", f"benchmark ({name} buy and hold)"]
    html = "".join(
        f"<tr><td>{escape(k)}</td>"
        f'<td class="num" data-key="{k}">{escape(fmt(k, run))}</td>'
        f'<td class="num">{escape(fmt(k, b))}</td></tr>' for k, run, b in rows)
    head = "".join(f"<th>{escape(h)}</th>" for h in header)
    note = ('<p class="sub">Returns from NAV at the last bar of each UTC day; win rate and '
            "profit factor of closing fills.</p>")
    return _section("metrics", "Headline metrics",
                    f'<table id="metrics-table"><tr>{head}</tr>{html}</table>', note)


def _equity_section(eq: Sequence[Any], metrics: dict[str, Any], views: Any) -> str:
    import plotly.graph_objects as go

    x = [ns_to_iso(p.ts) for p in eq]
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=x, y=[p.nav for p in eq], name="NAV"))
    bench = metrics.get("benchmark", {})
    inst = bench.get("instrument")
    if views is not None and inst in views.trace.closes and eq:
        y = analytics.buy_and_hold(views.trace.closes[inst], [p.ts for p in eq], eq[0].nav)
        fig.add_trace(go.Scatter(x=x, y=y, name=f"{inst} buy and hold",
                                 line={"dash": "dot"}))
    fig.update_layout(
        height=420, margin={"t": 40},
        updatemenus=[{"type": "buttons", "direction": "right", "x": 0, "y": 1.15,
                      "buttons": [
                          {"label": "linear", "method": "relayout",
                           "args": [{"yaxis.type": "linear"}]},
                          {"label": "log", "method": "relayout",
                           "args": [{"yaxis.type": "log"}]}]}])
    return _section("equity-section", "Equity against the benchmark", _figure_html(fig, "equity"))


def _drawdown_section(eq: Sequence[Any], metrics: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    fig = go.Figure(go.Scatter(x=[ns_to_iso(p.ts) for p in eq], y=[-p.drawdown for p in eq],
                               fill="tozeroy", name="drawdown"))
    fig.update_layout(height=260, margin={"t": 20}, yaxis_tickformat=".0%")
    rows = [(i + 1, d["peak"], d["trough"], d["recovery"] or "not recovered", d["depth"],
             d["days"]) for i, d in enumerate(metrics.get("drawdown_periods", []))]
    worst = table(["#", "peak", "trough", "recovery", "depth", "days"], rows, "drawdown-table",
                  keys=["#", "peak", "trough", "recovery", "depth", "days"])
    return _section("drawdown", "Drawdown", _figure_html(fig, "drawdown-chart"),
                    "<h3>Worst drawdowns</h3>", worst)


def _returns_section(metrics: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    monthly = metrics.get("monthly_returns", {})
    yearly = metrics.get("yearly_returns", {})
    if not monthly:
        return ""
    years = sorted(yearly)
    z = [[monthly.get(f"{y}-{m:02d}") for m in range(1, 13)] for y in years]
    text = [["" if v is None else f"{v:.1%}" for v in row] for row in z]
    months = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec"]
    heat = go.Figure(go.Heatmap(z=z, x=months, y=years, text=text, texttemplate="%{text}",
                                colorscale="RdYlGn", zmid=0, showscale=False))
    heat.update_layout(height=max(200, 28 * len(years) + 80), margin={"t": 20},
                       yaxis={"type": "category", "autorange": "reversed"})
    bars = go.Figure(go.Bar(x=years, y=[yearly[y] for y in years]))
    bars.update_layout(height=260, margin={"t": 20}, yaxis_tickformat=".0%",
                       xaxis={"type": "category"})
    rows = [(y, yearly[y]) for y in years]
    return _section("returns", "Monthly and yearly returns", _figure_html(heat, "monthly-heatmap"),
                    _figure_html(bars, "yearly-returns"),
                    table(["year", "return"], rows, "yearly-table", keys=["year", "total_return"]))


def _rolling_section(eq: Sequence[Any]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    if len(eq) < 4:
        return ""
    ts = [p.ts for p in eq]
    ppy = analytics.periods_per_year(ts)
    window = max(2, min(126, len(eq) // 4))
    sh, vol = analytics.rolling([p.nav for p in eq], window, ppy)
    x = [ns_to_iso(t) for t in ts]
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True,
                        subplot_titles=(f"rolling Sharpe ({window} days)",
                                        f"rolling volatility ({window} days)"))
    fig.add_trace(go.Scatter(x=x, y=sh, name="Sharpe"), row=1, col=1)
    fig.add_trace(go.Scatter(x=x, y=vol, name="volatility"), row=2, col=1)
    fig.update_layout(height=420, margin={"t": 40}, showlegend=False, yaxis2_tickformat=".0%")
    return _section("rolling", "Rolling Sharpe and volatility", _figure_html(fig, "rolling-chart"))


def _exposure_section(eq: Sequence[Any]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x = [ns_to_iso(p.ts) for p in eq]
    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_trace(go.Scatter(x=x, y=[p.gross_exposure for p in eq], name="gross exposure"),
                  secondary_y=False)
    fig.add_trace(go.Scatter(x=x, y=[p.gross_exposure / p.nav if p.nav > 0 else None
                                     for p in eq], name="leverage (gross / NAV)"),
                  secondary_y=True)
    fig.update_layout(height=300, margin={"t": 20})
    return _section("exposure", "Exposure and leverage", _figure_html(fig, "exposure-chart"))


def _models_section(metrics: dict[str, Any], views: Any) -> str:
    import plotly.graph_objects as go

    per_model = metrics.get("per_model", {})
    if not per_model:
        return ""
    parts = []
    if views is not None and views.curves.ts:
        fig = go.Figure()
        x = [ns_to_iso(t) for t in views.curves.ts]
        for name in sorted(views.curves.navs):
            if views.curves.navs[name]:
                fig.add_trace(go.Scatter(x=x, y=views.curves.navs[name], name=name))
        fig.update_layout(height=380, margin={"t": 20})
        parts.append(_figure_html(fig, "models-chart"))
    rows = [(name, *(m.get(k) for k in MODEL_COLUMNS)) for name, m in sorted(per_model.items())]
    parts.append(table(["model", *MODEL_COLUMNS], rows, "models-table",
                       keys=["model", *MODEL_COLUMNS]))
    parts.append('<p class="sub">A model\'s NAV: its budget\'s share of the starting cash plus '
                 "its virtual book; contribution: its PnL over the starting cash.</p>")
    return _section("models", "Models", *parts)


def _instruments_section(metrics: dict[str, Any]) -> str:
    import plotly.graph_objects as go

    per_inst = metrics.get("per_instrument", {})
    if not per_inst:
        return ""
    names = sorted(per_inst)
    fig = go.Figure(go.Bar(x=names, y=[per_inst[n]["contribution"] for n in names]))
    fig.update_layout(height=280, margin={"t": 20}, yaxis_tickformat=".1%")
    cols = ("realized", "unrealized", "commission", "pnl", "contribution", "fills")
    rows = [(n, *(per_inst[n][c] for c in cols)) for n in names]
    return _section("instruments", "Contribution by instrument",
                    _figure_html(fig, "instruments-chart"),
                    table(["instrument", *cols], rows, "instruments-table",
                          keys=["instrument", *cols]))


REGIME_COLUMNS = ("time_share", "days", "spells", "total_return", "mean_return", "sharpe",
                  "max_drawdown")


def _regimes_section(metrics: dict[str, Any]) -> str:
    regimes = metrics.get("regimes")
    if not regimes:
        return ""
    rows = [(f"{name}: {state}", *(m[c] for c in REGIME_COLUMNS))
            for name, r in sorted(regimes.items()) for state, m in r["states"].items()]
    return _section("regimes", "Regimes",
                    table(["regime: state", *REGIME_COLUMNS], rows, "regimes-table",
                          keys=["regime", "time_share", *REGIME_COLUMNS[1:]]),
                    '<p class="sub">Each day of the equity curve belongs to the state known at '
                    "its start; budgets follow a change from the next bar on.</p>")


def _trades_section(views: Any) -> str:
    import plotly.graph_objects as go

    if views is None or not views.trace.closes:
        return ""
    parts = []
    by_inst: dict[str, list[tuple[int, str, str, float, float]]] = {}
    for f in views.trace.fills:
        by_inst.setdefault(f[1], []).append(f)
    for i, inst in enumerate(sorted(views.trace.closes)):
        closes = views.trace.closes[inst]
        fig = go.Figure(go.Scatter(x=[ns_to_iso(t) for t, _ in closes], y=[c for _, c in closes],
                                   name=f"{inst} close", line={"color": "#888"}))
        fills = by_inst.get(inst, [])
        for side, symbol, color in (("BUY", "triangle-up", "green"),
                                    ("SELL", "triangle-down", "red")):
            pts = [f for f in fills if f[2] == side]
            if pts:
                fig.add_trace(go.Scatter(
                    x=[ns_to_iso(f[0]) for f in pts], y=[f[4] for f in pts], mode="markers",
                    name=side.lower(), marker={"symbol": symbol, "color": color, "size": 8},
                    text=[f"{f[2]} {f[3]:g} @ {f[4]:g}" for f in pts], hoverinfo="text+x"))
        fig.update_layout(title=f"{inst}: {len(fills):,} fills", height=320, margin={"t": 40})
        parts.append(_figure_html(fig, f"trades-{i}"))
    return _section("trades", "Trades on price", *parts)


def _risk_section(engine: Any) -> str:
    import plotly.graph_objects as go

    from risk.engine import event_row

    events = list(getattr(engine.risk, "events", []))
    rows = [event_row(ev) for ev in events]
    summary = engine.risk.summary() if hasattr(engine.risk, "summary") else {}
    counts = summary.get("counts_by_reason", {})
    parts = [table(["reason", "events"], sorted(counts.items()), "risk-counts",
                   keys=["reason", "trades"])]
    if rows:
        fig = go.Figure(go.Scatter(x=[r[0] for r in rows], y=[r[8] for r in rows],
                                   mode="markers", text=[r[9] for r in rows],
                                   hoverinfo="text+x+y"))
        fig.update_layout(height=max(220, 24 * len(counts) + 120), margin={"t": 20},
                          yaxis={"type": "category"})
        parts.insert(0, _figure_html(fig, "risk-timeline"))
        shown = rows[:RISK_ROWS]
        parts.append(table(["time", "kind", "order", "instrument", "action", "reason", "detail"],
                           [(r[0], r[1], r[2], r[3], r[6], r[8], r[9]) for r in shown],
                           "risk-table"))
        if len(rows) > len(shown):
            parts.append(f'<p class="sub">first {len(shown):,} of {len(rows):,} events; all of '
                         "them are in risk_events.csv</p>")
    else:
        parts.append('<p class="sub">no risk events</p>')
    return _section("risk", "Risk events", *parts)


def _overlays_section(engine: Any) -> str:
    """Each model's overlay multiplier over time and the decisions; none without overlays
    (so reports of configs without them are unchanged)."""
    overlays = getattr(engine, "overlays", None)
    if overlays is None:
        return ""
    import plotly.graph_objects as go

    events = overlays.events
    start = ns_to_iso(engine.recorder.equity[0].ts) if engine.recorder.equity else None
    vol, kelly, dd = 1.0, dict.fromkeys(overlays.budgets, 1.0), dict.fromkeys(overlays.budgets,
                                                                              1.0)
    curves: dict[str, tuple[list[str], list[float]]] = {
        m: ([start] if start else [], [1.0] if start else []) for m in overlays.budgets}
    for ev in events:  # replay the decisions: the multiplier each model ran at
        if ev.kind == "vol_target":
            vol = ev.value
        elif ev.kind == "kelly":
            kelly[ev.model] = ev.value
        else:
            dd[ev.model] = ev.value
        t = ns_to_iso(ev.ts)
        for m, (xs, ys) in curves.items():
            xs.append(t)
            ys.append(vol * kelly[m] * dd[m])
    fig = go.Figure([go.Scatter(x=xs, y=ys, mode="lines", line={"shape": "hv"}, name=m)
                     for m, (xs, ys) in sorted(curves.items())])
    fig.update_layout(height=300, margin={"t": 20}, yaxis={"title": "multiplier of budget"})
    shown = events[:RISK_ROWS]
    parts = [_figure_html(fig, "overlay-multipliers"),
             table(["time", "overlay", "model", "value", "level", "detail"],
                   [(ns_to_iso(e.ts), e.kind, e.model or "(all)", f"{e.value:.4f}", e.level,
                     e.detail) for e in shown], "overlay-table")]
    if len(events) > len(shown):
        parts.append(f'<p class="sub">first {len(shown):,} of {len(events):,} decisions; all of '
                     "them are in overlay_events.csv</p>")
    return _section("overlays", "Portfolio overlays", *parts)


def _costs_section(metrics: dict[str, Any]) -> str:
    cost = metrics.get("cost_model", {})
    rows = [("cost model", cost.get("description")),
            ("slippage (bps)", cost.get("slippage_bps")),
            ("commission (bps of notional)", cost.get("commission_bps")),
            ("fee per order", cost.get("fee_per_order")),
            ("commission paid", cost.get("commission_paid")),
            ("config hash", metrics.get("config_hash", "-"))]
    return _section("costs", "Cost model and config",
                    table(["item", "value"], rows, "costs-table", keys=["item", "value"]))
