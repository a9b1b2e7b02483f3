"""The simulated exchange used by replay and by paper sessions.

Fill rules (no look-ahead): an order decided on bar *t* is first examined on
the next base bar of its instrument.

* market: fills at that bar's open, moved against the order by the slippage;
* limit: fills when the bar's range reaches the limit, at the limit, or at the
  open when the bar gaps through it (a better price);
* stop: triggers when the range reaches the stop, at the stop, or at the open
  when the bar gaps through it (a worse price); slippage applies.

Commission is ``commission_bps`` of notional plus ``fee_per_order`` once per
order.  Those are the defaults; spread, other slippage models, a volume
participation cap (partial fills across bars), latency and other commission
schedules are the rules of ``gateways.sim_costs``, used when configured (per
instrument too), and each fill's spread and slippage are kept in ``cost_split``.
The gateway also keeps the broker-side record (orders, fills, cash,
positions) that reconciliation compares against.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping

from gateways.base import (
    AccountReport,
    EventSink,
    GatewayCapabilities,
    OrderReport,
    PositionReport,
)
from gateways.sim_costs import (
    SimCosts,
    commission_of,
    execute,
    participation_cap,
)
from trader.core.events import (
    Bar,
    DataEnded,
    Fill,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)
from trader.core.instruments import Instrument

__all__ = ["SIM_CAPABILITIES", "SimCosts", "SimulatedGateway", "commission", "fill_price"]

SIM_CAPABILITIES = GatewayCapabilities(
    order_types=frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP}),
    time_in_force=frozenset({"GTC"}),
    fills_lookback_ns=None,  # the broker-side record is the whole session
)


def fill_price(order: OrderRequest, bar: Bar, slippage_bps: float) -> float | None:
    """The price at which ``order`` fills on ``bar``, or None if it does not fill."""
    buy = order.side is Side.BUY
    slip = slippage_bps / 10_000.0
    if order.order_type is OrderType.MARKET:
        return bar.open * (1 + slip) if buy else bar.open * (1 - slip)
    if order.order_type is OrderType.LIMIT:
        limit = order.limit_price
        assert limit is not None
        if buy:
            return min(bar.open, limit) if bar.low <= limit else None
        return max(bar.open, limit) if bar.high >= limit else None
    stop = order.stop_price
    assert stop is not None
    if buy:
        return max(bar.open, stop) * (1 + slip) if bar.high >= stop else None
    return min(bar.open, stop) * (1 - slip) if bar.low <= stop else None


def commission(notional: float, costs: SimCosts, first_fill: bool) -> float:
    """Commission of one fill: bps of notional, plus the per-order fee on the first fill."""
    fixed = costs.fee_per_order if first_fill else 0.0
    return abs(notional) * costs.commission_bps / 10_000.0 + fixed


class SimulatedGateway:
    """Executes orders against the bars it is shown; speaks the ``Gateway`` protocol."""

    capabilities = SIM_CAPABILITIES

    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        costs: SimCosts = SimCosts(),
        *,
        base_timeframes: Mapping[str, int] | None = None,
        initial_cash: float = 0.0,
        currency: str = "USD",
        name: str = "sim",
        history_limit: int | None = 50_000,
        costs_by_instrument: Mapping[str, SimCosts] | None = None,
    ) -> None:
        self.name = name
        self.instruments = dict(instruments)
        self.costs = costs
        self._costs_of = dict(costs_by_instrument or {})
        # The original rules (open +- slippage, bps + fee) run unless something else is
        # configured: existing results stay byte for byte what they were.
        self.realistic = not costs.is_default or any(
            not c.is_default for c in self._costs_of.values())
        # trade id -> (spread, slippage) paid by that fill, in account currency; read
        # (and popped) by the recorder for the cost split of trades.csv
        self.cost_split: dict[str, tuple[float, float]] = {}
        self._remaining: dict[str, float] = {}  # coid -> quantity still to fill
        self._charged: dict[str, float] = {}  # coid -> commission charged so far
        self._waited: dict[str, int] = {}  # coid -> bars seen while in latency
        self._base = dict(base_timeframes or {})
        self._sink: EventSink = lambda _e: None
        self._pending: dict[str, dict[str, OrderRequest]] = {}  # instrument -> coid -> order
        self._orders: dict[str, OrderReport] = {}
        self._last: dict[str, Bar] = {}
        self._seq = 0
        # The broker-side record is bounded so a replay's memory does not grow
        # with history; ``history_limit=None`` keeps everything (a paper broker).
        self.history_limit = history_limit
        self.fills: deque[Fill] = deque(maxlen=history_limit)
        self.cash: dict[str, float] = {currency: initial_cash}
        self.positions: dict[str, float] = {}
        self.avg_prices: dict[str, float] = {}
        self.currency = currency
        self.submitted: deque[str] = deque(maxlen=history_limit)
        self._terminal: deque[str] = deque()

    # -- Gateway protocol -------------------------------------------------
    def bind(self, sink: EventSink) -> None:
        self._sink = sink

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    def submit(self, order: OrderRequest) -> None:
        # The order's fields are read once: each read of a msgspec field from compiled
        # code is a generic attribute lookup.
        coid = order.client_order_id
        inst_id = order.instrument_id
        self.submitted.append(coid)
        inst = self.instruments.get(inst_id)
        ts = order.ts
        if coid in self._orders:
            self._emit_update(coid, OrderStatus.REJECTED, ts, "duplicate client order id")
            return
        reason = None
        limit = order.limit_price
        stop = order.stop_price
        if inst is None:
            reason = f"unknown instrument {inst_id}"
        elif limit is None and order.order_type is OrderType.LIMIT:
            reason = "limit order without limit price"
        elif stop is None and order.order_type is OrderType.STOP:
            reason = "stop order without stop price"
        else:
            sent = limit if limit is not None else stop
            ref = sent
            if ref is None and inst_id in self._last:
                ref = self._last[inst_id].close
            reason = inst.constraint_violation(order.quantity, ref, check_tick=sent is not None)
        self._orders[coid] = OrderReport(
            coid, inst_id, OrderStatus.ACCEPTED, order.side.value, order.quantity, 0.0,
            f"S{len(self._orders) + 1}", limit,
        )
        if reason:
            self._set_status(coid, OrderStatus.REJECTED)
            self._emit_update(coid, OrderStatus.REJECTED, ts, reason)
            return
        self._pending.setdefault(inst_id, {})[coid] = order
        self._emit_update(coid, OrderStatus.ACCEPTED, ts)

    def cancel(self, client_order_id: str) -> None:
        report = self._orders.get(client_order_id)
        if report is None:
            return
        book = self._pending.get(report.instrument_id, {})
        order = book.pop(client_order_id, None)
        if order is None:
            return
        for d in (self._remaining, self._charged, self._waited):
            d.pop(client_order_id, None)
        self._set_status(client_order_id, OrderStatus.CANCELED)
        ts = self._last[report.instrument_id].ts if report.instrument_id in self._last else order.ts
        self._emit_update(client_order_id, OrderStatus.CANCELED, ts, "canceled")

    async def open_orders(self) -> list[OrderReport]:
        return [r for r in self._orders.values() if not r.status.is_terminal]

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        return self._orders.get(client_order_id)

    async def fills_since(self, ts: int) -> list[Fill]:
        return [f for f in self.fills if f.ts >= ts]

    async def account(self) -> AccountReport:
        positions = {k: v for k, v in self.positions.items() if v}
        avg = {k: p for k, p in self.avg_prices.items() if k in positions}
        details = tuple(PositionReport(k, q, avg.get(k)) for k, q in sorted(positions.items()))
        return AccountReport(dict(self.cash), positions, avg, details,
                             buying_power=self.cash.get(self.currency, 0.0))

    # -- market data ----------------------------------------------------------
    def on_bar(self, bar: Bar) -> None:
        inst_id = bar.instrument_id
        base = self._base.get(inst_id)
        if base is not None and bar.timeframe != base:
            return
        if self.realistic:
            self._on_bar_realistic(bar)
            return
        self._last[inst_id] = bar
        book = self._pending.get(inst_id)
        if not book:
            return
        for coid, order in list(book.items()):
            if coid not in book:
                continue  # cancelled by a fill of this bar (a bracket's other child)
            if order.ts > bar.ts_open:
                # Decided on this very bar, or while it was open (an order placed at
                # another instrument's bar, e.g. by the risk engine): it cannot take
                # this bar's open, which is in its past; it fills from the next one.
                continue
            price = fill_price(order, bar, self.costs.slippage_bps)
            if price is None:
                continue
            del book[coid]
            self._fill(order, price, bar.ts_open)

    def on_data_end(self, event: DataEnded) -> None:
        """No bar of ``event.instrument_id`` will come: market orders fill at its last close
        (plus slippage), other orders are cancelled."""
        book = self._pending.pop(event.instrument_id, {})
        slip = self.costs.slippage_bps / 10_000.0
        for coid, order in book.items():
            left = self._remaining.pop(coid, order.quantity)  # a partly filled order: the rest
            if order.order_type is OrderType.MARKET:
                buy = order.side is Side.BUY
                self._fill(order, event.last_close * (1 + slip if buy else 1 - slip), event.ts,
                           left)
            else:
                self._set_status(coid, OrderStatus.CANCELED)
                self._emit_update(coid, OrderStatus.CANCELED, event.ts, "data ended")

    def _on_bar_realistic(self, bar: Bar) -> None:
        """Fills under the configured spread, slippage, participation cap and latency."""
        inst_id = bar.instrument_id
        prev = self._last.get(inst_id)
        self._last[inst_id] = bar
        book = self._pending.get(inst_id)
        if not book:
            return
        costs = self._costs_of.get(inst_id, self.costs)
        inst = self.instruments[inst_id]
        used = 0.0  # units filled on this bar: the participation cap is per bar
        for coid, order in list(book.items()):
            if coid not in book:
                continue  # cancelled by a fill of this bar (a bracket's other child)
            if order.ts > bar.ts_open:
                continue  # decided on this bar or while it was open (see on_bar)
            if costs.latency_bars:
                waited = self._waited[coid] = self._waited.get(coid, 0) + 1
                if waited <= costs.latency_bars:
                    continue
            remaining = self._remaining.get(coid, order.quantity)
            cap = participation_cap(costs, bar, used)
            qty = remaining if remaining <= cap else inst.round_quantity(cap)
            if qty <= 0:
                continue
            ex = execute(order, bar, prev, qty, costs)
            if ex is None:
                continue
            used += qty
            filled_before = order.quantity - remaining
            notional = qty * ex.price * inst.multiplier
            fee = commission_of(costs, order, qty, notional, filled_before,
                                self._charged.get(coid, 0.0))
            left = remaining - qty
            done = left <= order.quantity * 1e-9
            if done:
                del book[coid]
                for d in (self._remaining, self._charged, self._waited):
                    d.pop(coid, None)
            else:
                self._remaining[coid] = left
                self._charged[coid] = self._charged.get(coid, 0.0) + fee
            m = qty * inst.multiplier
            self._fill(order, ex.price, bar.ts_open, qty, fee, done,
                       (ex.spread_cost * m, ex.slippage_cost * m))

    def _fill(self, order: OrderRequest, price: float, ts: int, qty: float | None = None,
              fee: float | None = None, done: bool = True,
              split: tuple[float, float] | None = None) -> None:
        coid = order.client_order_id
        inst_id = order.instrument_id
        side = order.side
        inst = self.instruments[inst_id]
        if qty is None:
            qty = order.quantity
        notional = qty * price * inst.multiplier
        if fee is None:
            fee = commission(notional, self.costs, first_fill=True)
        self._seq += 1
        r = self._orders[coid]
        fill = Fill(ts, coid, f"sim-{self._seq}", inst_id, side, qty, price, fee,
                    r.broker_order_id)
        sign = side.sign
        before = self.positions.get(inst_id, 0.0)
        after = before + sign * qty
        self.positions[inst_id] = after
        if abs(after) < 1e-12:
            self.avg_prices.pop(inst_id, None)
        elif before * after < 0 or before == 0:  # opened, or flipped through zero
            self.avg_prices[inst_id] = price
        elif abs(after) > abs(before):  # added to: weighted entry price
            prev = self.avg_prices.get(inst_id, price)
            self.avg_prices[inst_id] = (prev * abs(before) + price * qty) / abs(after)
        self.cash[self.currency] = self.cash.get(self.currency, 0.0) - sign * notional - fee
        self._orders[coid] = OrderReport(
            r.client_order_id, r.instrument_id,
            OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED, r.side, r.quantity,
            r.filled_quantity + qty, r.broker_order_id, r.limit_price,
        )
        self.fills.append(fill)
        if done:
            self._forget_old(coid)
        if split is not None:
            self.cost_split[fill.trade_id] = split  # before the fill is published
        self._sink(fill)

    def _forget_old(self, coid: str) -> None:
        limit = self.history_limit
        if limit is None:
            return
        self._terminal.append(coid)
        while len(self._terminal) > limit:
            self._orders.pop(self._terminal.popleft(), None)

    def _set_status(self, coid: str, status: OrderStatus) -> None:
        if status.is_terminal:
            self._forget_old(coid)
        r = self._orders[coid]
        self._orders[coid] = OrderReport(
            r.client_order_id, r.instrument_id, status, r.side, r.quantity,
            r.filled_quantity, r.broker_order_id, r.limit_price,
        )

    def _emit_update(self, coid: str, status: OrderStatus, ts: int, reason: str = "") -> None:
        broker_id = self._orders[coid].broker_order_id if coid in self._orders else ""
        self._sink(OrderUpdate(ts, coid, status, reason, broker_id))
