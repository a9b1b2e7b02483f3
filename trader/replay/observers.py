"""What a backtest watches besides the recorder, for the tear sheet and the lifecycle gate.

Both observers sample once per UTC day like the recorder, so their memory grows
with days (and fills), not bars.
"""

from __future__ import annotations

from typing import Any

from trader.core.events import Bar, Fill, FillCorrection
from trader.engine.portfolio import AppliedCorrection
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
        self._realized: dict[tuple[str, str], float] = {}  # (model, instrument) -> realized
        self._held: dict[tuple[str, str], float] = {}
        # The end of the UTC day being sampled; days are [start, end) here.  The replay's
        # events come in time order, so a base bar before it is in the same day.
        self._day_end = -1
        # The day's last sample: the close time of its last base bar, and the models'
        # NAVs once that bar's dispatch ended.  The NAVs are read only when they are
        # needed (the day ends, or another event may move them): None until then.
        self._pending_ts: int | None = None
        self._pending_navs: dict[str, float] | None = None
        self._opening = True
        # A kernel consumer sees each replayed event before any handler does, i.e. while
        # the books still show where the last event left them: one NAV sample a day
        # instead of one per bar.
        engine.kernel.consumers.insert(0, self.before_event)
        self.pf.fill_listeners.append(self.on_fill)

    def before_event(self, event: Any) -> None:
        """Sample at the last base bar of each UTC day; called before ``event`` is dispatched."""
        if self._opening and self._pending_ts is not None:
            # The models' books open where they always did, once the first base bar was
            # dispatched: their order in the portfolio is the order costs are charged in.
            self._opening = False
            self.finish()
        if type(event) is Bar and self.bases.get(event.instrument_id) == event.timeframe:
            ts = event.ts
            if ts >= self._day_end:
                if self._pending_ts is not None:
                    self._push()
                self._day_end = (ts // DAY_NS + 1) * DAY_NS
            self._pending_ts = ts
            self._pending_navs = None
        else:
            # Not a base bar of the same day, which would replace the sample: this
            # event may move the books, so the last base bar's NAVs are read now.
            self.finish()

    def finish(self) -> None:
        """Read the pending sample's NAVs now: the replay ended, or something may move them."""
        if self._pending_navs is None and self._pending_ts is not None:
            self._pending_navs = self._navs()

    def _navs(self) -> dict[str, float]:
        marks = self.pf.marks
        return {m: c + self.pf.model_book(m).equity(marks) for m, c in self.capital.items()}

    def on_fill(self, fill: Any, _realized: float) -> None:
        inst = fill.instrument_id
        for m, insts in self.instruments.items():
            if inst in insts and m in self.capital:
                book = self.pf.model_book(m)
                q = book.quantity(inst)
                if q != self._held.get((m, inst), 0.0):
                    self.trades[m] += 1
                    self._held[(m, inst)] = q
                # Only this instrument's position realized anything: O(1) per fill, however
                # many instruments the model's book has held.
                pos = book.positions.get(inst)
                realized = pos.realized if pos is not None else 0.0
                change = realized - self._realized.get((m, inst), 0.0)
                self._realized[(m, inst)] = realized
                if change > 0:
                    self.wins[m] += 1
                    self.gross_profit[m] += change
                elif change < 0:
                    self.losses[m] += 1
                    self.gross_loss[m] -= change

    def _push(self) -> None:
        assert self._pending_ts is not None
        navs = self._pending_navs if self._pending_navs is not None else self._navs()
        self.ts.append(self._pending_ts)
        for m, v in navs.items():
            self.navs[m].append(v)
        self._pending_ts = self._pending_navs = None

    def metrics(self) -> dict[str, dict[str, Any]]:
        """Every headline metric of each model's own curve (models that saw a bar)."""
        if self._pending_ts is not None:
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
        # Instrument -> the end of the UTC day its last base bar closed in.  The close of
        # a day's last bar is the portfolio's mark until the instrument's next base bar,
        # so it is read from there when that bar arrives (a kernel consumer sees it
        # before the portfolio does), not copied on every bar.
        self._day_end: dict[str, int] = {}
        engine.kernel.consumers.append(self.before_event)
        self.pf.fill_listeners.append(self.on_fill)
        self.pf.correction_listeners.append(self.on_fill_correction)

    def before_event(self, event: Any) -> None:
        """Keep each instrument's daily close; called before ``event`` is dispatched."""
        if type(event) is Bar:
            inst = event.instrument_id
            ts = event.ts
            # An instrument's base bars come in time order: one closing by the end of its
            # last bar's day is in that day.
            if ts <= self._day_end.get(inst, -1):
                return
            if self.bases.get(inst, event.timeframe) != event.timeframe:
                return
            # A bar closing at midnight belongs to the day before, as in the recorder.
            if inst in self._day_end:
                self._close_day(inst)
            else:
                self.closes[inst] = []  # instruments in the order their bars began
            self._day_end[inst] = ((ts - 1) // DAY_NS + 1) * DAY_NS

    def _close_day(self, inst: str) -> None:
        self.closes[inst].append((self.pf.last_bar_ts[inst], self.pf.marks[inst]))

    def finish(self) -> None:
        """The replay ended: each instrument's last day closes at its last bar."""
        for inst in self._day_end:
            self._close_day(inst)
        self._day_end.clear()

    def on_fill(self, fill: Fill, _realized: float) -> None:
        inst = fill.instrument_id
        self.fills.append((fill.ts, inst, fill.side.value, fill.quantity, fill.price))
        self.commission[inst] = self.commission.get(inst, 0.0) + fill.commission
        self.fill_count[inst] = self.fill_count.get(inst, 0) + 1

    def on_fill_correction(self, _fix: FillCorrection, applied: AppliedCorrection) -> None:
        """A venue revised a fill's commission: the instrument's commission follows."""
        inst = applied.instrument_id
        self.commission[inst] = self.commission.get(inst, 0.0) + applied.commission

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
