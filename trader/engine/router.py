"""Router / order manager: ids, state machine, idempotent event application.

Orders reach a gateway only through ``submit``, which the decision pipeline
calls after the risk engine approved them.  A persistence hook (``journal``)
sees each order *before* the gateway does (write-ahead).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from gateways.base import Gateway
from trader.core.clock import Clock
from trader.core.events import Fill, FillCorrection, OrderRequest, OrderStatus, OrderUpdate
from trader.engine.orders import IllegalTransition, Order, check_transition

log = structlog.get_logger(__name__)

_RECENT_LIMIT = 10_000


class OrderJournal(Protocol):
    """Where the router writes ahead (the store implements it)."""

    def order_created(self, order: Order) -> None: ...
    def order_changed(self, order: Order, ts: int) -> None: ...
    def fill_received(self, order: Order | None, fill: Fill) -> bool:
        """Record a fill; False if it was already recorded (duplicate)."""
        ...
    def fill_corrected(self, order: Order | None, fix: FillCorrection) -> None:
        """Record a venue's correction of a recorded fill (its commission, its price)."""
        ...


class Router:
    """Owns every order of the session and applies broker events to them once."""

    def __init__(
        self,
        gateways: Mapping[str, Gateway],
        clock: Clock,
        *,
        id_prefix: str = "O",
        start_seq: int = 0,
        journal: OrderJournal | None = None,
    ) -> None:
        self.gateways = dict(gateways)
        self.clock = clock
        self.id_prefix = id_prefix
        self._seq = start_seq
        self.journal = journal
        self.active: dict[str, Order] = {}
        self._recent: OrderedDict[str, Order] = OrderedDict()
        self._open_qty: dict[str, float] = {}
        self.fill_listeners: list[Callable[[Fill], None]] = []
        self.correction_listeners: list[Callable[[FillCorrection], None]] = []
        self.order_listeners: list[Callable[[Order], None]] = []
        self.illegal_transitions = 0
        self.accepting = True

    # -- ids ----------------------------------------------------------------------
    def next_client_order_id(self) -> str:
        self._seq += 1
        return f"{self.id_prefix}-{self._seq}"

    @property
    def seq(self) -> int:
        return self._seq

    # -- outbound --------------------------------------------------------------------
    def submit(self, request: OrderRequest, model_tags: tuple[str, ...] = ()) -> Order | None:
        if not self.accepting:
            log.warning("order_dropped_not_accepting", client_order_id=request.client_order_id)
            return None
        gateway = self.gateways.get(request.gateway)
        if gateway is None:
            raise KeyError(f"no gateway named {request.gateway!r}")
        coid = request.client_order_id
        if coid in self.active or coid in self._recent:
            # Sending it would make the broker's "duplicate id" rejection land on
            # the order that already owns the id.
            log.error("order_dropped_duplicate_client_order_id", client_order_id=coid)
            return None
        order = Order(request, model_tags=model_tags)
        if self.journal is not None:
            # Write-ahead: committed before it is sent.  If storing fails, the error
            # propagates and nothing is sent, nor kept here as a phantom open order.
            self.journal.order_created(order)
        self.active[coid] = order
        inst = request.instrument_id
        self._open_qty[inst] = self._open_qty.get(inst, 0.0) + order.signed_remaining()
        try:
            self._set_status(order, OrderStatus.SUBMITTED, request.ts)
        except Exception:
            # Stored as PENDING_SUBMIT but never sent: reconciliation closes it on restart.
            del self.active[coid]
            self._open_qty[inst] -= order.signed_remaining()
            raise
        for listener in self.order_listeners:
            listener(order)
        gateway.submit(request)
        return order

    def cancel(self, client_order_id: str) -> None:
        order = self.active.get(client_order_id)
        if order is None:
            return
        self.gateways[order.request.gateway].cancel(client_order_id)

    def cancel_all(self, instrument_id: str | None = None) -> int:
        ids = [
            coid for coid, o in self.active.items()
            if instrument_id is None or o.request.instrument_id == instrument_id
        ]
        for coid in ids:
            self.cancel(coid)
        return len(ids)

    # -- inbound -----------------------------------------------------------------------
    def order(self, client_order_id: str) -> Order | None:
        return self.active.get(client_order_id) or self._recent.get(client_order_id)

    def on_update(self, update: OrderUpdate) -> None:
        order = self.order(update.client_order_id)
        if order is None:
            log.warning("update_for_unknown_order", client_order_id=update.client_order_id,
                        status=str(update.status))
            return
        if update.broker_order_id:
            order.broker_order_id = update.broker_order_id
        if update.reason:
            order.reason = update.reason
        self._set_status(order, update.status, update.ts)

    def on_fill(self, fill: Fill) -> None:
        order = self.order(fill.client_order_id)
        if order is not None and fill.trade_id in order.trade_ids:
            return  # the same execution reported twice
        if self.journal is not None and not self.journal.fill_received(order, fill):
            return
        if order is None:
            log.warning("fill_for_unknown_order", client_order_id=fill.client_order_id,
                        trade_id=fill.trade_id)
        else:
            order.trade_ids.add(fill.trade_id)
            prev = order.filled_quantity
            order.filled_quantity = prev + fill.quantity
            order.avg_fill_price = (
                (order.avg_fill_price * prev + fill.price * fill.quantity) / order.filled_quantity
            )
            if order.client_order_id in self.active:
                inst = fill.instrument_id
                signed = fill.quantity * fill.side.sign
                self._open_qty[inst] = self._open_qty.get(inst, 0.0) - signed
            done = order.filled_quantity >= order.request.quantity * (1 - 1e-9)
            status = OrderStatus.FILLED if done else OrderStatus.PARTIALLY_FILLED
            if order.status.is_terminal:
                log.warning("fill_after_terminal_status", client_order_id=order.client_order_id,
                            status=str(order.status), trade_id=fill.trade_id)
            else:
                self._set_status(order, status, fill.ts)
        for listener in self.fill_listeners:
            listener(fill)

    def on_fill_correction(self, fix: FillCorrection) -> None:
        """A venue corrected a fill: written to the journal first, then to the listeners
        (the portfolio), like a fill."""
        if self.journal is not None:
            self.journal.fill_corrected(self.order(fix.client_order_id), fix)
        for listener in self.correction_listeners:
            listener(fix)

    # -- state -------------------------------------------------------------------------
    def _set_status(self, order: Order, status: OrderStatus, ts: int) -> None:
        try:
            changed = check_transition(order.status, status)
        except IllegalTransition as exc:
            self.illegal_transitions += 1
            log.error("illegal_order_transition", client_order_id=order.client_order_id,
                      transition=str(exc))
            return
        if not changed:
            return
        order.status = status
        if self.journal is not None:
            self.journal.order_changed(order, ts)
        if status.is_terminal:
            self._retire(order)

    def _retire(self, order: Order) -> None:
        coid = order.client_order_id
        if self.active.pop(coid, None) is None:
            return
        inst = order.request.instrument_id
        rest = self._open_qty.get(inst, 0.0) - order.signed_remaining()
        if abs(rest) < 1e-12:
            # Nothing left working there: the entry goes, so the risk check's walk over
            # the working quantities visits only instruments with orders still open.
            self._open_qty.pop(inst, None)
        else:
            self._open_qty[inst] = rest
        self._recent[coid] = order
        if len(self._recent) > _RECENT_LIMIT:
            self._recent.popitem(last=False)

    @property
    def open_quantities(self) -> dict[str, float]:
        """Signed working quantity of each instrument with orders still open (read-only
        view; a buy and a sell working together may net to zero)."""
        return self._open_qty

    def open_quantity(self, instrument_id: str) -> float:
        """Signed quantity still working in open orders of an instrument."""
        return self._open_qty.get(instrument_id, 0.0)

    def adopt(self, order: Order) -> None:
        """Take over an order found at start-up (reconciliation)."""
        self.active[order.client_order_id] = order
        inst = order.request.instrument_id
        self._open_qty[inst] = self._open_qty.get(inst, 0.0) + order.signed_remaining()
