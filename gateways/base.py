"""The protocol every execution gateway speaks, simulated or real.

The kernel is synchronous, so ``submit`` and ``cancel`` never block: a real
gateway schedules the network call as a task and reports the outcome later as
``OrderUpdate`` / ``Fill`` events through the sink it was bound to.  Queries
used by reconciliation are coroutines.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from trader.core.events import Fill, OrderRequest, OrderStatus

EventSink = Callable[[Any], None]


@dataclass(frozen=True, slots=True)
class OrderReport:
    """What a broker says about one order (for reconciliation)."""

    client_order_id: str
    instrument_id: str
    status: OrderStatus
    side: str
    quantity: float
    filled_quantity: float = 0.0
    broker_order_id: str = ""
    limit_price: float | None = None


@dataclass(frozen=True, slots=True)
class AccountReport:
    """Cash and positions as the broker reports them."""

    cash: dict[str, float] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)


@runtime_checkable
class Gateway(Protocol):
    """Execution gateway: orders out, order events back through the bound sink."""

    name: str

    def bind(self, sink: EventSink) -> None:
        """Set where order events go (the bus in replay, ``Kernel.post`` live)."""

    def submit(self, order: OrderRequest) -> None:
        """Send an order; never blocks, never raises for broker-side failures."""

    def cancel(self, client_order_id: str) -> None:
        """Ask for a cancel; the outcome arrives as an ``OrderUpdate``."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def open_orders(self) -> list[OrderReport]: ...

    async def order_status(self, client_order_id: str) -> OrderReport | None: ...

    async def fills_since(self, ts: int) -> list[Fill]: ...

    async def account(self) -> AccountReport: ...


class NoBrokerRecord:
    """Reconciliation answers of a gateway that holds no orders, fills or money.

    For market-data-only gateways and for stand-ins of a broker during journal
    replay: there is nothing to reconcile against.
    """

    async def open_orders(self) -> list[OrderReport]:
        return []

    async def order_status(self, client_order_id: str) -> OrderReport | None:  # noqa: ARG002
        return None

    async def fills_since(self, ts: int) -> list[Fill]:  # noqa: ARG002
        return []

    async def account(self) -> AccountReport:
        return AccountReport()
