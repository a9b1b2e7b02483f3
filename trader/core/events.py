"""Immutable kernel events.

Every event carries ``ts``: integer nanoseconds since the Unix epoch, UTC.
msgspec structs are used because they are immutable, slotted and an order of
magnitude cheaper to build than frozen dataclasses, which matters on the replay
hot path; they also encode compactly for the session journal.
"""

from __future__ import annotations

from enum import StrEnum

import msgspec


class Side(StrEnum):
    BUY = "BUY"
    SELL = "SELL"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"


class OrderStatus(StrEnum):
    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


class Event(msgspec.Struct, frozen=True, tag=True):
    """Base of all kernel events; ``ts`` is UTC nanoseconds."""

    ts: int


class Bar(Event, frozen=True, tag="bar"):
    """A closed OHLCV bar. ``ts`` is the close time, ``ts_open`` the open time.

    ``timeframe`` is the bar length in seconds.
    """

    instrument_id: str
    timeframe: int
    ts_open: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class OrderRequest(Event, frozen=True, tag="order"):
    """An order as the kernel decided it; ``ts`` is the decision time."""

    client_order_id: str
    instrument_id: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False
    gateway: str = "sim"


class OrderUpdate(Event, frozen=True, tag="order_update"):
    """A status change of an order reported by a gateway (not fills: see ``Fill``)."""

    client_order_id: str
    status: OrderStatus
    reason: str = ""
    broker_order_id: str = ""


class Fill(Event, frozen=True, tag="fill"):
    """One execution. ``trade_id`` is the venue's execution id: fills are idempotent on it."""

    client_order_id: str
    trade_id: str
    instrument_id: str
    side: Side
    quantity: float
    price: float
    commission: float = 0.0
    broker_order_id: str = ""


class CancelRequest(Event, frozen=True, tag="cancel"):
    """Ask a gateway to cancel an order."""

    client_order_id: str
    reason: str = ""


class Timer(Event, frozen=True, tag="timer"):
    """A clock tick posted by the live driver so components can act without a bar."""

    name: str = "tick"


def ns_to_iso(ts: int) -> str:
    """Render nanoseconds as an ISO-8601 UTC string (for reports and logs)."""
    import datetime as _dt

    secs, rem = divmod(ts, 1_000_000_000)
    dt = _dt.datetime.fromtimestamp(secs, tz=_dt.UTC).replace(microsecond=rem // 1000)
    return dt.isoformat().replace("+00:00", "Z")
