"""Gateway-side memory of orders: the rules every gateway applies to its own records.

Each gateway keeps a record per client order id (what it sent, whether ACCEPTED and
a terminal status were already emitted, the fills it has seen).  The rules that
keep those records honest are the same on every venue and live here once:

* a submit is refused before anything is sent, for the same reasons in the same
  order (``submit_refusal``); a venue adds its own checks after these;
* a cancel marks the order (``mark_cancel``) even before the venue knows it, so it
  is sent the moment the venue acknowledges the order;
* a rejection is emitted at most once, whatever path saw it (``reject``);
* a submit whose answer was lost goes to OUTCOME_UNKNOWN and is looked up by our id,
  never re-sent (``resolve_unknown``), unless a stream already saw the order; once
  found, the venue's view is applied and a cancel asked for meanwhile follows
  (``apply_found``);
* finished orders are remembered for a while, so late duplicates are recognised,
  and then forgotten with everything that points at them (``FinishedOrders``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Generic, Protocol, TypeVar

from gateways.inflight import InFlightResolver
from trader.core.events import OrderRequest, OrderStatus

# finished orders a gateway remembers, so that late duplicates are still recognised
KEEP_FINISHED = 10_000
# what a gateway emits an ``OrderUpdate`` through: (coid, status, reason, broker order id)
UpdateEmitter = Callable[[str, OrderStatus, str, str], None]


@dataclass(slots=True)
class TrackedOrder:
    """One order as a gateway remembers it; a venue adds its own fields in a subclass."""

    client_order_id: str
    instrument_id: str
    symbol: str
    request: OrderRequest | None = None
    broker_order_id: str = ""
    in_flight: bool = False  # sent, outcome unknown
    accepted_sent: bool = False
    terminal_sent: bool = False
    cancel_requested: bool = False
    filled: float = 0.0
    trade_ids: set[str] = field(default_factory=set)


class Cancellable(Protocol):
    """What ``mark_cancel`` needs of an order record (every gateway's has it)."""

    terminal_sent: bool
    cancel_requested: bool


C = TypeVar("C", bound=Cancellable)
T = TypeVar("T", bound=TrackedOrder)


def submit_refusal(gateway: str, order: OrderRequest, *, listed: bool, trading: bool,
                   connected: bool, duplicate: bool) -> str | None:
    """Why ``order`` is refused before it is sent (checked in this order), or None."""
    if not listed:
        return f"instrument {order.instrument_id} is not traded on {gateway}"
    if not trading:
        return f"gateway {gateway} is market-data only (trading: false)"
    if not connected:
        return f"gateway {gateway} is not connected"
    if duplicate:
        return f"duplicate client order id {order.client_order_id} (not sent)"
    return None


def mark_cancel(orders: Mapping[str, C], client_order_id: str) -> C | None:
    """The order to cancel, now marked ``cancel_requested``; None when unknown or over.

    The mark stays even when the cancel cannot be sent yet (no venue id): the gateway
    sends it once the venue acknowledges the order.
    """
    tracked = orders.get(client_order_id)
    if tracked is None or tracked.terminal_sent:
        return None
    tracked.cancel_requested = True
    return tracked


def reject(tracked: TrackedOrder, reason: str, emit: UpdateEmitter) -> None:
    """End ``tracked`` as REJECTED, once: a second path that sees the refusal is quiet."""
    tracked.in_flight = False
    if tracked.terminal_sent:
        return
    tracked.terminal_sent = True
    emit(tracked.client_order_id, OrderStatus.REJECTED, reason, tracked.broker_order_id)


def lost_answer(why: str) -> str:
    """The OUTCOME_UNKNOWN reason of a submit whose answer was lost (``why``)."""
    return f"submit answer lost ({why}); resolving by client order id, not re-sent"


def resolve_unknown(tracked: TrackedOrder, why: str, emit: UpdateEmitter,
                    resolver: InFlightResolver) -> None:
    """The submit's answer was lost: OUTCOME_UNKNOWN, then the resolver looks it up."""
    if tracked.accepted_sent or tracked.terminal_sent:
        tracked.in_flight = False  # a stream (or a poll) saw the order while its answer hung
        return
    tracked.in_flight = True
    emit(tracked.client_order_id, OrderStatus.OUTCOME_UNKNOWN, lost_answer(why), "")
    resolver.track(tracked.client_order_id)


async def apply_found(tracked: T, found: object, apply: Callable[[T, object], Awaitable[None]],
                      cancel: Callable[[T], Awaitable[None]]) -> None:
    """The venue has the order: apply its view, then send a cancel asked for meanwhile."""
    tracked.in_flight = False
    await apply(tracked, found)
    if tracked.cancel_requested and not tracked.terminal_sent:
        await cancel(tracked)


class FinishedOrders(Generic[T]):
    """Bounded memory: the oldest finished orders beyond ``keep`` are forgotten.

    A forgotten order leaves ``orders``, its venue id leaves ``coid_by_broker`` and its
    trade ids leave ``seen_trades`` (the gateway's own tables, shared, not copied).
    """

    def __init__(self, orders: dict[str, T], coid_by_broker: dict[str, str],
                 seen_trades: set[str], keep: int = KEEP_FINISHED) -> None:
        self._orders = orders
        self._coid_by_broker = coid_by_broker
        self._seen_trades = seen_trades
        self._keep = keep
        self._retired: deque[str] = deque()

    def __len__(self) -> int:
        return len(self._retired)

    def retire(self, client_order_id: str) -> list[T]:
        """Note an order as finished; the records forgotten to make room (for the venue's
        own indexes to drop them too)."""
        self._retired.append(client_order_id)
        forgotten: list[T] = []
        while len(self._retired) > self._keep:
            tracked = self._orders.pop(self._retired.popleft(), None)
            if tracked is not None:
                self._coid_by_broker.pop(tracked.broker_order_id, None)
                self._seen_trades.difference_update(tracked.trade_ids)
                forgotten.append(tracked)
        return forgotten
