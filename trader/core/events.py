"""Immutable kernel events.

Every event carries ``ts``: integer nanoseconds since the Unix epoch, UTC.
msgspec structs are used because they are immutable, slotted and an order of
magnitude cheaper to build than frozen dataclasses, which matters on the replay
hot path; they also encode compactly for the session journal.
"""

from __future__ import annotations

import datetime as _dt
import functools
from enum import StrEnum

import msgspec


class Side(StrEnum):
    """An order's or a fill's direction; ``sign`` is +1 for BUY and -1 for SELL."""

    BUY = "BUY"
    SELL = "SELL"

    sign: int

    def __init__(self, value: str) -> None:
        # A plain attribute of each member, not a property: every fill and order reads
        # it several times, and an attribute costs a dictionary read, a property a call.
        self.sign = 1 if value == "BUY" else -1


class OrderType(StrEnum):
    MARKET = "MARKET"
    LIMIT = "LIMIT"
    STOP = "STOP"


class OrderStatus(StrEnum):
    """Where an order is in its life; see ``trader.engine.orders.TRANSITIONS``.

    ``OUTCOME_UNKNOWN``: the order was sent but the venue's answer was lost
    (timeout, 5xx, dropped connection).  It is *not* terminal: the gateway keeps
    asking the venue by client order id until it answers, and never re-sends.
    """

    PENDING_SUBMIT = "PENDING_SUBMIT"
    SUBMITTED = "SUBMITTED"
    OUTCOME_UNKNOWN = "OUTCOME_UNKNOWN"
    ACCEPTED = "ACCEPTED"
    PARTIALLY_FILLED = "PARTIALLY_FILLED"
    FILLED = "FILLED"
    CANCELED = "CANCELED"
    REJECTED = "REJECTED"
    EXPIRED = "EXPIRED"

    is_terminal: bool

    def __init__(self, value: str) -> None:
        # An attribute of each member, read at every status change (see ``Side.sign``).
        self.is_terminal = value in ("FILLED", "CANCELED", "REJECTED", "EXPIRED")


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


class DataEnded(Event, frozen=True, tag="data_ended"):
    """An instrument's history ended while the replay goes on; ``ts`` is its last bar's
    close time, ``last_close`` that bar's close.  Published once, by the historical feed."""

    instrument_id: str
    last_close: float


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
    # What the venue actually charged, when it is not cash in the account currency.
    # ``fee_asset`` "" (the default, and every fill of older journals) means
    # ``commission`` was paid in cash.  Otherwise ``fee_quantity`` units of
    # ``fee_asset`` were charged and ``commission`` is only their value in the account
    # currency (0.0 when no price was known): it never comes out of cash.
    # ``fee_in_instrument``: the fee asset is the instrument itself (a spot buy's fee
    # taken in the base asset), so the position grows by ``quantity - fee_quantity``.
    fee_asset: str = ""
    fee_quantity: float = 0.0
    fee_in_instrument: bool = False

    @property
    def position_change(self) -> float:
        """Signed change of the position: the traded quantity net of a fee paid in kind."""
        fee = self.fee_quantity if self.fee_in_instrument else 0.0
        return self.quantity * self.side.sign - fee


class CancelRequest(Event, frozen=True, tag="cancel"):
    """Ask a gateway to cancel an order."""

    client_order_id: str
    reason: str = ""


class Timer(Event, frozen=True, tag="timer"):
    """A clock tick posted by the live driver so components can act without a bar."""

    name: str = "tick"


class OverlayEvent(Event, frozen=True, tag="overlay"):
    """An overlay changed a multiplier: ``kind`` is vol_target, kelly or model_drawdown
    (``level`` derisk/halt/restore), ``model`` empty for the portfolio-wide vol scale."""

    kind: str
    model: str
    value: float
    level: str = ""
    detail: str = ""


