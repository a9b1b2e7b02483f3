"""Emulated protective exits, limit-entry expiry and cooldown, on closed bars.

Rules (each a small function below; the same in replay, paper and live because
they read only bars and the model's book, both of which a journal replays):

* A model's position in an instrument is *seen* on the first closed bar of the
  model's timeframe that finds it in the model's book; its levels are set then
  (entry = the book's average price; ATR multiples use the ATR of that bar).
  The exits are **armed from the next bar on**: a bar on which the entry filled
  never triggers its stop or target.
* On each armed bar: the stop (fixed or trailing, whichever is tighter) is hit
  when the bar's low reaches it (a short: the high); the target when the high
  reaches it (a short: the low); both on one bar count as the stop (the bar's
  path inside is unknown, so the worse case is assumed).  Otherwise, once the
  position has been held ``max_bars`` armed bars, it times out.
* Trailing stop of a long: ``extreme × (1 − trail_pct)`` or ``extreme −
  trail_atr × ATR``, where ``extreme`` is the highest high of the armed bars
  *before* this one (the entry price before any); this bar's high moves it only
  after this bar was checked, so a bar cannot both raise the stop and hit it.
* A trigger turns into the model's target going flat: the planner sends a
  reduce-only market order that passes the risk engine and fills at the next
  bar's open, like any other decision taken on a closed bar.
* After an exit (the bar an emulated exit fired on, or the bar that finds a
  signal's exit done), no entry is taken on the next ``cooldown_bars`` bars of
  the model's timeframe.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from models.intents import Intent, OrderPolicy
from trader.core.events import Bar
from trader.engine.portfolio import Portfolio

STOP, TARGET, TRAIL, TIMEOUT = "stop", "target", "trail", "timeout"


@dataclass(slots=True)
class OpenTrade:
    """A model's position in one instrument, as the exit rules see it."""

    side: int  # +1 long, -1 short
    entry_price: float
    stop: float | None
    target: float | None
    trail_pct: float | None
    trail_dist: float | None
    extreme: float  # highest high (long) / lowest low (short) of the armed bars so far
    bars: int = 0  # armed bars held
    exiting: bool = False


def trail_level(trade: OpenTrade) -> float | None:
    """Where the trailing stop stands before the current bar."""
    if trade.trail_pct is not None:
        return trade.extreme * (1 - trade.side * trade.trail_pct)
    if trade.trail_dist is not None:
        return trade.extreme - trade.side * trade.trail_dist
    return None


def exit_trigger(trade: OpenTrade, bar: Bar, max_bars: int | None) -> str | None:
    """The reason ``bar`` closes ``trade`` (stop, trail, target, timeout), or None."""
    long = trade.side > 0
    trail = trail_level(trade)
    level, reason = trade.stop, STOP
    if trail is not None and (level is None or (trail > level if long else trail < level)):
        level, reason = trail, TRAIL
    if level is not None and (bar.low <= level if long else bar.high >= level):
        return reason
    if trade.target is not None and (bar.high >= trade.target if long
                                     else bar.low <= trade.target):
        return TARGET
    if max_bars is not None and trade.bars + 1 >= max_bars:
        return TIMEOUT
    return None


def advance(trade: OpenTrade, bar: Bar) -> None:
    """After a bar that did not close the trade: count it and move the extreme."""
    trade.bars += 1
    trade.extreme = max(trade.extreme, bar.high) if trade.side > 0 else min(trade.extreme,
                                                                              bar.low)


def open_trade(side: int, entry: float, policy: OrderPolicy, atr: float | None,
               levels: Intent | None) -> OpenTrade:
    """The levels of a new position from the policy, ATR at entry and the model's intent."""
    ex = policy.exits

    def level(pct: float | None, mult: float | None, sign: int) -> float | None:
        if pct is not None:
            return entry * (1 + sign * side * pct)
        if mult is not None and atr is not None:
            return entry + sign * side * mult * atr
        return None

    stop = level(ex.stop_pct, ex.stop_atr, -1)
    target = level(ex.take_profit_pct, ex.take_profit_atr, 1)
    if levels is not None:
        stop = levels.stop_price if levels.stop_price is not None else stop
        target = levels.take_profit_price if levels.take_profit_price is not None else target
    trail_dist = ex.trail_atr * atr if ex.trail_atr is not None and atr is not None else None
    return OpenTrade(side, entry, stop, target, ex.trail_pct, trail_dist, entry)


class WilderATR:
    """Average true range, Wilder-smoothed; None until ``period`` bars were seen."""

    __slots__ = ("period", "value", "_prev_close", "_seed", "_n")

    def __init__(self, period: int) -> None:
        self.period = period
        self.value: float | None = None
        self._prev_close: float | None = None
        self._seed = 0.0
        self._n = 0

    def update(self, bar: Bar) -> float | None:
        pc = self._prev_close
        tr = bar.high - bar.low if pc is None else max(bar.high, pc) - min(bar.low, pc)
        self._prev_close = bar.close
        self._n += 1
        if self.value is None:
            self._seed += tr
            if self._n == self.period:
                self.value = self._seed / self.period
        else:
            self.value += (tr - self.value) / self.period
        return self.value


@dataclass(frozen=True, slots=True)
class Bracket:
    """Native children to send for a position: reduce-only stop and/or target."""

    model: str
    instrument_id: str
    side: int  # the position's side; the children trade the other way
    quantity: float
    stop: float | None
    target: float | None


