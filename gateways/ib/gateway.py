"""The Interactive Brokers gateway: bars in, orders out, fills back, over ib_async.

One ``IB`` client per socket session: after a drop or the nightly restart a new
one is built, so nothing of the old session (its order ids, its trades keyed by
``(clientId, orderId)``) can be confused with the new one.  Orders are known by
our client order id, sent as ``orderRef``, and by IB's ``permId``; the integer
``orderId`` is only used inside the session that issued it, and after a restart
(which rolls IB's ``nextValidId`` back) the id sequence is pushed above every id
the account still shows.

Rules that matter for money:

* no order status within ``ack_timeout_s`` (or the socket broke first): the order
  goes to ``OUTCOME_UNKNOWN`` and ``InFlightResolver`` looks for it by
  ``orderRef`` among open orders and executions; it is never re-sent;
* a fill is emitted once per execution (``execId``; a revised ``execId`` of the
  same execution is a ``FillCorrection``); the commission, which IB sends later,
  is a ``FillCorrection`` too;
* after every reconnect, and after 1101/1102, the executions since the last fill
  seen are pulled before the gateway reports itself resynced.

Bars: ``reqHistoricalData(keepUpToDate=True)``; IB updates the forming bar in
place, and a bar is published only when a later one starts (never the forming
one), each once, through ``BarGuard``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field
from typing import Any

import msgspec
import structlog

from gateways.base import (
    DAY_NS,
    AccountReport,
    EventSink,
    GatewayCapabilities,
    GatewayStartError,
    History,
    OrderReport,
    PositionReport,
    expected_bars,
)
from gateways.ib import convert, errors
from gateways.ib.config import IbGatewayConfig, load_account
from gateways.ib.contracts import ContractBook, NotListed
from gateways.ib.errors import Kind
from gateways.ib.pacing import HistoryPacer
from gateways.ib.redact import redact_ib_logs
from gateways.inflight import InFlightResolver, backoff_delay
from gateways.tasks import GatewayTasks
from gateways.tracking import lost_answer, mark_cancel
from gateways.validation import BarGuard
from trader.core.events import (
    Bar,
    Fill,
    FillCorrection,
    GatewayHealth,
    HealthState,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
)

log = structlog.get_logger(__name__)

NS = 1_000_000_000
# reqExecutions lists the executions of the current day (TWS may be set to keep up to
# seven; the default is one): the reconciliation horizon this gateway declares
FILLS_LOOKBACK_NS = DAY_NS
_EPS = 1e-9


def capabilities_for(config: IbGatewayConfig) -> GatewayCapabilities:
    """What this gateway implements on IB."""
    return GatewayCapabilities(
        order_types=frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP}),
        time_in_force=frozenset({"DAY", "GTC"}), modify=True, stop_limit=True, bracket=True,
        oco=True, hedged_positions=False, client_order_ids=True,
        market_data=config.market_data, trading=config.trading,
        fills_lookback_ns=FILLS_LOOKBACK_NS)


@dataclass(slots=True)
class _Order:
    """Gateway-side memory of one order."""

    client_order_id: str
    instrument_id: str
    request: OrderRequest | None = None
    perm_id: int = 0
    order_id: int = 0  # valid in ``session`` only
    session: int = 0
    ib_order: Any = None
    accepted_sent: bool = False
    terminal_sent: bool = False
    in_flight: bool = False
    cancel_requested: bool = False
    filled: float = 0.0
    exec_ids: set[str] = field(default_factory=set)


@dataclass(slots=True)
class _PendingFill:
    """A Fill in the outbox; its commission is read when it leaves."""

    fill: Fill
    queued: float = 0.0  # loop time it was queued

    def trade_id_fee_unknown(self, fees: dict[str, float]) -> bool:
        """No commission for this execution yet (IB never charges exactly zero here)."""
        return not fees.get(self.fill.trade_id)


@dataclass(slots=True)
class IbStats:
    """Counters for operators and tests."""

    sessions: int = 0
    reconnects: int = 0
    recovered_fills: int = 0
    pacing_violations: int = 0
    corrections: int = 0
    skipped_messages: int = 0


class IbGateway:
    """Market data and execution on one TWS / IB Gateway login."""

    def __init__(self, config: IbGatewayConfig, *, account: str | None = None,
                 rng: random.Random | None = None) -> None:
        self.name = config.name
        self.config = config
        self.capabilities = capabilities_for(config)
        self._account = account
        self._rng = rng or random.Random()
        self._tf = config.timeframe_seconds
        self.book = ContractBook(config.contracts)
        self.pacer = HistoryPacer(identical_s=config.timing.pacing_identical_s,
                                  window_max=config.timing.pacing_window_max)
        self.stats = IbStats()
        self._raw_sink: EventSink = lambda _e: None
        self._sink: EventSink = self._raw_sink
        self.guard: BarGuard | None = None
        self.ib: Any = None
        self.session = 0  # counts socket sessions; order ids are per session
        self._running = False
        self._closing = False
        self._streaming = False
        self._tasks = GatewayTasks(self.name)
        self._orders: dict[str, _Order] = {}
        self._by_perm: dict[int, str] = {}
        self._exec_base: dict[str, tuple[str, Fill]] = {}  # base execId -> (coid, fill)
        self._commission: dict[str, float] = {}
        self._cursor: dict[str, int | None] = {i: None for i in config.contracts}
        self._bar_lists: dict[str, Any] = {}
        self.streaming: set[str] = set()  # instruments whose live bars flow in this session
        self._offset_ns = 0
        self._last_fill_ns: int | None = None
        self._link_ok = True
        self._farm_bad: set[str] = set()
        self._reconnecting = False
        # events leave in order at the end of the current socket read, so a commission
        # report that came with its execution is folded into the Fill (not a correction)
        self._outbox: list[Any] = []
        self._flush_scheduled = False
        t = config.timing
        self._resolver = InFlightResolver(
            self._resolve_lookup, self._resolve_found, self._resolve_absent, gateway=self.name,
            initial_s=min(0.5, t.reconnect_initial_s), max_s=t.reconnect_max_s,
            jitter=t.backoff_jitter, settle_s=t.unknown_settle_s, rng=self._rng,
            timeout_s=t.unknown_order_timeout_s, on_lost=self._order_lost)

    # -- protocol: wiring ----------------------------------------------------------------
    def bind(self, sink: EventSink) -> None:
        """Everything goes to ``sink``; bars through a ``BarGuard``."""
        self._raw_sink = sink
        self.guard = BarGuard(sink, gateway=self.name, venue="ib", band=self.config.bar_band,
                              now_ns=self.now_ns)
        self._sink = self.guard

    @property
    def resolver(self) -> InFlightResolver:
        """The resolver of submits whose outcome is unknown."""
        return self._resolver

    def now_ns(self) -> int:
        """IB's clock (local clock plus the offset measured at the last connect)."""
        import time

        return time.time_ns() + self._offset_ns

    # -- connect / close ---------------------------------------------------------------
    async def connect(self, *, stream: bool = True) -> None:
        """Connect, check the account, qualify every contract; then stream (``stream``)."""
        if self._running:
            if stream:
                self.start_streams()
            return
        cfg = self.config
        if self._account is None:
            self._account = load_account(cfg) if cfg.trading else ""
        redact_ib_logs(self._account)
        try:
            await self._open_session()
        except GatewayStartError:
            raise
        except NotListed as exc:
            await self._drop_ib()
            raise GatewayStartError(f"gateway {self.name}: {exc}") from None
        self._running = True
        self._set_health(HealthState.CONNECTED,
                         f"connected to IB {cfg.mode} at {cfg.host}:{cfg.resolved_port}")
        if stream:
            self.start_streams()

    async def _open_session(self) -> None:
        """One socket session: connect (retrying a clientId still held), sync, qualify."""
        from ib_async import IB

        cfg, t = self.config, self.config.timing
        last: BaseException | None = None
        for attempt in range(1, t.connect_attempts + 1):
            ib = IB()
            ib.RaiseRequestErrors = True
            self._attach(ib)
            try:
                await ib.connectAsync(cfg.host, cfg.resolved_port, cfg.client_id,
                                      timeout=t.connect_timeout_s, readonly=not cfg.trading,
                                      account=self._account or "")
                break
            except (TimeoutError, ConnectionError, OSError) as exc:
                last = exc
                self._detach(ib)
                ib.disconnect()
                await asyncio.sleep(backoff_delay(attempt, 0.05, t.reconnect_max_s))
        else:
            raise GatewayStartError(
                f"gateway {self.name}: cannot connect to TWS/IB Gateway at {cfg.host}:"
                f"{cfg.resolved_port} with clientId {cfg.client_id} after "
                f"{t.connect_attempts} attempts: {type(last).__name__}: {last}")
        self.ib = ib
        accounts = ib.client.getAccounts()
        if self._account and self._account not in accounts:
            await self._drop_ib()
            raise GatewayStartError(
                f"gateway {self.name}: the configured account (credentials: "
                f"{cfg.account_env or cfg.account_file}) is not managed by this TWS login "
                f"({len(accounts)} account(s) there)")
        try:
            current = await asyncio.wait_for(ib.reqCurrentTimeAsync(), t.request_timeout_s)
            import time

            self._offset_ns = convert.to_ns(current) - time.time_ns()
            await self.book.qualify(ib, list(cfg.contracts))
        except NotListed:
            raise
        except Exception as exc:
            await self._drop_ib()
            raise GatewayStartError(f"gateway {self.name}: TWS did not complete the start: "
                                    f"{type(exc).__name__}: {exc}") from None
        self.session += 1
        self.stats.sessions += 1
        self._bump_order_ids(ib)
        self._adopt(ib.openTrades())

    def _attach(self, ib: Any) -> None:
        ib.errorEvent += self._on_error
        ib.disconnectedEvent += self._on_disconnected
        ib.orderStatusEvent += self._on_status
        ib.openOrderEvent += self._on_status
        ib.execDetailsEvent += self._on_exec
        ib.commissionReportEvent += self._on_commission

    def _detach(self, ib: Any) -> None:
        ib.errorEvent -= self._on_error
        ib.disconnectedEvent -= self._on_disconnected
        ib.orderStatusEvent -= self._on_status
        ib.openOrderEvent -= self._on_status
        ib.execDetailsEvent -= self._on_exec
        ib.commissionReportEvent -= self._on_commission

    async def _drop_ib(self) -> None:
        ib, self.ib = self.ib, None
        if ib is not None:
            self._detach(ib)
            ib.disconnect()

    def _bump_order_ids(self, ib: Any) -> None:
        """After a restart IB may hand out ids it used before: start above all it shows."""
        used = [tr.order.orderId for tr in ib.trades()] + [
            f.execution.orderId for f in ib.fills()]
        if used:
            ib.client.updateReqId(max(used) + 1)

    def start_streams(self) -> None:
        """Start live bars (``market_data``); orders stream on the socket anyway."""
        if self._streaming or not self._running:
            return
        self._streaming = True
        if self.config.market_data:
            self._spawn(self._subscribe_all(backfill=False), "bars")

    async def close(self) -> None:
        """Stop every task and the socket; orders of unknown outcome wait for the next start."""
        self._closing = True
        self._running = False
        self._streaming = False
        await self._resolver.close()
        await self._tasks.cancel_all()
        self._drain()  # a Fill still waiting for its commission leaves now, without it
        await self._drop_ib()

    # -- orders -------------------------------------------------------------------------
    def submit(self, order: OrderRequest) -> None:
        """Place an order (orderRef = our id); never blocks, never raises."""
        coid = order.client_order_id
        why = self._refusal(order)
        if why is not None:
            self._emit(coid, OrderStatus.REJECTED, why)
            return
        tracked = _Order(coid, order.instrument_id, request=order)
        self._orders[coid] = tracked
        self._place(tracked, convert.order_fields(order))

    def _refusal(self, order: OrderRequest) -> str | None:
        if order.instrument_id not in self.config.contracts:
            return f"instrument {order.instrument_id} is not traded on {self.name}"
        if not self.config.trading:
            return f"gateway {self.name} is market-data only (trading: false)"
        if order.client_order_id in self._orders:
            return f"duplicate client order id {order.client_order_id} (not sent)"
        if not self._running or self.ib is None or not self.ib.isConnected():
            return f"gateway {self.name} is not connected to TWS (not sent)"
        return self.capabilities.supports(order)

    def _place(self, tracked: _Order, fields: dict[str, Any], **extra: Any) -> None:
        from ib_async import Order

        ib = self.ib
        o = Order(tif=self.config.tif, account=self._account or "", **fields, **extra)
        tracked.ib_order = o
        tracked.session = self.session
        tracked.in_flight = True
        try:
            trade = ib.placeOrder(self.book.contract(tracked.instrument_id), o)
        except Exception as exc:  # noqa: BLE001 - the socket broke under the send
            self._outcome_unknown(tracked, f"{type(exc).__name__}: {exc}")
            return
        tracked.order_id = trade.order.orderId
        self._spawn(self._watch_ack(tracked), f"ack:{tracked.client_order_id}")

    async def _watch_ack(self, tracked: _Order) -> None:
        await asyncio.sleep(self.config.timing.ack_timeout_s)
        if tracked.in_flight and not tracked.accepted_sent and not tracked.terminal_sent:
            self._outcome_unknown(tracked, f"no order status within "
                                           f"{self.config.timing.ack_timeout_s:g} s")

    def _outcome_unknown(self, tracked: _Order, why: str) -> None:
        if tracked.accepted_sent or tracked.terminal_sent:
            return
        if tracked.client_order_id in self._resolver.pending:
            return
        log.warning("submit_outcome_unknown", gateway=self.name,
                    client_order_id=tracked.client_order_id, error=why)
        self._emit(tracked.client_order_id, OrderStatus.OUTCOME_UNKNOWN, lost_answer(why))
        self._resolver.track(tracked.client_order_id)

    def cancel(self, client_order_id: str) -> None:
        """Ask IB to cancel; the outcome arrives as an ``OrderUpdate``."""
        tracked = mark_cancel(self._orders, client_order_id)
        if tracked is None:
            return
        trade = self._trade_of(tracked)
        if trade is None or self.ib is None:
            return  # sent once the order is found again (reconnect adopts it)
        try:
            self.ib.cancelOrder(trade.order)
        except Exception as exc:  # noqa: BLE001 - retried after the next reconnect
            log.warning("cancel_not_sent", gateway=self.name, client_order_id=client_order_id,
                        error=f"{type(exc).__name__}: {exc}")

    def modify(self, client_order_id: str, *, quantity: float | None = None,
               limit_price: float | None = None, stop_price: float | None = None) -> bool:
        """Change a working order in place (IB: ``placeOrder`` again with its orderId).

        Returns False (and changes nothing) if the order is not working in this session.
        """
        tracked = self._orders.get(client_order_id)
        trade = self._trade_of(tracked) if tracked is not None else None
        if tracked is None or trade is None or tracked.terminal_sent or self.ib is None:
            return False
        o = trade.order
        if quantity is not None:
            o.totalQuantity = float(quantity)
        if limit_price is not None:
            o.lmtPrice = float(limit_price)
        if stop_price is not None:
            o.auxPrice = float(stop_price)
        try:
            self.ib.placeOrder(trade.contract, o)
        except Exception as exc:  # noqa: BLE001 - the socket broke: the order is unchanged
            log.warning("modify_not_sent", gateway=self.name, client_order_id=client_order_id,
                        error=f"{type(exc).__name__}: {exc}")
            return False
        return True

    def submit_bracket(self, entry: OrderRequest, take_profit: float,
                       stop_loss: float) -> tuple[str, str, str]:
        """An entry with a take-profit limit and a stop-loss, the two exits one OCA group.

        The exits are children (``parentId``) of the entry: IB works them only after
        the entry fills, and cancels one when the other fills.  Returns the three
        client order ids (entry, ``-TP``, ``-SL``).
        """
        coid = entry.client_order_id
        tp, sl = f"{coid}-TP", f"{coid}-SL"
        why = self._refusal(entry)
        if why is None and (tp in self._orders or sl in self._orders):
            why = f"duplicate client order id {tp}/{sl} (not sent)"
        if why is not None:
            for c in (coid, tp, sl):
                self._emit(c, OrderStatus.REJECTED, why)
            return coid, tp, sl
        exit_side = "SELL" if entry.side.value == "BUY" else "BUY"
        parent = _Order(coid, entry.instrument_id, request=entry)
        self._orders[coid] = parent
        self._place(parent, convert.order_fields(entry), transmit=False)
        group = f"oca-{coid}"
        legs = ((tp, {"orderType": "LMT", "lmtPrice": float(take_profit)}, False),
                (sl, {"orderType": "STP", "auxPrice": float(stop_loss)}, True))
        for c, kind, last in legs:
            child = _Order(c, entry.instrument_id)
            self._orders[c] = child
            fields = {"action": exit_side, "totalQuantity": float(entry.quantity),
                      "orderRef": c, **kind}
            self._place(child, fields, parentId=parent.order_id, ocaGroup=group, ocaType=1,
                        transmit=last)
        return coid, tp, sl

    def _trade_of(self, tracked: _Order) -> Any:
        if self.ib is None:
            return None
        for tr in self.ib.trades():
            if tr.order.orderRef == tracked.client_order_id and not tr.isDone():
                return tr
        return None

    # -- order events from IB -----------------------------------------------------------
    def _on_status(self, trade: Any) -> None:
        try:
            self._apply_status(trade)
        except Exception:
            self.stats.skipped_messages += 1
            log.exception("order_status_skipped", gateway=self.name)

    def _apply_status(self, trade: Any) -> None:
        o, st = trade.order, trade.orderStatus
        coid = o.orderRef
        tracked = self._orders.get(coid) if coid else None
        if tracked is None:
            tracked = self._adopt_one(trade)
            if tracked is None:
                return
        perm = int(o.permId or st.permId or 0)
        if perm and not tracked.perm_id:
            tracked.perm_id = perm
            self._by_perm[perm] = coid
        word = st.status
        error = trade.log[-1].errorCode if trade.log else 0
        if word == "Cancelled" and error and errors.classify(error) is not Kind.CANCELLED:
            self._on_order_error(tracked, error, trade.log[-1].message)
            return
        status = convert.status_from_ib(word)
        if status is None or tracked.terminal_sent:
            return
        if status is OrderStatus.REJECTED:
            self._terminal(tracked, OrderStatus.REJECTED, f"IB status {word}")
            return
        self._ack(tracked)
        if float(st.filled or 0) > tracked.filled + _EPS:
            self._spawn(self._catch_up(tracked), f"catchup:{coid}")
        if status is OrderStatus.CANCELED:
            self._terminal(tracked, OrderStatus.CANCELED, f"IB status {word}")
        elif status is OrderStatus.FILLED and tracked.filled >= float(st.filled or 0) - _EPS:
            tracked.terminal_sent = True  # the router derives FILLED from the fills

    def _on_order_error(self, tracked: _Order, code: int, message: str) -> None:
        kind = errors.classify(code)
        text = errors.reason(code, message.split(": ", 1)[-1] if message else "")
        if kind is Kind.CANCELLED:
            self._terminal(tracked, OrderStatus.CANCELED, text)
        elif tracked.accepted_sent and kind is not Kind.REJECTED:
            log.warning("order_warning", gateway=self.name, client_order_id=tracked.client_order_id,
                        reason=text)
        else:
            self._terminal(tracked, OrderStatus.REJECTED, text)

    def _ack(self, tracked: _Order) -> None:
        tracked.in_flight = False
        if not tracked.accepted_sent and not tracked.terminal_sent:
            tracked.accepted_sent = True
            self._resolver.forget(tracked.client_order_id)
            self._emit(tracked.client_order_id, OrderStatus.ACCEPTED, "",
                       str(tracked.perm_id or ""))
            if tracked.cancel_requested:
                self.cancel(tracked.client_order_id)

    def _terminal(self, tracked: _Order, status: OrderStatus, reason: str) -> None:
        if tracked.terminal_sent:
            return
        tracked.terminal_sent = True
        tracked.in_flight = False
        self._resolver.forget(tracked.client_order_id)
        self._emit(tracked.client_order_id, status, reason, str(tracked.perm_id or ""))

    def _adopt(self, trades: list[Any]) -> None:
        for tr in trades:
            self._adopt_one(tr)

    def _adopt_one(self, trade: Any) -> _Order | None:
        """An order of ours IB shows (placed before a restart): track it silently."""
        ref = trade.order.orderRef
        inst = self.book.instrument_of(trade.contract)
        if not ref or inst is None:
            return None
        tracked = self._orders.get(ref)
        if tracked is None:
            tracked = _Order(ref, inst, accepted_sent=True,
                             filled=float(trade.orderStatus.filled or 0))
            self._orders[ref] = tracked
        perm = int(trade.order.permId or 0)
        if perm:
            tracked.perm_id = perm
            self._by_perm[perm] = ref
        return tracked

    def _on_exec(self, trade: Any, fill: Any) -> None:
        try:
            self._apply_execution(fill.execution, fill.contract,
                                  float(fill.commissionReport.commission or 0.0))
        except Exception:
            self.stats.skipped_messages += 1
            log.exception("execution_skipped", gateway=self.name)

    def _apply_execution(self, ex: Any, contract: Any, commission: float = 0.0) -> bool:
        """Emit one execution of ours once; a revised execId is a correction.  True if new."""
        coid = ex.orderRef or self._by_perm.get(int(ex.permId or 0), "")
        tracked = self._orders.get(coid)
        inst = self.book.instrument_of(contract)
        if tracked is None or inst is None:
            return False
        exec_id = ex.execId
        if exec_id in tracked.exec_ids:
            return False
        base = convert.exec_base(exec_id)
        seen = self._exec_base.get(base)
        tracked.exec_ids.add(exec_id)
        if seen is not None:  # IB corrected an execution it reported before
            _c, first = seen
            self.stats.corrections += 1
            self._out(FillCorrection(self.now_ns(), first.trade_id, coid,
                                     price=float(ex.price), quantity=float(ex.shares)))
            return False
        fill = convert.fill_from_ib(ex, inst, commission)
        self._ack(tracked)
        tracked.filled += fill.quantity
        self._exec_base[base] = (coid, fill)
        self._commission[exec_id] = commission
        self._last_fill_ns = max(self._last_fill_ns or 0, fill.ts)
        self._out(_PendingFill(fill, asyncio.get_running_loop().time()))
        return True

    def _on_commission(self, trade: Any, fill: Any, report: Any) -> None:
        exec_id = report.execId
        if exec_id not in self._commission:
            return
        value = float(report.commission or 0.0)
        if abs(value - self._commission[exec_id]) > _EPS:
            self._commission[exec_id] = value
            if exec_id in self._unsent:  # the Fill waits in the outbox: it leaves now, with it
                asyncio.get_running_loop().call_soon(self._flush)
                return
            coid = fill.execution.orderRef
            self._out(FillCorrection(self.now_ns(), exec_id, coid, commission=value))

    async def _catch_up(self, tracked: _Order) -> None:
        """IB's status shows more filled than the executions we saw: ask for them."""
        await asyncio.sleep(self.config.timing.fill_catch_up_s)
        ts = (tracked.request.ts if tracked.request else self.now_ns()) - DAY_NS
        await self._pull_executions(ts)

    async def _pull_executions(self, since_ns: int) -> int:
        """Emit every execution of ours since ``since_ns`` not seen yet; how many."""
        from ib_async import ExecutionFilter

        if self.ib is None:
            return 0
        got = await asyncio.wait_for(
            self.ib.reqExecutionsAsync(ExecutionFilter(time=convert.ib_utc(since_ns))),
            self.config.timing.request_timeout_s)
        n = 0
        fees = self._known_commissions()
        for f in sorted(got, key=lambda f: f.execution.time):
            if self._apply_execution(f.execution, f.contract, fees.get(f.execution.execId, 0.0)):
                n += 1
        self.stats.recovered_fills += n
        return n

    def _known_commissions(self) -> dict[str, float]:
        """Commission per execId as this session knows it.

        ib_async fills the commission report into the first ``Fill`` object it made for
        an execution; a later reqExecutions answer carries fresh objects without it.
        """
        if self.ib is None:
            return {}
        return {f.execution.execId: float(f.commissionReport.commission or 0.0)
                for f in self.ib.fills()}

    # -- reconciliation ---------------------------------------------------------------
    def _need_ib(self) -> Any:
        if self.ib is None or not self.ib.isConnected():
            raise ConnectionError(f"gateway {self.name} is not connected to TWS")
        return self.ib

    async def open_orders(self) -> list[OrderReport]:
        """Every open order of the account that carries an orderRef (reqAllOpenOrders)."""
        ib = self._need_ib()
        trades = await asyncio.wait_for(ib.reqAllOpenOrdersAsync(),
                                        self.config.timing.request_timeout_s)
        out = []
        for tr in trades:
            inst = self.book.instrument_of(tr.contract)
            if tr.order.orderRef and inst is not None:
                out.append(convert.report_from_trade(tr, inst))
        return out

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        """The order by our id: open orders first, then today's executions."""
        for rep in await self.open_orders():
            if rep.client_order_id == client_order_id:
                return rep
        fills = [f for f in await self.fills_since(self.now_ns() - FILLS_LOOKBACK_NS)
                 if f.client_order_id == client_order_id]
        if not fills:
            return None
        qty = sum(f.quantity for f in fills)
        req = self._orders.get(client_order_id)
        total = req.request.quantity if req is not None and req.request else qty
        status = OrderStatus.FILLED if qty >= total - _EPS else OrderStatus.PARTIALLY_FILLED
        return OrderReport(client_order_id, fills[0].instrument_id, status,
                           fills[0].side.value, total, qty, fills[0].broker_order_id)

    async def fills_since(self, ts: int) -> list[Fill]:
        """Every execution of the account since ``ts`` (back to one day), ours by orderRef."""
        from ib_async import ExecutionFilter

        ib = self._need_ib()
        got = await asyncio.wait_for(
            ib.reqExecutionsAsync(ExecutionFilter(time=convert.ib_utc(ts))),
            self.config.timing.request_timeout_s)
        out = []
        fees = self._known_commissions()
        for f in got:
            inst = self.book.instrument_of(f.contract)
            if inst is None or not f.execution.orderRef:
                continue
            fill = convert.fill_from_ib(f.execution, inst, fees.get(f.execution.execId, 0.0))
            if fill.ts >= ts:
                out.append(fill)
        return sorted(out, key=lambda x: (x.ts, x.trade_id))

    async def account(self) -> AccountReport:
        """Cash per currency, positions with average cost, buying power and margin."""
        ib = self._need_ib()
        positions = await asyncio.wait_for(ib.reqPositionsAsync(),
                                           self.config.timing.request_timeout_s)
        net: dict[str, float] = {}
        avg: dict[str, float] = {}
        details = []
        for p in positions:
            inst = self.book.instrument_of(p.contract)
            if inst is None or abs(p.position) < _EPS:
                continue
            mult = float(p.contract.multiplier or 1) or 1.0
            net[inst] = net.get(inst, 0.0) + float(p.position)
            avg[inst] = float(p.avgCost) / mult
            details.append(PositionReport(inst, float(p.position), avg[inst]))
        cash: dict[str, float] = {}
        values: dict[str, float] = {}
        for v in ib.accountValues(self._account or ""):
            if v.tag == "CashBalance" and v.currency not in ("", "BASE"):
                cash[v.currency] = float(v.value)
            elif v.currency not in ("BASE",) and v.tag in (
                    "BuyingPower", "InitMarginReq", "AvailableFunds", "NetLiquidation"):
                values[v.tag] = float(v.value)
        return AccountReport(cash=cash, positions=net, avg_prices=avg,
                             position_details=tuple(details),
                             buying_power=values.get("BuyingPower"),
                             margin_used=values.get("InitMarginReq"),
                             margin_available=values.get("AvailableFunds"),
                             equity=values.get("NetLiquidation"))

    # -- the resolver ---------------------------------------------------------------------
    async def _resolve_lookup(self, coid: str) -> Any:
        tracked = self._orders.get(coid)
        if tracked is None or tracked.accepted_sent or tracked.terminal_sent:
            return {}  # settled meanwhile
        if self._reconnecting:
            raise ConnectionError("reconnecting to TWS")
        return await self.order_status(coid)

    async def _resolve_found(self, coid: str, rep: Any) -> None:
        tracked = self._orders.get(coid)
        if tracked is None or not rep:
            return
        if rep.broker_order_id and not tracked.perm_id:
            tracked.perm_id = int(rep.broker_order_id)
            self._by_perm[tracked.perm_id] = coid
        self._ack(tracked)
        await self._pull_executions(self.now_ns() - FILLS_LOOKBACK_NS)

    def _resolve_absent(self, coid: str, reason: str) -> None:
        tracked = self._orders.get(coid)
        if tracked is not None:
            self._terminal(tracked, OrderStatus.REJECTED, reason)

    def _order_lost(self, coid: str, reason: str) -> None:
        tracked = self._orders.get(coid)
        if tracked is None or tracked.terminal_sent:
            return
        log.error("order_lost", gateway=self.name, client_order_id=coid, reason=reason)
        self._out(GatewayHealth(self.now_ns(), self.name, HealthState.DEGRADED,
                                f"order {coid} {reason}", stream="orders"))
        self._terminal(tracked, OrderStatus.EXPIRED, reason)

    # -- connectivity -------------------------------------------------------------------
    def _on_error(self, req_id: int, code: int, text: str, _contract: Any = None) -> None:
        kind = errors.classify(code)
        why = errors.reason(code, text)
        if kind is Kind.LINK_LOST:
            self._link_ok = False
            self._set_health(HealthState.DISCONNECTED, why)
        elif kind in (Kind.LINK_RESTORED, Kind.LINK_RESTORED_DATA_LOST):
            self._link_ok = True
            self._spawn(self._after_link(kind is Kind.LINK_RESTORED_DATA_LOST, why), "relink")
        elif kind is Kind.FARM_DOWN:
            self._farm_bad.add(text.rsplit(":", 1)[-1])
            self._set_health(HealthState.DEGRADED, why, stream="bars")
        elif kind is Kind.FARM_OK:
            farm = text.rsplit(":", 1)[-1]
            if farm in self._farm_bad:
                self._farm_bad.discard(farm)
                self._set_health(HealthState.RESYNCED, why, stream="bars")
        elif kind is Kind.PACING:
            self.stats.pacing_violations += 1
        elif req_id > 0 and kind in (Kind.REJECTED, Kind.DUPLICATE_ID, Kind.UNKNOWN_ORDER):
            log.warning("ib_order_error", gateway=self.name, req_id=req_id, reason=why)
        elif code not in (2104, 2106, 2158):
            log.info("ib_message", gateway=self.name, req_id=req_id, reason=why)

    async def _after_link(self, data_lost: bool, why: str) -> None:
        """1101/1102: pull the executions of the gap; renew bars if the data was lost."""
        try:
            await self._pull_executions(self._recover_since())
            if data_lost and self.config.market_data and self._streaming:
                await self._subscribe_all(backfill=True)
            self._set_health(HealthState.RESYNCED, why)
        except Exception as exc:  # noqa: BLE001 - the next drop or reconnect tries again
            self._set_health(HealthState.DEGRADED, f"recovery after {why} failed: "
                                                   f"{type(exc).__name__}: {exc}")

    def _recover_since(self) -> int:
        start = self._last_fill_ns if self._last_fill_ns is not None else \
            self.now_ns() - FILLS_LOOKBACK_NS
        return start - 60 * NS

    def _on_disconnected(self) -> None:
        self.streaming.clear()
        if self._closing or not self._running:
            return
        self._set_health(HealthState.DISCONNECTED, "socket to TWS/IB Gateway closed")
        for tracked in self._orders.values():
            if tracked.in_flight and not tracked.accepted_sent and not tracked.terminal_sent:
                self._outcome_unknown(tracked, "socket to TWS closed before the order status")
        if not self._reconnecting:
            self._reconnecting = True
            self._spawn(self._reconnect(), "reconnect")

    async def _reconnect(self) -> None:
        t = self.config.timing
        attempt = 0
        try:
            while self._running:
                attempt += 1
                await asyncio.sleep(backoff_delay(attempt, t.reconnect_initial_s,
                                                  t.reconnect_max_s, t.backoff_jitter,
                                                  self._rng))
                old, self.ib = self.ib, None
                if old is not None:
                    self._detach(old)
                try:
                    await self._open_session()
                except Exception as exc:  # noqa: BLE001 - keep trying with backoff
                    log.warning("reconnect_failed", gateway=self.name, attempt=attempt,
                                error=f"{type(exc).__name__}: {exc}")
                    continue
                self.stats.reconnects += 1
                self._link_ok = True
                self._reconnecting = False
                await self._pull_executions(self._recover_since())
                if self.config.market_data and self._streaming:
                    await self._subscribe_all(backfill=True)
                for tracked in list(self._orders.values()):
                    if tracked.cancel_requested and not tracked.terminal_sent:
                        self.cancel(tracked.client_order_id)
                self._set_health(HealthState.RESYNCED,
                                 f"reconnected to TWS (session {self.session}); executions "
                                 "since the last fill pulled")
                return
        finally:
            self._reconnecting = False

    # -- market data -------------------------------------------------------------------
    async def _request_bars(self, inst: str, end_ns: int | None, span_s: int,
                            keep: bool) -> Any:
        """One paced historical request; retried after a pacing violation (162)."""
        from ib_async import RequestError

        ib = self._need_ib()
        q = self.book.by_instrument[inst]
        spec = self.config.contracts[inst]
        end = "" if end_ns is None else convert.ib_utc(end_ns)
        key = (inst, end, span_s, keep)
        t = self.config.timing
        for attempt in range(t.pacing_retries + 1):
            await self.pacer.wait(key)
            try:
                return await ib.reqHistoricalDataAsync(
                    q.contract, end, convert.duration(span_s), convert.bar_size(self._tf),
                    spec.show, self.config.use_rth, formatDate=2, keepUpToDate=keep,
                    timeout=t.request_timeout_s)
            except RequestError as exc:
                if errors.classify(exc.code) is not Kind.PACING or attempt == t.pacing_retries:
                    raise
                self.pacer.penalise(t.pacing_backoff_s)
                log.warning("history_pacing", gateway=self.name, instrument=inst,
                            reason=errors.reason(exc.code, exc.message))
        raise AssertionError("unreachable")

    def _closed(self, inst: str, ib_bars: Any) -> list[Bar]:
        """The closed bars of an IB answer (the forming one left out), in time order."""
        now = self.now_ns()
        out = []
        for b in ib_bars:
            bar = convert.bar_from_ib(b, inst, self._tf)
            if bar.ts <= now:
                out.append(bar)
        return out

    async def history(self, instrument_id: str, start_ns: int,
                      end_ns: int | None = None) -> History:
        """Closed bars opening in ``[start_ns, end_ns)``, paged backwards within pacing."""
        tf = self._tf * NS
        now_open = self.now_ns() // tf * tf  # the forming bar opens here
        end = now_open if end_ns is None else min(end_ns, now_open)
        span = self._tf * self.config.history_bars_per_request
        if self._tf < 86_400:
            span = min(span, 86_400)
        got: dict[int, Bar] = {}
        page_end = end
        while page_end > start_ns:
            page_start = max(start_ns, page_end - span * NS)
            ib_bars = await self._request_bars(instrument_id, page_end,
                                               (page_end - page_start) // NS, keep=False)
            for b in self._closed(instrument_id, ib_bars):
                if start_ns <= b.ts_open < end:
                    got[b.ts_open] = b
            page_end = page_start
        bars = [got[k] for k in sorted(got)]
        if self.guard is not None:
            bars = self.guard.filter(bars)
        return History(instrument_id, bars, start_ns, end,
                       expected_bars(start_ns, end, self._tf))

    async def warm_up_bars(self, count: int) -> list[Bar]:
        """The last ``count`` closed bars of every instrument; the live stream goes on after."""
        out: list[Bar] = []
        for inst in self.config.contracts:
            ib_bars = await self._request_bars(inst, None, (count + 1) * self._tf, keep=False)
            bars = self._closed(inst, ib_bars)[-count:]
            if self.guard is not None:
                bars = self.guard.filter(bars, remember=True)
            if bars:
                self._cursor[inst] = bars[-1].ts_open
            out.extend(bars)
        return sorted(out, key=lambda b: (b.ts, b.instrument_id))

    async def _subscribe_all(self, *, backfill: bool) -> None:
        for inst in self.config.contracts:
            try:
                await self._subscribe(inst, backfill=backfill)
            except Exception as exc:  # noqa: BLE001 - reported; the next reconnect retries
                self._set_health(HealthState.DEGRADED,
                                 f"bars of {inst} not subscribed: {type(exc).__name__}: {exc}",
                                 stream="bars")

    async def _subscribe(self, inst: str, *, backfill: bool) -> None:
        """keepUpToDate bars of ``inst``; with ``backfill``, closed bars missed meanwhile."""
        old = self._bar_lists.pop(inst, None)
        if old is not None and self.ib is not None:
            old.updateEvent.clear()
            with contextlib.suppress(Exception):
                self.ib.cancelHistoricalData(old)
        cursor = self._cursor.get(inst)
        span = 10 * self._tf
        if backfill and cursor is not None:
            span = max(span, (self.now_ns() - cursor) // NS + 2 * self._tf)
        bars = await self._request_bars(inst, None, min(span, 86_400 * 7), keep=True)
        closed = self._closed(inst, bars)
        if cursor is None:
            self._cursor[inst] = closed[-1].ts_open if closed else None
        else:
            for b in closed:
                self._publish(b)
        bars.updateEvent += lambda bl, new, i=inst: self._on_bar_update(i, bl, new)
        self._bar_lists[inst] = bars
        self.streaming.add(inst)

    def _on_bar_update(self, inst: str, bars: Any, has_new_bar: bool) -> None:
        if not has_new_bar or len(bars) < 2:
            return  # the forming bar changed in place: nothing is closed yet
        try:
            self._publish(convert.bar_from_ib(bars[-2], inst, self._tf))
        except Exception as exc:  # noqa: BLE001 - a broken message is dropped, reported
            if self.guard is not None:
                self.guard.reject(inst, f"unreadable bar from IB: {exc}")

    def _publish(self, bar: Bar) -> None:
        cursor = self._cursor.get(bar.instrument_id)
        if cursor is not None and bar.ts_open <= cursor:
            return  # each interval once
        self._cursor[bar.instrument_id] = bar.ts_open
        self._sink(bar)

    # -- helpers -----------------------------------------------------------------------
    def _emit(self, coid: str, status: OrderStatus, reason: str = "",
              broker_order_id: str = "") -> None:
        self._out(OrderUpdate(self.now_ns(), coid, status, reason, broker_order_id))

    @property
    def _unsent(self) -> set[str]:
        return {e.fill.trade_id for e in self._outbox if isinstance(e, _PendingFill)}

    def _out(self, event: Any) -> None:
        """Queue an order event; all leave in order once the current socket read is done."""
        self._outbox.append(event)
        if not self._flush_scheduled:
            self._flush_scheduled = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _drain(self) -> None:
        out, self._outbox = self._outbox, []
        self._emit_all(out)

    def _flush(self) -> None:
        self._flush_scheduled = False
        wait = self.config.timing.commission_wait_s
        now = asyncio.get_running_loop().time()
        for k, e in enumerate(self._outbox):
            # IB sends the commission report just after the execution, often in a later
            # read: hold the Fill (and all after it, to keep the order) a moment for it
            if isinstance(e, _PendingFill) and e.trade_id_fee_unknown(self._commission) \
                    and now - e.queued < wait:
                out, self._outbox = self._outbox[:k], self._outbox[k:]
                self._flush_scheduled = True
                asyncio.get_running_loop().call_later(wait - (now - e.queued), self._flush)
                break
        else:
            out, self._outbox = self._outbox, []
        self._emit_all(out)

    def _emit_all(self, out: list[Any]) -> None:
        for e in out:
            if isinstance(e, _PendingFill):
                commission = self._commission.get(e.fill.trade_id, e.fill.commission)
                e = msgspec.structs.replace(e.fill, commission=commission)
            self._raw_sink(e)

    def _set_health(self, state: HealthState, reason: str, stream: str = "gateway") -> None:
        log.info("gateway_health", gateway=self.name, state=state.value, reason=reason)
        self._out(GatewayHealth(self.now_ns(), self.name, state, reason, stream=stream))

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, name)

