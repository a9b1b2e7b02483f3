"""The order state machine shared by the router, the store and reconciliation."""

from __future__ import annotations

from dataclasses import dataclass, field

from trader.core.events import OrderRequest, OrderStatus

S = OrderStatus

TRANSITIONS: dict[OrderStatus, frozenset[OrderStatus]] = {
    S.PENDING_SUBMIT: frozenset({S.SUBMITTED, S.OUTCOME_UNKNOWN, S.ACCEPTED, S.REJECTED,
                                 S.CANCELED, S.PARTIALLY_FILLED, S.FILLED}),
    S.SUBMITTED: frozenset({S.OUTCOME_UNKNOWN, S.ACCEPTED, S.REJECTED, S.CANCELED,
                            S.PARTIALLY_FILLED, S.FILLED, S.EXPIRED}),
    # sent, answer lost: whatever the venue finally says is legal (never re-sent)
    S.OUTCOME_UNKNOWN: frozenset({S.ACCEPTED, S.REJECTED, S.CANCELED, S.PARTIALLY_FILLED,
                                  S.FILLED, S.EXPIRED}),
    S.ACCEPTED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    S.PARTIALLY_FILLED: frozenset({S.PARTIALLY_FILLED, S.FILLED, S.CANCELED, S.EXPIRED}),
    S.FILLED: frozenset(),
    S.CANCELED: frozenset(),
    S.REJECTED: frozenset(),
    S.EXPIRED: frozenset(),
}


class IllegalTransition(Exception):
    """An order status change the state machine forbids."""


def check_transition(current: OrderStatus, new: OrderStatus) -> bool:
    """True if the change is legal, False if it is a harmless repeat; raise if illegal."""
    if new == current and new is not S.PARTIALLY_FILLED:
        return False
    if new in TRANSITIONS[current]:
        return True
    raise IllegalTransition(f"{current} -> {new}")


@dataclass(slots=True)
class Order:
    """The mutable life of one order inside the router."""

    request: OrderRequest
    status: OrderStatus = S.PENDING_SUBMIT
    filled_quantity: float = 0.0
    avg_fill_price: float = 0.0
    broker_order_id: str = ""
    reason: str = ""
    trade_ids: set[str] = field(default_factory=set)
    model_tags: tuple[str, ...] = ()

    # Written out for the compiled build (see ``planner.PlannedOrder``): one per order.
    def __init__(self, request: OrderRequest, status: OrderStatus = S.PENDING_SUBMIT,
                 filled_quantity: float = 0.0, avg_fill_price: float = 0.0,
                 broker_order_id: str = "", reason: str = "",
                 trade_ids: set[str] | None = None, model_tags: tuple[str, ...] = ()) -> None:
        self.request = request
        self.status = status
        self.filled_quantity = filled_quantity
        self.avg_fill_price = avg_fill_price
        self.broker_order_id = broker_order_id
        self.reason = reason
        self.trade_ids = set() if trade_ids is None else trade_ids
        self.model_tags = model_tags

    @property
    def client_order_id(self) -> str:
        return self.request.client_order_id

    @property
    def remaining(self) -> float:
        return max(self.request.quantity - self.filled_quantity, 0.0)

    def signed_remaining(self) -> float:
        return self.remaining * self.request.side.sign
