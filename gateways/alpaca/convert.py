"""Pure conversions at the Alpaca boundary: alpaca-py models <-> trader.core events.

Nothing here does I/O.  Alpaca labels bars by their open time; the kernel
stamps a bar with its close time (``ts``) and keeps the open (``ts_open``).
A daily US-equity bar closes at the session close of its day (16:00 New York,
13:00 on an early close), not at midnight: ``session_close_ns`` finds it in
the exchange calendar.
"""

from __future__ import annotations

import datetime as dt
import math
import warnings
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from gateways.base import DAY_NS, NS, OrderReport
from trader.core.events import Bar, BarCorrection, Fill, OrderRequest, OrderStatus, OrderType, Side

# Alpaca's order states -> the kernel's.  "replaced" ends the old order (its
# successor carries on under another client order id); the pending_* states are
# still working orders.
STATUS: dict[str, OrderStatus] = {
    "new": OrderStatus.ACCEPTED,
    "accepted": OrderStatus.ACCEPTED,
    "pending_new": OrderStatus.ACCEPTED,
    "accepted_for_bidding": OrderStatus.ACCEPTED,
    "held": OrderStatus.ACCEPTED,
    "pending_review": OrderStatus.ACCEPTED,
    "calculated": OrderStatus.ACCEPTED,
    "stopped": OrderStatus.ACCEPTED,
    "suspended": OrderStatus.ACCEPTED,
    "done_for_day": OrderStatus.ACCEPTED,
    "pending_cancel": OrderStatus.ACCEPTED,
    "pending_replace": OrderStatus.ACCEPTED,
    "partially_filled": OrderStatus.PARTIALLY_FILLED,
    "filled": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "replaced": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


class AlpacaMessageError(ValueError):
    """A venue message that cannot be converted (names the field and the value)."""


def word(value: Any) -> str:
    """An alpaca-py enum or a plain string as the venue's lower-case word."""
    return str(getattr(value, "value", value) or "").lower()


def ns_of(t: dt.datetime) -> int:
    """UTC nanoseconds of an aware datetime (microsecond precision, no float rounding)."""
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * NS + delta.microseconds * 1_000


def utc(ts_ns: int) -> dt.datetime:
    """An aware UTC datetime of ``ts_ns`` (microsecond precision)."""
    return dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=ts_ns // 1_000)


def plain_symbol(symbol: str) -> str:
    """Alpaca writes a crypto pair ``BTC/USD`` in orders and ``BTCUSD`` in positions."""
    return symbol.replace("/", "")


def order_status(status: Any, filled_qty: float = 0.0) -> OrderStatus:
    """The kernel status of an Alpaca order state (unknown words are named)."""
    w = word(status)
    if w not in STATUS:
        raise AlpacaMessageError(f"unknown Alpaca order status {w!r}")
    st = STATUS[w]
    if st is OrderStatus.ACCEPTED and filled_qty > 0:
        return OrderStatus.PARTIALLY_FILLED
    return st


def fnum(value: Any, what: str) -> float:
    """A venue number (Alpaca sends decimals as strings) as a finite float."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise AlpacaMessageError(f"{what}: not a number: {value!r}") from None
    if not math.isfinite(x):
        raise AlpacaMessageError(f"{what}: not finite: {value!r}")
    return x


def order_report(order: Any, instrument_id: str) -> OrderReport:
    """What reconciliation needs of one alpaca-py ``Order``."""
    filled = fnum(order.filled_qty or 0, "order.filled_qty")
    limit = order.limit_price
    return OrderReport(
        client_order_id=str(order.client_order_id),
        instrument_id=instrument_id,
        status=order_status(order.status, filled),
        side=word(order.side).upper(),
        quantity=fnum(order.qty or 0, "order.qty"),
        filled_quantity=filled,
        broker_order_id=str(order.id),
        limit_price=None if limit is None else fnum(limit, "order.limit_price"),
    )


def fill_from_update(update: Any, client_order_id: str, instrument_id: str) -> Fill:
    """A ``Fill`` from a ``trade_updates`` fill/partial_fill (execution id, price, qty)."""
    if update.execution_id is None:
        raise AlpacaMessageError(f"trade update {word(update.event)} without execution_id")
    order = update.order
    return Fill(
        ts=ns_of(update.timestamp),
        client_order_id=client_order_id,
        trade_id=str(update.execution_id),
        instrument_id=instrument_id,
        side=Side(word(order.side).upper()),
        quantity=fnum(update.qty, "trade_update.qty"),
        price=fnum(update.price, "trade_update.price"),
        broker_order_id=str(order.id),
    )


def execution_id_of_activity(activity_id: str) -> str:
    """The execution id inside a ``FILL`` activity id (``<time>::<execution id>``).

    The stream's ``execution_id`` and the activity's id name the same execution
    in two spellings; one trade id for both is what de-duplicates a fill seen on
    the stream and again in the activities after a restart.
    """
    return activity_id.split("::", 1)[1] if "::" in activity_id else activity_id


def fill_from_activity(act: Mapping[str, Any], client_order_id: str, instrument_id: str) -> Fill:
    """A ``Fill`` from one ``FILL`` account activity (JSON as the REST API sends it)."""
    try:
        when = dt.datetime.fromisoformat(str(act["transaction_time"]).replace("Z", "+00:00"))
        return Fill(
            ts=ns_of(when),
            client_order_id=client_order_id,
            trade_id=execution_id_of_activity(str(act["id"])),
            instrument_id=instrument_id,
            side=Side(str(act["side"]).upper()),
            quantity=fnum(act["qty"], "activity.qty"),
            price=fnum(act["price"], "activity.price"),
            broker_order_id=str(act["order_id"]),
        )
    except (KeyError, ValueError) as exc:
        raise AlpacaMessageError(f"FILL activity {str(dict(act))[:200]}: {exc}") from None


# -- bars ------------------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _calendar(mic: str) -> Any:
    import exchange_calendars

    return exchange_calendars.get_calendar(mic)


def session_close_ns(day_open_ns: int, mic: str = "XNYS") -> int | None:
    """The session close of the day a daily bar opening at ``day_open_ns`` covers.

    Alpaca stamps a daily stock bar at midnight New York (04:00/05:00 UTC); the
    session is that calendar date's.  None if the exchange did not trade that day.
    """
    import pandas as pd

    ny = pd.Timestamp(day_open_ns, unit="ns", tz="UTC").tz_convert("America/New_York")
    day = pd.Timestamp(ny.date())
    with warnings.catch_warnings():  # exchange_calendars trips pandas deprecations: theirs
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = _calendar(mic)
        if not cal.is_session(day):
            return None
        return int(cal.session_close(day).value)


def sessions_closed(start_ns: int, end_ns: int, mic: str = "XNYS") -> int:
    """How many sessions have their daily bar (opening at midnight New York) in
    ``[start_ns, end_ns)`` and closed by ``end_ns``: the daily bars a range can hold."""
    import pandas as pd

    if end_ns <= start_ns:
        return 0
    first = pd.Timestamp(start_ns, unit="ns", tz="UTC").tz_convert("America/New_York")
    last = pd.Timestamp(end_ns, unit="ns", tz="UTC").tz_convert("America/New_York")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        cal = _calendar(mic)
        lo = pd.Timestamp(first.date()) + (pd.Timedelta(days=1) if first != first.normalize()
                                           else pd.Timedelta(0))
        hi = pd.Timestamp(last.date())
        if hi < lo:
            return 0
        sessions = cal.sessions_in_range(lo, hi)
        return sum(1 for s in sessions if int(cal.session_close(s).value) <= end_ns)


def bar_close_ns(ts_open: int, timeframe_s: int, *, equity_daily: bool = False,
                 mic: str = "XNYS") -> int:
    """When the bar opening at ``ts_open`` closes: the grid, or the session close."""
    if equity_daily and timeframe_s == DAY_NS // NS:
        close = session_close_ns(ts_open, mic)
        if close is not None:
            return close
    return ts_open + timeframe_s * NS


def bar_from_alpaca(b: Any, instrument_id: str, timeframe_s: int, *,
                    equity_daily: bool = False, mic: str = "XNYS") -> Bar:
    """A closed kernel ``Bar`` from an alpaca-py ``Bar`` (REST or stream)."""
    ts_open = ns_of(b.timestamp)
    return Bar(bar_close_ns(ts_open, timeframe_s, equity_daily=equity_daily, mic=mic),
               instrument_id, timeframe_s, ts_open, float(b.open), float(b.high), float(b.low),
               float(b.close), float(b.volume))


def correction_from_alpaca(b: Any, instrument_id: str, timeframe_s: int, learnt_ns: int) -> Bar:
    """The revised values of an updated bar ``u``, as a ``Bar`` to validate first."""
    bar = bar_from_alpaca(b, instrument_id, timeframe_s)
    return Bar(learnt_ns, bar.instrument_id, bar.timeframe, bar.ts_open, bar.open, bar.high,
               bar.low, bar.close, bar.volume)


def as_correction(bar: Bar, close_ns: int) -> BarCorrection:
    """A validated revision as the protocol's ``BarCorrection`` of the bar closing at
    ``close_ns``."""
    return BarCorrection(bar.ts, bar.instrument_id, bar.timeframe, close_ns, bar.open, bar.high,
                         bar.low, bar.close, bar.volume)


# -- orders ----------------------------------------------------------------------------------
def order_request(req: OrderRequest, symbol: str, time_in_force: str,
                  extended_hours: bool = False) -> Any:
    """The alpaca-py request object of a kernel order (market, limit, stop, stop-limit).

    A STOP order with a limit price is a stop-limit order.  Raises ``ValueError``
    with the reason when the order cannot be expressed.
    """
    from alpaca.trading.enums import OrderSide, TimeInForce
    from alpaca.trading.requests import (
        LimitOrderRequest,
        MarketOrderRequest,
        StopLimitOrderRequest,
        StopOrderRequest,
    )

    common: dict[str, Any] = {
        "symbol": symbol, "qty": req.quantity,
        "side": OrderSide.BUY if req.side is Side.BUY else OrderSide.SELL,
        "time_in_force": TimeInForce(time_in_force),
        "client_order_id": req.client_order_id,
    }
    if extended_hours:
        common["extended_hours"] = True
    if req.order_type is OrderType.MARKET:
        return MarketOrderRequest(**common)
    if req.order_type is OrderType.LIMIT:
        if req.limit_price is None:
            raise ValueError("limit order without a limit price")
        return LimitOrderRequest(limit_price=req.limit_price, **common)
    if req.order_type is OrderType.STOP:
        if req.stop_price is None:
            raise ValueError("stop order without a stop price")
        if req.limit_price is not None:
            return StopLimitOrderRequest(stop_price=req.stop_price, limit_price=req.limit_price,
                                         **common)
        return StopOrderRequest(stop_price=req.stop_price, **common)
    raise ValueError(f"order type {req.order_type} is not supported on Alpaca")


def retry_after_s(headers: Mapping[str, str], now_s: float, cap_s: float) -> float:
    """How long a 429 asks us to wait: ``Retry-After``, else ``X-RateLimit-Reset`` (epoch s).

    Capped at ``cap_s``; a header that is missing or garbled gives one second.
    """
    ra = headers.get("Retry-After")
    if ra is not None:
        try:
            return min(max(float(ra), 0.0), cap_s)
        except ValueError:
            pass
    reset = headers.get("X-RateLimit-Reset")
    if reset is not None:
        try:
            return min(max(float(reset) - now_s, 0.0), cap_s)
        except ValueError:
            pass
    return min(1.0, cap_s)
