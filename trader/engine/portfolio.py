"""Portfolio accounting: cash, positions, NAV, drawdown, and per-model books.

Each fill is also split across the models whose targets caused it, so every
model has a virtual book and the models' PnL adds up to the portfolio's.

A venue's ``FillCorrection`` (a late or revised commission, a revised price) is
applied to the account and to every model book the fill was split into, as the
fill was split: see ``Portfolio.on_fill_correction``.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import NamedTuple

import structlog

from trader.core.events import Bar, Fill, FillCorrection
from trader.core.instruments import Instrument

log = structlog.get_logger(__name__)

UNATTRIBUTED = "_unattributed"
# How many of the session's most recent fills a correction can still find. IB sends a
# late commission seconds after the fill; a correction of an older fill is logged
# and left to reconciliation (and to the store, which the next start restores from).
FILL_MEMORY = 10_000


@dataclass(slots=True)
class Position:
    quantity: float = 0.0
    avg_price: float = 0.0
    realized: float = 0.0
    # Counts the times the position went flat or flipped: a lot opened in an earlier
    # epoch is no longer held (a price correction of it is realized PnL).
    epoch: int = 0


def apply_fill(pos: Position, signed_qty: float, price: float, multiplier: float) -> float:
    """Apply a fill to a position in place; return the PnL it realized."""
    q = pos.quantity
    if q == 0 or (q > 0) == (signed_qty > 0):
        new_q = q + signed_qty
        pos.avg_price = (abs(q) * pos.avg_price + abs(signed_qty) * price) / abs(new_q)
        pos.quantity = new_q
        return 0.0
    closing = min(abs(signed_qty), abs(q))
    pnl = closing * (price - pos.avg_price) * (1 if q > 0 else -1) * multiplier
    pos.realized += pnl
    new_q = q + signed_qty
    if abs(new_q) < 1e-12:
        pos.quantity, pos.avg_price = 0.0, 0.0
        pos.epoch += 1
    elif (new_q > 0) != (q > 0):
        pos.quantity, pos.avg_price = new_q, price  # flipped through zero
        pos.epoch += 1
    else:
        pos.quantity = new_q
    return pnl


def _closed_part(q: float, effective: float) -> float:
    """The signed part of a position change ``effective`` that closes a position of ``q``
    (the rest opens one)."""
    if q == 0 or (q > 0) == (effective > 0):
        return 0.0
    closed = min(abs(effective), abs(q))
    return closed if effective > 0 else -closed


class FillLeg(NamedTuple):
    """What one book (the account or a model's) took of a fill, as a correction needs it."""

    book: str | None  # None: the account; else the model book's name
    qty: float  # signed quantity traded
    share: float  # share of the fill's commission
    effective: float  # signed position change (net of a fee paid in the instrument)
    closed: float  # signed part of ``effective`` that closed a position
    epoch: int  # the position's epoch once the fill was booked (``Position.epoch``)


@dataclass(slots=True)
class _Booked:
    """A fill as it was booked: what a later correction is applied against."""

    instrument_id: str
    quantity: float
    price: float
    commission: float
    fee_in_cash: bool
    legs: list[FillLeg]

    # Written out for the compiled build (see ``planner.PlannedOrder``): one per fill.
    def __init__(self, instrument_id: str, quantity: float, price: float, commission: float,
                 fee_in_cash: bool, legs: list[FillLeg]) -> None:
        self.instrument_id = instrument_id
        self.quantity = quantity
        self.price = price
        self.commission = commission
        self.fee_in_cash = fee_in_cash
        self.legs = legs


@dataclass(frozen=True, slots=True)
class AppliedCorrection:
    """What a ``FillCorrection`` changed in the account, for listeners."""

    instrument_id: str
    commission: float  # change of the account's commission
    realized: float  # change of the account's realized PnL
    cash: float  # change of the account's cash


class Book:
    """Cash and positions of one account or one model's virtual slice of it."""

    def __init__(self, cash: float, multipliers: Mapping[str, float]) -> None:
        self.cash = cash
        self.positions: dict[str, Position] = {}
        self.commission = 0.0
        # fees charged in an asset the book does not hold (BNB): units per asset
        self.fees_in_kind: dict[str, float] = {}
        self._mult = multipliers

    def apply(self, instrument_id: str, signed_qty: float, price: float, fee: float, *,
              fee_units: float = 0.0, fee_in_cash: bool = True) -> float:
        """Book a fill; return the PnL it realized.

        ``fee`` is the commission's value in the account currency; it leaves cash
        only if ``fee_in_cash``.  ``fee_units`` of the instrument itself paid as the
        fee (a spot buy's fee in the base asset) reduce the position instead.
        """
        mult = self._mult[instrument_id]
        pos = self.positions.get(instrument_id)
        if pos is None:
            pos = self.positions[instrument_id] = Position()
        self.cash -= signed_qty * price * mult + (fee if fee_in_cash else 0.0)
        self.commission += fee
        net = signed_qty - fee_units
        if fee_units and abs(net) > 1e-15:
            # The wallet changed by the net quantity for the cash paid: the fee sits in
            # the average price (cost per unit actually held), not in cash.
            return apply_fill(pos, net, signed_qty * price / net, mult)
        return apply_fill(pos, signed_qty, price, mult)

    def apply_traced(self, name: str | None, instrument_id: str, signed_qty: float,
                     price: float, fee: float, share: float, *, fee_units: float = 0.0,
                     fee_in_cash: bool = True) -> tuple[float, FillLeg]:
        """``apply``, and what a later correction of the fill needs to know of it here."""
        net = signed_qty - fee_units
        effective = net if fee_units and abs(net) > 1e-15 else signed_qty  # as ``apply``
        pos = self.positions.get(instrument_id)
        closed = _closed_part(pos.quantity, effective) if pos is not None else 0.0
        realized = self.apply(instrument_id, signed_qty, price, fee, fee_units=fee_units,
                              fee_in_cash=fee_in_cash)
        epoch = self.positions[instrument_id].epoch
        return realized, FillLeg(name, signed_qty, share, effective, closed, epoch)

    def recharge(self, fee_change: float, *, fee_in_cash: bool) -> None:
        """A fill's commission was revised by ``fee_change`` (leaves cash if it is cash)."""
        if fee_in_cash:
            self.cash -= fee_change
        self.commission += fee_change

    def reprice(self, instrument_id: str, leg: FillLeg, price_change: float) -> float:
        """The fill ``leg`` booked here was at ``price_change`` more; return the change of
        realized PnL.

        Cash changes by the traded quantity times the change.  Of the position change,
        the part that closed a position realized that much less; the part that opened
        one moves the held position's average price, or, when the position has since
        been closed out (went flat or flipped: ``Position.epoch``), realized PnL.
        Either way cash + market value == initial + realized + unrealized - commission
        still holds; the split between realized and unrealized is exact unless the
        position was partly closed in between.
        """
        mult = self._mult[instrument_id]
        self.cash -= leg.qty * price_change * mult
        if not leg.effective:
            return 0.0
        # The booked price per unit of position change moved by this much (the same as
        # ``price_change`` unless a fee was paid in the instrument itself).
        unit = leg.qty * price_change / leg.effective
        pos = self.positions[instrument_id]
        realized = -leg.closed * unit * mult
        opened = leg.effective - leg.closed
        if opened:
            q = pos.quantity
            if q and pos.epoch == leg.epoch:  # the lot is (at least partly) still held
                pos.avg_price += opened * unit / q
            else:
                realized -= opened * unit * mult
        pos.realized += realized
        return realized

    def quantity(self, instrument_id: str) -> float:
        pos = self.positions.get(instrument_id)
        return pos.quantity if pos else 0.0

    def market_value(self, marks: Mapping[str, float]) -> float:
        total = 0.0
        for inst, pos in self.positions.items():
            if pos.quantity:
                total += pos.quantity * marks.get(inst, pos.avg_price) * self._mult[inst]
        return total

    def equity(self, marks: Mapping[str, float]) -> float:
        return self.cash + self.market_value(marks)

    def realized(self) -> float:
        return sum(p.realized for p in self.positions.values())

    def unrealized(self, marks: Mapping[str, float]) -> float:
        total = 0.0
        for inst, pos in self.positions.items():
            if pos.quantity:
                mark = marks.get(inst, pos.avg_price)
                total += pos.quantity * (mark - pos.avg_price) * self._mult[inst]
        return total


def _book_leg(book: Book, name: str | None, inst: str, qty: float, price: float, fee: float,
              share: float, fee_units: float, fee_in_cash: bool,
              legs: list[FillLeg] | None) -> float:
    """Book one book's part of a fill; return the PnL it realized.  With ``legs``, also
    keep what a later correction of the fill needs to know of it here."""
    if legs is None:
        return book.apply(inst, qty, price, fee, fee_units=fee_units, fee_in_cash=fee_in_cash)
    realized, leg = book.apply_traced(name, inst, qty, price, fee, share, fee_units=fee_units,
                                      fee_in_cash=fee_in_cash)
    legs.append(leg)
    return realized


# Splits a fill's signed quantity across models: {model: signed qty}.
Attribution = Callable[[Fill], dict[str, float]]


class Portfolio:
    """The account as the kernel sees it, marked to the last close of each instrument."""

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        initial_cash: float,
        *,
        base_timeframes: Mapping[str, int] | None = None,
    ) -> None:
        self._mult = {i: inst.multiplier for i, inst in instruments.items()}
        self.instruments = dict(instruments)
        self.initial_cash = initial_cash
        self.account = Book(initial_cash, self._mult)
        self.models: dict[str, Book] = {}
        self.marks: dict[str, float] = {}
        self.last_bar_ts: dict[str, int] = {}
        self._base = dict(base_timeframes or {})
        self._attribution: Attribution | None = None
        # Positions that are not flat, and their signed market values at the last
        # mark. Public for readers on hot paths (risk, recorder); only this class writes.
        self.open_positions: dict[str, Position] = {}
        self.position_values: dict[str, float] = {}
        self._class = {i: inst.asset_class.value for i, inst in instruments.items()}
        # Gross exposure by asset class, kept with ``gross`` (both O(1) per bar).
        self.class_gross: dict[str, float] = dict.fromkeys(sorted(set(self._class.values())), 0.0)
        self.nav = initial_cash
        self.gross = 0.0
        self.hwm = initial_cash
        self.drawdown = 0.0
        self.fill_listeners: list[Callable[[Fill, float], None]] = []
        # Called with each applied correction and what it changed in the account.
        self.correction_listeners: list[Callable[[FillCorrection, AppliedCorrection], None]] = []
        # The session's last FILL_MEMORY fills by trade id, for corrections.  Off when no
        # gateway can send a correction (the simulated exchange never does): a replay
        # then books each fill without the bookkeeping.
        self.remember_fills = True
        self._booked: OrderedDict[str, _Booked] = OrderedDict()

    def set_attribution(self, attribution: Attribution) -> None:
        self._attribution = attribution

    def model_book(self, name: str) -> Book:
        book = self.models.get(name)
        if book is None:
            book = self.models[name] = Book(0.0, self._mult)
        return book

    # -- event handlers ----------------------------------------------------------
    def on_fill(self, fill: Fill) -> None:
        signed = fill.quantity * fill.side.sign
        split = self._attribution(fill) if self._attribution else {}
        cash_before = self.account.cash
        in_cash = not fill.fee_asset
        units = fill.fee_quantity if fill.fee_in_instrument else 0.0
        inst = fill.instrument_id
        # The legs of the fill, kept for a later correction (None: nothing to keep).
        legs: list[FillLeg] | None = [] if self.remember_fills else None
        realized = _book_leg(self.account, None, inst, signed, fill.price, fill.commission,
                             1.0, units, in_cash, legs)
        if fill.fee_asset and not fill.fee_in_instrument:
            kind = self.account.fees_in_kind
            kind[fill.fee_asset] = kind.get(fill.fee_asset, 0.0) + fill.fee_quantity
        rest = signed - sum(split.values())
        parts = list(split.items())
        if abs(rest) > 1e-12 or not split:
            parts.append((UNATTRIBUTED, rest))
        for model, qty in parts:
            share = abs(qty) / fill.quantity if fill.quantity else 0.0
            _book_leg(self.model_book(model), model, inst, qty, fill.price,
                      fill.commission * share, share, units * share, in_cash, legs)
        if legs is not None:
            booked = self._booked
            booked[fill.trade_id] = _Booked(inst, signed, fill.price, fill.commission, in_cash,
                                            legs)
            if len(booked) > FILL_MEMORY:
                booked.popitem(last=False)
        if inst not in self.marks:
            self.marks[inst] = fill.price
        pos = self.account.positions[inst]
        # Only this instrument's value and the cash changed: O(1), like a bar.
        old = self.position_values.pop(inst, 0.0)
        new = 0.0
        if pos.quantity:
            self.open_positions[inst] = pos
            new = self.position_values[inst] = pos.quantity * self.marks[inst] * self._mult[inst]
        else:
            self.open_positions.pop(inst, None)
        change = (new if new >= 0 else -new) - (old if old >= 0 else -old)
        self.gross += change
        self.class_gross[self._class[inst]] += change
        self._set_nav(self.nav + (self.account.cash - cash_before) + (new - old))
        for listener in self.fill_listeners:
            listener(fill, realized)

    def on_fill_correction(self, fix: FillCorrection) -> None:
        """Apply a venue's correction of a fill booked earlier in this session.

        A commission change leaves cash (when the fee was cash) and adds to the
        commission of the account and of each book the fill was split into, pro rata
        as it was split.  A price change is applied by ``Book.reprice``.  A changed
        quantity is not applied (the position's history after the fill cannot be
        re-derived): it is logged as an error and left to reconciliation.  Values are
        absolute, so a correction applied twice changes nothing the second time.
        """
        booked = self._booked.get(fix.trade_id)
        if booked is None:
            log.warning("fill_correction_for_unknown_trade", trade_id=fix.trade_id,
                        client_order_id=fix.client_order_id, commission=fix.commission,
                        price=fix.price, action="not booked in this session; the stored fill is "
                        "corrected for the next start, reconciliation compares cash")
            return
        if fix.quantity is not None and abs(fix.quantity - abs(booked.quantity)) > 1e-12:
            log.error("fill_quantity_correction_not_applied", trade_id=fix.trade_id,
                      client_order_id=fix.client_order_id, booked=abs(booked.quantity),
                      corrected=fix.quantity, action="left to reconciliation")
        inst = booked.instrument_id
        cash_before = self.account.cash
        realized = commission = 0.0
        if fix.price is not None and fix.price != booked.price:
            change = fix.price - booked.price
            for leg in booked.legs:
                book = self.account if leg.book is None else self.model_book(leg.book)
                moved = book.reprice(inst, leg, change)
                if leg.book is None:
                    realized = moved
            booked.price = fix.price
        if fix.commission is not None and fix.commission != booked.commission:
            change = commission = fix.commission - booked.commission
            for leg in booked.legs:
                book = self.account if leg.book is None else self.model_book(leg.book)
                book.recharge(change * leg.share, fee_in_cash=booked.fee_in_cash)
            booked.commission = fix.commission
        # Marks and positions did not move: NAV moves by the cash alone.
        cash = self.account.cash - cash_before
        self._set_nav(self.nav + cash)
        applied = AppliedCorrection(inst, commission, realized, cash)
        for listener in self.correction_listeners:
            listener(fix, applied)

    def forget_fills(self) -> None:
        """Forget the fills corrections could find (the books were replaced wholesale)."""
        self._booked.clear()

    def on_bar(self, bar: Bar) -> None:
        inst = bar.instrument_id
        tf = bar.timeframe
        if self._base.get(inst, tf) != tf:
            return
        close = bar.close
        self.marks[inst] = close
        self.last_bar_ts[inst] = bar.ts
        # A price move of an instrument we hold no position in changes nothing;
        # one we hold moves NAV by its own change alone (O(1), however many
        # positions are open). Inlined rather than calling _set_nav: once per bar.
        pos = self.open_positions.get(inst)
        if pos is not None:
            new = pos.quantity * close * self._mult[inst]
            old = self.position_values[inst]
            self.position_values[inst] = new
            nav = self.nav + (new - old)
            self.nav = nav
            change = (new if new >= 0 else -new) - (old if old >= 0 else -old)
            self.gross += change
            self.class_gross[self._class[inst]] += change
            if nav > self.hwm:
                self.hwm = nav
            hwm = self.hwm
            self.drawdown = 1.0 - nav / hwm if hwm > 0 else 0.0

    def charge(self, amounts: Mapping[str, float]) -> None:
        """Take costs that are not fills (financing) from the account and the named books."""
        total = 0.0
        for name, amount in amounts.items():
            self.model_book(name).cash -= amount
            total += amount
        self.account.cash -= total
        self._set_nav(self.nav - total)

    def _set_nav(self, nav: float) -> None:
        self.nav = nav
        if nav > self.hwm:
            self.hwm = nav
        hwm = self.hwm
        self.drawdown = 1.0 - nav / hwm if hwm > 0 else 0.0

    def _revalue(self) -> None:
        """Recompute NAV and exposures from scratch (after adopting a broker's positions)."""
        nav = self.account.cash
        gross = 0.0
        marks = self.marks
        mult = self._mult
        values = self.position_values
        values.clear()
        by_class = self.class_gross
        for ac in by_class:
            by_class[ac] = 0.0
        for inst, pos in self.open_positions.items():
            v = values[inst] = pos.quantity * marks[inst] * mult[inst]
            nav += v
            a = v if v > 0 else -v
            gross += a
            by_class[self._class[inst]] += a
        self.gross = gross
        self._set_nav(nav)

    def adopt(self, positions: Mapping[str, float], cash: float | None = None) -> None:
        """Take the broker's positions (and cash) as the truth (reconciliation).

        An adopted position keeps its average price if it had one; until the
        first bar it is valued at what is known of its price.
        """
        book = self.account
        for inst, qty in positions.items():
            pos = book.positions.get(inst)
            if pos is None:
                pos = book.positions[inst] = Position()
            pos.quantity = qty
            if not qty:
                pos.avg_price = 0.0
                self.open_positions.pop(inst, None)
            else:
                self.open_positions[inst] = pos
            self.marks.setdefault(inst, pos.avg_price)
        if cash is not None:
            book.cash = cash
        self._revalue()

    # -- queries -------------------------------------------------------------------
    def position(self, instrument_id: str) -> float:
        return self.account.quantity(instrument_id)

    def net_exposure(self) -> float:
        return self.nav - self.account.cash


    def pnl(self) -> float:
        return self.nav - self.initial_cash

    def model_pnl(self) -> dict[str, float]:
        return {name: book.equity(self.marks) for name, book in self.models.items()}