class ExitEmulator:
    """Per (model, instrument): the open trade, its armed exits, cooldown, limit expiry.

    Models in ``native`` get their stop (or, without one, their target) as a venue
    order instead: when the position is seen, a ``Bracket`` is queued for the
    pipeline to send (on that bar's close, so the child, like emulated exits, acts
    from the next bar on); when the position is gone, or an emulated exit fires,
    the remaining children are queued for cancelling.
    """

    def __init__(self, policies: dict[str, OrderPolicy], portfolio: Portfolio,
                 native: frozenset[str] = frozenset()) -> None:
        self.policies = policies
        self.portfolio = portfolio
        self.native = native
        self.children: dict[tuple[str, str], list[str]] = {}
        self.child_of: dict[str, tuple[str, str]] = {}
        self.to_arm: list[Bracket] = []
        self.to_cancel: list[str] = []
        self.trades: dict[tuple[str, str], OpenTrade] = {}
        self.levels: dict[tuple[str, str], Intent] = {}
        self._atr: dict[tuple[str, str], WilderATR] = {}
        self._bar_no: dict[tuple[str, str], int] = {}
        self._cool_until: dict[tuple[str, str], int] = {}
        self._entries: dict[str, tuple[str, str, int]] = {}  # coid -> model, inst, expiry bar

    def on_bar(self, model: str, bar: Bar) -> str | None:
        """Run the rules for ``model`` on its closed ``bar``; the exit reason, if any."""
        policy = self.policies[model]
        key = (model, bar.instrument_id)
        n = self._bar_no[key] = self._bar_no.get(key, 0) + 1
        atr = None
        if policy.exits.uses_atr:
            est = self._atr.get(key)
            if est is None:
                est = self._atr[key] = WilderATR(policy.exits.atr_period)
            atr = est.update(bar)
        book = self.portfolio.model_book(model)
        qty = book.quantity(bar.instrument_id)
        trade = self.trades.get(key)
        if abs(qty) < 1e-12:
            if trade is not None:
                del self.trades[key]
                self._cool(key, n, policy)
                self._drop_children(key)
            return None
        side = 1 if qty > 0 else -1
        if trade is None or trade.side != side:
            pos = book.positions[bar.instrument_id]
            trade = open_trade(side, pos.avg_price, policy, atr, self.levels.pop(key, None))
            self.trades[key] = trade
            self._drop_children(key)
            if model in self.native and (trade.stop is not None or trade.target is not None):
                # One reduce-only child per position: the risk engine counts working
                # orders against the position, so a second one would be refused.  The
                # stop goes to the venue and a target, if any, stays emulated.
                if trade.stop is not None:
                    self.to_arm.append(Bracket(model, bar.instrument_id, side, abs(qty),
                                               trade.stop, None))
                    trade.stop = None  # the venue watches it now
                else:
                    self.to_arm.append(Bracket(model, bar.instrument_id, side, abs(qty),
                                               None, trade.target))
                    trade.target = None
            return None  # armed from the next bar: the entry bar never triggers an exit
        if trade.exiting or not (policy.exits.any or trade.stop or trade.target):
            return None
        reason = exit_trigger(trade, bar, policy.exits.max_bars)
        if reason is None:
            advance(trade, bar)
            return None
        trade.exiting = True
        self._cool(key, n, policy)
        self._drop_children(key)
        return reason

    def _drop_children(self, key: tuple[str, str]) -> None:
        for coid in self.children.pop(key, ()):
            self.child_of.pop(coid, None)
            self.to_cancel.append(coid)

    def child_sent(self, coid: str, model: str, inst: str) -> None:
        """A native child order of the model's position in ``inst`` was sent."""
        self.children.setdefault((model, inst), []).append(coid)
        self.child_of[coid] = (model, inst)

    def siblings(self, coid: str) -> list[str]:
        """The other children of the bracket ``coid`` belongs to (one cancels the other)."""
        key = self.child_of.get(coid)
        return [c for c in self.children.get(key, ()) if c != coid] if key else []

    def _cool(self, key: tuple[str, str], n: int, policy: OrderPolicy) -> None:
        # The ``cooldown_bars`` bars after the bar that ended the trade take no entry.
        if policy.cooldown_bars and self._cool_until.get(key, 0) <= n:
            self._cool_until[key] = n + policy.cooldown_bars + 1

    def allows_entry(self, model: str, inst: str) -> bool:
        """False while the model's cooldown after an exit in ``inst`` runs."""
        key = (model, inst)
        return self._bar_no.get(key, 0) >= self._cool_until.get(key, 0)

    def exiting(self, model: str, inst: str) -> bool:
        """True while an emulated exit of the model's position is on its way."""
        trade = self.trades.get((model, inst))
        return trade is not None and trade.exiting

    def remember_levels(self, model: str, inst: str, intent: Intent) -> None:
        """Levels a model gave with its entry, used when the position is first seen."""
        self.levels[(model, inst)] = intent

    def entry_sent(self, coid: str, model: str, inst: str) -> None:
        """A limit entry was sent: it expires after the policy's ``expiry_bars``."""
        key = (model, inst)
        self._entries[coid] = (model, inst,
                               self._bar_no.get(key, 0) + self.policies[model].entry.expiry_bars)

    def expired(self, model: str, inst: str) -> list[str]:
        """Client order ids of this model's limit entries whose time is up."""
        n = self._bar_no.get((model, inst), 0)
        out = [c for c, (m, i, until) in self._entries.items()
               if m == model and i == inst and n >= until]
        for c in out:
            del self._entries[c]
        return out


def limit_price(side: int, close: float, offset_bps: float, tick: float) -> float:
    """A limit entry's price: below the close for a buy, above for a sell, on the tick grid."""
    raw = close * (1 - side * offset_bps / 10_000.0)
    steps = math.floor(raw / tick + 1e-9) if side > 0 else math.ceil(raw / tick - 1e-9)
    return round(steps * tick, 12)
