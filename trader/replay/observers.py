"""What a backtest watches besides the recorder, for the tear sheet and the lifecycle gate.

Both observers sample once per UTC day like the recorder, so their memory grows
with days (and fills), not bars.
"""

from __future__ import annotations

from typing import Any

from trader.core.events import Bar, Fill
from trader.replay.metrics import compute_metrics

DAY_NS = 86_400 * 1_000_000_000


class ModelCurves:
    """Each model's own equity curve, trades and wins, for per-model metrics.

    A model's NAV is its share of the starting cash (budget x initial cash) plus
    the equity of its virtual book, sampled at the last base bar of each UTC day
    like the portfolio's; a trade is a fill that moved the model's book, a win
    (loss) a fill that raised (lowered) the book's realized PnL.
    """

    def __init__(self, engine: Any, budgets: dict[str, float], initial_cash: float,
                 bases: dict[str, int]) -> None:
        self.pf = engine.portfolio
        self.capital = {m: b * initial_cash for m, b in budgets.items()}
        self.instruments = {m.name: set(m.instruments) for m in engine.models}
        self.bases = bases
        self.ts: list[int] = []
        self.navs: dict[str, list[float]] = {m: [] for m in self.capital}
        self.trades = dict.fromkeys(self.capital, 0)
        self.wins = dict.fromkeys(self.capital, 0)
        self.losses = dict.fromkeys(self.capital, 0)
        self.gross_profit = dict.fromkeys(self.capital, 0.0)
        self.gross_loss = dict.fromkeys(self.capital, 0.0)
        self._realized = dict.fromkeys(self.capital, 0.0)
        self._held: dict[tuple[str, str], float] = {}
        self._day: int | None = None
        self._pending: tuple[int, dict[str, float]] | None = None
        engine.kernel.bus.subscribe(Bar, self.on_bar)
        self.pf.fill_listeners.append(self.on_fill)

    def on_bar(self, bar: Any) -> None:
        if self.bases.get(bar.instrument_id) != bar.timeframe:
            return
        day = bar.ts // DAY_NS
        if day != self._day and self._pending is not None:
            self._push()
        self._day = day
        marks = self.pf.marks
        self._pending = (bar.ts, {m: c + self.pf.model_book(m).equity(marks)
                                  for m, c in self.capital.items()})

    def on_fill(self, fill: Any, _realized: float) -> None:
        inst = fill.instrument_id
        for m, insts in self.instruments.items():
            if inst in insts and m in self.capital:
                book = self.pf.model_book(m)
                q = book.quantity(inst)
                if q != self._held.get((m, inst), 0.0):
                    self.trades[m] += 1
                    self._held[(m, inst)] = q
                realized = book.realized()
                change = realized - self._realized[m]
                self._realized[m] = realized
                if change > 0:
                    self.wins[m] += 1
                    self.gross_profit[m] += change
                elif change < 0:
                    self.losses[m] += 1
                    self.gross_loss[m] -= change

    def _push(self) -> None:
        assert self._pending is not None
        ts, navs = self._pending
        self.ts.append(ts)
        for m, v in navs.items():
            self.navs[m].append(v)
        self._pending = None

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Every headline metric of each model's own curve (models that saw a bar)."""
        if self._pending is not None:
            self._push()
        out = {}
        for m, navs in self.navs.items():
            if not navs:
                continue
            out[m] = compute_metrics(self.ts, navs, trades=self.trades[m], wins=self.wins[m],
                                     losses=self.losses[m], gross_profit=self.gross_profit[m],
                                     gross_loss=self.gross_loss[m], exposure=0.0)
            del out[m]["exposure"]  # not measured per model
        return out


class RunTrace:
    """Daily closes per instrument and every fill: benchmark, price charts, contribution."""

    def __init__(self, engine: Any, bases: dict[str, int]) -> None:
        self.pf = engine.portfolio
        self.bases = bases
        self.closes: dict[str, list[tuple[int, float]]] = {}
        self.fills: list[tuple[int, str, str, float, float]] = []  # ts, inst, side, qty, price
        self.commission: dict[str, float] = {}
        self.fill_count: dict[str, int] = {}
        engine.kernel.bus.subscribe(Bar, self.on_bar)
        self.pf.fill_listeners.append(self.on_fill)

    def on_bar(self, bar: Bar) -> None:
        if self.bases.get(bar.instrument_id, bar.timeframe) != bar.timeframe:
            return
        series = self.closes.setdefault(bar.instrument_id, [])
        # A bar closing at midnight belongs to the day before, as in the recorder.
        if series and (series[-1][0] - 1) // DAY_NS == (bar.ts - 1) // DAY_NS:
            series[-1] = (bar.ts, bar.close)
        else:
            series.append((bar.ts, bar.close))

    def on_fill(self, fill: Fill, _realized: float) -> None:
        inst = fill.instrument_id
        self.fills.append((fill.ts, inst, fill.side.value, fill.quantity, fill.price))
        self.commission[inst] = self.commission.get(inst, 0.0) + fill.commission
        self.fill_count[inst] = self.fill_count.get(inst, 0) + 1

    def contribution(self) -> dict[str, dict[str, float | int]]:
        """Per instrument: realized and unrealized PnL, commission, net PnL, fills."""
        acct = self.pf.account
        marks = self.pf.marks
        out: dict[str, dict[str, float | int]] = {}
        for inst in sorted(set(acct.positions) | set(self.fill_count)):
            pos = acct.positions.get(inst)
            realized = pos.realized if pos else 0.0
            unrealized = 0.0
            if pos is not None and pos.quantity:
                mult = self.pf.instruments[inst].multiplier
                unrealized = pos.quantity * (marks.get(inst, pos.avg_price) - pos.avg_price) * mult
            fee = self.commission.get(inst, 0.0)
            out[inst] = {"realized": realized, "unrealized": unrealized, "commission": fee,
                         "pnl": realized + unrealized - fee,
                         "fills": self.fill_count.get(inst, 0)}
        return out
