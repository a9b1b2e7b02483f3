"""Portfolio overlays: volatility targeting, fractional Kelly caps, per-model drawdown control
and a rebalance band, each optional (``portfolio.overlays``; all off by default).

Every overlay ends in ONE multiplier per model that the allocator applies on top of the
model's budget (``Allocator.set_overlay``):

    multiplier(model) = vol_scale × kelly(model) × drawdown(model)

When they act: the overlays keep a clock of closed periods of ``overlays.timeframe``
(UTC-aligned, default 1d).  A period's closes are the last close of every instrument in
it (carried forward when an instrument had no bar); they are taken when the first bar of
a later period arrives, so nothing of that bar is in them, and the overlays act on that
bar, after the portfolio and risk have seen it and before the models do.  Drawdown
levels act at the first period close that reaches them; the vol scale and the Kelly caps
are recomputed every ``rebalance_every`` periods.  A change of multiplier re-sizes the
model's standing targets and the difference goes out through the pipeline's normal path
(planner, risk, router) with the reason ``overlay``; the rebalance band then leaves a
re-sized target alone when it moves the model's position by less than
``rebalance_band`` × the model's budget × NAV.  Everything is a function of the bars
and fills the kernel saw, so replay, paper and live decide the same.
"""

from __future__ import annotations

import csv
import math
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import structlog

from risk.drawdown import DrawdownAction, DrawdownMonitor
from trader.core.events import Bar, OverlayEvent, ns_to_iso
from trader.core.timeframes import parse_timeframe
from trader.engine.allocator import Allocator
from trader.engine.config import OverlaysConfig
from trader.engine.pipeline import Pipeline
from trader.engine.portfolio import Portfolio

log = structlog.get_logger(__name__)

NS = 1_000_000_000
YEAR_S = 365.25 * 86_400


# The store's risk_state row that keeps ``Overlays.state_snapshot`` between sessions.
STORE_SCOPE = "overlays"

OVERLAY_EVENT_COLUMNS = ["ts", "kind", "model", "value", "level", "detail"]


# -- the rules: pure functions ------------------------------------------------------------
def covariance(rows: Sequence[Sequence[float]]) -> list[list[float]]:
    """Sample covariance matrix of ``rows`` (one row per period, one column per asset)."""
    n = len(rows)
    if n < 2:
        return []
    k = len(rows[0])
    means = [math.fsum(r[j] for r in rows) / n for j in range(k)]
    cov = [[0.0] * k for _ in range(k)]
    for a in range(k):
        for b in range(a, k):
            c = math.fsum((r[a] - means[a]) * (r[b] - means[b]) for r in rows) / (n - 1)
            cov[a][b] = cov[b][a] = c
    return cov


def predicted_vol(weights: Sequence[float], cov: Sequence[Sequence[float]],
                  periods_per_year: float) -> float:
    """Annualised volatility of a portfolio with ``weights`` (of NAV) under ``cov``."""
    var = math.fsum(weights[a] * cov[a][b] * weights[b]
                    for a in range(len(weights)) for b in range(len(weights)))
    return math.sqrt(max(var, 0.0) * periods_per_year)


def vol_target_scale(target: float, predicted: float, max_leverage: float) -> float | None:
    """``min(max_leverage, target / predicted)``; None when nothing is at risk to scale."""
    if predicted <= 0:
        return None
    return min(max_leverage, target / predicted)


def kelly_cap(returns: Sequence[float], fraction: float, floor: float = 0.0) -> float | None:
    """``fraction`` × mean / variance of ``returns``, within [floor, 1]; None if no variance.

    1 is the model's whole budget: Kelly only ever caps, it never levers a model up.
    """
    n = len(returns)
    if n < 2:
        return None
    mean = math.fsum(returns) / n
    var = math.fsum((r - mean) ** 2 for r in returns) / (n - 1)
    if var <= 0:
        return None
    return min(1.0, max(floor, fraction * mean / var))