class RegimeChanged(Event, frozen=True, tag="regime_changed"):
    """A regime classifier's state changed on the closed bar whose close time is ``ts``.

    ``previous`` is "" for a regime's first state (the end of its warm-up).  Budgets
    follow at the first bar closing after ``ts`` (``trader.engine.regime``).
    """

    regime: str
    state: str
    previous: str = ""


class BarCorrection(Event, frozen=True, tag="bar_correction"):
    """A venue revised a bar that was already published (``ts`` = when it was learnt).

    Gateways never publish a second ``Bar`` for the same interval: a late
    revision arrives as this event and carries the corrected values of the bar
    whose close time is ``bar_ts``.  Consumers that care (e.g. a store of bars)
    subscribe; models see bars once, as they closed, exactly as in replay.
    """

    instrument_id: str
    timeframe: int
    bar_ts: int
    open: float
    high: float
    low: float
    close: float
    volume: float


class HealthState(StrEnum):
    """Connection state of a gateway, as reported in ``GatewayHealth``."""

    CONNECTED = "connected"
    DEGRADED = "degraded"  # working, but something is off (REST fallback, bad data)
    DISCONNECTED = "disconnected"
    RESYNCED = "resynced"  # reconnected and caught up (gap backfilled)


class GatewayHealth(Event, frozen=True, tag="gateway_health"):
    """A gateway's connection health changed (stream drop, reconnect, fallback, bad bar)."""

    gateway: str
    state: HealthState
    reason: str = ""
    # Which of the gateway's streams: "bars:<symbol>", "orders", "venue" (rate limit or
    # ban), "time", "gateway"; "" for a gateway with one stream (the replay feed).
    stream: str = ""


class FillCorrection(Event, frozen=True, tag="fill_correction"):
    """A venue corrected an execution it already reported (``trade_id`` names it).

    ``None`` fields are unchanged.  Typical case: the commission is only known
    (or revised) after the fill, as with Interactive Brokers' commission reports.
    """

    trade_id: str
    client_order_id: str = ""
    commission: float | None = None
    price: float | None = None
    quantity: float | None = None


_EPOCH_ORDINAL = 719_163  # date(1970, 1, 1).toordinal()
_FIRST_DAY = 1 - _EPOCH_ORDINAL  # 0001-01-01, in days since the epoch
_LAST_DAY = 2_932_896  # 9999-12-31


@functools.lru_cache(maxsize=4096)
def _iso_date(day: int) -> str:
    return _dt.date.fromordinal(_EPOCH_ORDINAL + day).isoformat()


def ns_to_iso(ts: int) -> str:
    """Render nanoseconds as an ISO-8601 UTC string (for reports and logs)."""
    secs, rem = divmod(ts, 1_000_000_000)
    day, sec = divmod(secs, 86_400)
    if not _FIRST_DAY <= day <= _LAST_DAY:
        return _ns_to_iso_datetime(ts)  # outside datetime's years: its error, as always
    # Every fill of a replay is rendered for trades.csv: the date part is looked up
    # (fills cluster on few days) and the time is plain arithmetic, not a datetime.
    # %-formatting: a third faster here than an f-string with format specs.
    micros = rem // 1000
    if micros:
        return "%sT%02d:%02d:%02d.%06dZ" % (  # noqa: UP031
            _iso_date(day), sec // 3600, sec // 60 % 60, sec % 60, micros)
    return "%sT%02d:%02d:%02dZ" % (  # noqa: UP031
        _iso_date(day), sec // 3600, sec // 60 % 60, sec % 60)


def _ns_to_iso_datetime(ts: int) -> str:
    """``ns_to_iso`` through ``datetime``: the reference the fast path is tested against."""
    secs, rem = divmod(ts, 1_000_000_000)
    dt = _dt.datetime.fromtimestamp(secs, tz=_dt.UTC).replace(microsecond=rem // 1000)
    return dt.isoformat().replace("+00:00", "Z")