def _same(a: float, b: float) -> bool:
    """Equal but for float noise: a window's sum moved by rounding is no new decision."""
    return abs(a - b) <= 1e-9 * max(abs(a), abs(b), 1.0)


# -- the state ---------------------------------------------------------------------------
class Overlays:
    """Keeps the overlays' state on closed periods and hands the allocator its multipliers.

    The pipeline sends the orders of a re-sizing (``Pipeline.rebalance``), only while it
    trades and is not flattening.  While it warms up, the vol scale learns from the bars
    but the models' own curves are not judged: a restart's restored books would be
    marked against warm-up prices; their drawdown and edge are measured from READY.
    """

    def __init__(self, cfg: OverlaysConfig, allocator: Allocator, portfolio: Portfolio,
                 budgets: Mapping[str, float], base_timeframes: Mapping[str, int],
                 pipeline: Pipeline, publish: Callable[[Any], None] | None = None) -> None:
        self.cfg = cfg
        self.allocator = allocator
        self.portfolio = portfolio
        self.pipeline = pipeline
        self.budgets = dict(budgets)
        self._base = dict(base_timeframes)
        self.period_ns = parse_timeframe(cfg.timeframe) * NS
        self.periods_per_year = YEAR_S * NS / self.period_ns
        self.instruments = sorted(portfolio.instruments)
        self._closes: dict[str, float] = {}  # last close of each instrument, this period
        self._last_closes: dict[str, float] = {}  # ... at the end of the period before
        self._period: int | None = None
        self._periods_seen = 0
        vt = cfg.vol_target
        self._rets: deque[list[float]] = deque(maxlen=vt.lookback if vt else 1)
        self.vol_scale = 1.0
        kc = cfg.kelly
        self._model_rets: dict[str, deque[float]] = {
            m: deque(maxlen=kc.lookback if kc else 1) for m in self.budgets}
        self.kelly = dict.fromkeys(self.budgets, 1.0)
        self._equity: dict[str, float] = {m: b * portfolio.initial_cash
                                          for m, b in self.budgets.items()}
        self._held = dict.fromkeys(self.budgets, False)  # held a position at the last close
        dd = cfg.model_drawdown
        self.monitors = {m: DrawdownMonitor(dd.trigger, dd.halt, eq, dd.restore_at)
                         for m, eq in self._equity.items()} if dd else {}
        self.dd = dict.fromkeys(self.budgets, 1.0)
        self.multipliers = dict.fromkeys(self.budgets, 1.0)
        self._restored: set[str] = set()  # models whose drawdown state a restart carried
        self.events: list[OverlayEvent] = []
        self.publish = publish  # the bus's: an OverlayEvent for whoever listens

    # -- the bus handler -----------------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        """Close a period on the first bar of a later one (see the module doc)."""
        inst = bar.instrument_id
        if self._base.get(inst, bar.timeframe) != bar.timeframe:
            return  # an aggregated bar: its base bars were seen already
        period = (bar.ts - 1) // self.period_ns  # a bar closing at a boundary ends its period
        if self._period is None:
            self._period = period
        elif period > self._period:
            gap = period - self._period
            self._period = period
            self._close_period(bar.ts, gap)
        self._closes[inst] = bar.close

    def _close_period(self, ts: int, gap: int) -> None:
        closes = self._closes
        self._periods_seen += 1
        prev = self._last_closes
        if self.cfg.vol_target is not None and prev:
            # Periods without any bar (a weekend of daily equities) returned nothing.
            for _ in range(min(gap - 1, self._rets.maxlen or 0)):
                self._rets.append([0.0] * len(self.instruments))
            self._rets.append([closes[i] / prev[i] - 1.0 if i in prev and i in closes
                               and prev[i] > 0 else 0.0 for i in self.instruments])
        changed_dd = self._model_curves(ts, closes)
        self._last_closes = dict(closes)
        due = self._periods_seen % self.cfg.rebalance_every == 0
        if due:
            self._update_vol(ts, closes)
            self._update_kelly(ts)
        if due or changed_dd:
            self._apply(ts)

    def _model_curves(self, ts: int, closes: Mapping[str, float]) -> bool:
        """Each model's own equity (its budget's share of the starting cash plus its virtual
        book) at the period's closes: Kelly's returns and the drawdown levels."""
        pf = self.portfolio
        kelly = self.cfg.kelly
        mult = pf.instruments
        last = self._last_closes
        warming = not self.pipeline.trading
        acted = False
        for m, budget in self.budgets.items():
            book = pf.models.get(m)
            equity = budget * pf.initial_cash + (book.equity(closes) if book else 0.0)
            if warming:
                self._equity[m] = equity
                self._held[m] = False  # no return spans warm-up and trading
                monitor = self.monitors.get(m)
                if monitor is not None and m not in self._restored:
                    monitor.rebase(equity)  # the peak starts at READY (or was restored)
                continue
            if kelly is not None and book is not None and self._held[m]:
                # The return per unit of exposure: the edge, whatever size it ran at (a
                # model cut by an overlay keeps measuring the same edge).  A re-sizing is
                # filled at the first open after the period closed, so the quantity held
                # at this close, valued at the period's opening prices, earned its PnL.
                held = math.fsum(abs(p.quantity) * last.get(i, p.avg_price) * mult[i].multiplier
                                 for i, p in book.positions.items() if p.quantity)
                if held > 0:
                    self._model_rets[m].append((equity - self._equity[m]) / held)
            self._equity[m] = equity
            self._held[m] = book is not None and any(p.quantity for p in book.positions.values())
            monitor = self.monitors.get(m)
            if monitor is None:
                continue
            action = monitor.update(equity)
            if action is None:
                continue
            dd_cfg = self.cfg.model_drawdown
            assert dd_cfg is not None
            level = {DrawdownAction.DERISK: dd_cfg.derisk_factor, DrawdownAction.HALT: 0.0,
                     DrawdownAction.RESTORE: 1.0}[action]
            self.dd[m] = level
            acted = True
            self._event(ts, "model_drawdown", m, level, action.value,
                        f"drawdown {monitor.last:.4%} of the model's own peak "
                        f"{monitor.peak:.2f}, equity {equity:.2f}")
        return acted

    def _update_vol(self, ts: int, closes: Mapping[str, float]) -> None:
        vt = self.cfg.vol_target
        if vt is None or len(self._rets) < vt.min_periods:
            return
        pf = self.portfolio
        nav = pf.nav
        if nav <= 0 or self.vol_scale <= 0:
            return
        alloc = self.allocator
        # The models' exposure before this overlay's scale: what the scale multiplies.
        weights = [alloc.net_target(i) * closes.get(i, 0.0) * pf.instruments[i].multiplier
                   / nav / self.vol_scale for i in self.instruments]
        predicted = predicted_vol(weights, covariance(list(self._rets)), self.periods_per_year)
        scale = vol_target_scale(vt.annual_vol, predicted, vt.max_leverage)
        if scale is None or _same(scale, self.vol_scale):
            return
        self.vol_scale = scale
        self._event(ts, "vol_target", "", scale, "",
                    f"predicted vol {predicted:.4f} at scale 1, target {vt.annual_vol}")

    def _update_kelly(self, ts: int) -> None:
        kc = self.cfg.kelly
        if kc is None:
            return
        for m, rets in self._model_rets.items():
            if len(rets) < kc.min_periods:
                continue
            cap = kelly_cap(rets, kc.fraction, kc.floor)
            if cap is None or _same(cap, self.kelly[m]):
                continue
            self.kelly[m] = cap
            self._event(ts, "kelly", m, cap, "", f"{len(rets)} exposed periods")

    def _apply(self, ts: int) -> None:
        new = {m: self.vol_scale * self.kelly[m] * self.dd[m] for m in self.budgets}
        moved = {m: x for m, x in new.items() if x != self.multipliers[m]}
        if not moved:
            return
        self.multipliers.update(moved)
        changed = self.allocator.set_overlay(moved, self.cfg.rebalance_band)
        pipe = self.pipeline
        if changed and pipe.trading and not pipe.flattening:
            pipe.rebalance(changed, ts, dict.fromkeys(changed, "overlay"))

    def _event(self, ts: int, kind: str, model: str, value: float, level: str,
               detail: str) -> None:
        ev = OverlayEvent(ts, kind, model, value, level, detail)
        self.events.append(ev)
        # A model halted by its own drawdown needs the operator's eye; the rest is routine.
        logger = log.warning if level == "halt" else log.info
        logger("overlay_decision", kind=kind, model=model, value=value, action=level,
               detail=detail, ts=ns_to_iso(ts))
        if self.publish is not None:
            self.publish(ev)

    # -- restarts ---------------------------------------------------------------------------
    def state_snapshot(self) -> dict[str, Any]:
        """What a restart must keep: each model's own drawdown state (the vol scale and the
        Kelly caps are learnt again from the bars)."""
        return {"model_drawdown": {m: {"peak": mon.peak, "derisked": mon.derisked,
                                       "halted": mon.halted}
                                   for m, mon in sorted(self.monitors.items())}}

    def restore(self, snapshot: Mapping[str, Any]) -> list[str]:
        """Take back a ``state_snapshot`` at start-up, before any bar: a halted model stays
        halted and a de-risked one de-risked, with its peak.  Returns the models restored
        in a cut state (a model no longer configured, or no longer watched, is ignored)."""
        cfg = self.cfg.model_drawdown
        cut = []
        for m, st in snapshot.get("model_drawdown", {}).items():
            monitor = self.monitors.get(m)
            if monitor is None or cfg is None:
                continue
            monitor.peak = float(st["peak"])
            monitor.derisked = bool(st["derisked"])
            monitor.halted = bool(st["halted"])
            monitor.refresh_floor()
            self._restored.add(m)
            self.dd[m] = 0.0 if monitor.halted else (
                cfg.derisk_factor if monitor.derisked else 1.0)
            if self.dd[m] != 1.0:
                cut.append(m)
        new = {m: self.vol_scale * self.kelly[m] * self.dd[m] for m in self.budgets}
        moved = {m: x for m, x in new.items() if x != self.multipliers[m]}
        self.multipliers.update(moved)
        # Sized now, traded at READY like every target formed before it (start_trading).
        self.allocator.set_overlay(moved)
        return sorted(cut)

    # -- reports -------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """For ``metrics["overlays"]``: the final multipliers, halts and event counts."""
        counts: dict[str, int] = {}
        for ev in self.events:
            key = f"{ev.kind}_{ev.level}" if ev.level else ev.kind
            counts[key] = counts.get(key, 0) + 1
        scales = [ev.value for ev in self.events if ev.kind == "vol_target"]
        out: dict[str, Any] = {
            "events": dict(sorted(counts.items())),
            "multipliers": dict(sorted(self.multipliers.items())),
            "halted_models": sorted(m for m, x in self.dd.items() if x == 0.0),
        }
        if self.cfg.vol_target is not None:
            out["vol_scale"] = {"final": self.vol_scale,
                                "min": min(scales, default=1.0),
                                "max": max(scales, default=1.0)}
        if self.cfg.kelly is not None:
            out["kelly"] = dict(sorted(self.kelly.items()))
        return out

    def write_events_csv(self, path: Path) -> None:
        """One row per overlay decision, in the order they happened."""
        with open(path, "w", newline="") as fh:
            w = csv.writer(fh, lineterminator="\n")
            w.writerow(OVERLAY_EVENT_COLUMNS)
            for ev in self.events:
                w.writerow([ns_to_iso(ev.ts), ev.kind, ev.model, repr(ev.value), ev.level,
                            ev.detail])
