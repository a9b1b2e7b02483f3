"""Conversions at the IB boundary: ib_async objects in, kernel events out (and back).

Pure functions only.  IB labels a bar by its open time (``BarData.date``);
the kernel's ``Bar.ts`` is the close time, so the conversion happens here, once.
"""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

from gateways.base import OrderReport
from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderType, Side

NS = 1_000_000_000

# IB order status word -> ours (None: no event; fills and acks carry the story)
_STATUS: dict[str, OrderStatus | None] = {
    "PendingSubmit": None, "ApiPending": None, "PendingCancel": None,
    "PreSubmitted": OrderStatus.ACCEPTED, "Submitted": OrderStatus.ACCEPTED,
    "ApiCancelled": OrderStatus.CANCELED, "Cancelled": OrderStatus.CANCELED,
    "Filled": OrderStatus.FILLED, "Inactive": OrderStatus.REJECTED,
    "ValidationError": None,
}


class BrokerMessageError(ValueError):
    """An IB message that cannot be turned into an event (names the field)."""


def to_ns(when: dt.datetime | dt.date) -> int:
    """A tz-aware datetime (or a date, read as UTC midnight) in UTC nanoseconds."""
    if not isinstance(when, dt.datetime):
        when = dt.datetime(when.year, when.month, when.day, tzinfo=dt.UTC)
    if when.tzinfo is None:
        raise BrokerMessageError(f"naive datetime {when} from IB (no time zone)")
    return int(when.timestamp()) * NS + when.microsecond * 1_000


def ib_utc(ts_ns: int) -> str:
    """IB's UTC date-time form ``yyyymmdd-hh:mm:ss`` for request parameters."""
    return dt.datetime.fromtimestamp(ts_ns // NS, dt.UTC).strftime("%Y%m%d-%H:%M:%S")


def bar_size(seconds: int) -> str:
    """IB's ``barSizeSetting`` for a bar length in seconds."""
    table = {1: "1 secs", 5: "5 secs", 10: "10 secs", 15: "15 secs", 30: "30 secs",
             60: "1 min", 120: "2 mins", 180: "3 mins", 300: "5 mins", 900: "15 mins",
             1800: "30 mins", 3600: "1 hour", 7200: "2 hours", 14_400: "4 hours",
             86_400: "1 day"}
    try:
        return table[seconds]
    except KeyError:
        raise ValueError(f"IB has no {seconds}-second bars (sizes: {sorted(table)})") from None


def duration(seconds: int) -> str:
    """IB's ``durationStr``: seconds up to a day, whole days beyond."""
    if seconds <= 86_400:
        return f"{max(seconds, 1)} S"
    return f"{-(-seconds // 86_400)} D"


def bar_from_ib(b: Any, instrument_id: str, timeframe_s: int) -> Bar:
    """An IB ``BarData`` (labelled by its open) as a kernel ``Bar`` (``ts`` = close)."""
    ts_open = to_ns(b.date)
    values = (float(b.open), float(b.high), float(b.low), float(b.close), float(b.volume))
    return Bar(ts_open + timeframe_s * NS, instrument_id, timeframe_s, ts_open, *values)


def status_from_ib(word: str) -> OrderStatus | None:
    """Our status for an IB order status word; None when it says nothing new."""
    if word not in _STATUS:
        raise BrokerMessageError(f"unknown IB order status {word!r}")
    return _STATUS[word]


def side_from_ib(word: str) -> Side:
    """BUY/BOT -> BUY, SELL/SLD -> SELL."""
    if word in ("BUY", "BOT"):
        return Side.BUY
    if word in ("SELL", "SLD"):
        return Side.SELL
    raise BrokerMessageError(f"unknown IB side {word!r}")


def exec_base(exec_id: str) -> str:
    """The execution without its revision suffix: ``0000e0d5.0001.01.01`` -> ``0000e0d5.0001.01``.

    IB corrects an execution by sending it again with the last part raised.
    """
    base, dot, _rev = exec_id.rpartition(".")
    return base if dot else exec_id


def fill_from_ib(execution: Any, instrument_id: str, commission: float = 0.0) -> Fill:
    """An IB ``Execution`` (of one of our orders, ``orderRef`` = our id) as a ``Fill``."""
    shares, price = float(execution.shares), float(execution.price)
    if not (shares > 0 and math.isfinite(price) and price > 0):
        raise BrokerMessageError(f"execution {execution.execId}: shares {shares} price {price}")
    return Fill(to_ns(execution.time), execution.orderRef, execution.execId, instrument_id,
                side_from_ib(execution.side), shares, price, commission,
                broker_order_id=str(execution.permId))


def order_fields(order: OrderRequest) -> dict[str, Any]:
    """The ib_async ``Order`` fields of a kernel order (type, prices, side, size, our id)."""
    kind = {OrderType.MARKET: "MKT", OrderType.LIMIT: "LMT", OrderType.STOP: "STP"}
    out: dict[str, Any] = {"action": order.side.value, "totalQuantity": float(order.quantity),
                           "orderType": kind[order.order_type], "orderRef": order.client_order_id}
    if order.order_type is OrderType.LIMIT:
        out["lmtPrice"] = float(order.limit_price)  # type: ignore[arg-type]
    if order.order_type is OrderType.STOP:
        out["auxPrice"] = float(order.stop_price)  # type: ignore[arg-type]
        if order.limit_price is not None:  # a stop with a limit is IB's STP LMT
            out["orderType"] = "STP LMT"
            out["lmtPrice"] = float(order.limit_price)
    return out


def report_from_trade(trade: Any, instrument_id: str) -> OrderReport:
    """An ib_async ``Trade`` (open order + status) as a reconciliation ``OrderReport``."""
    o, st = trade.order, trade.orderStatus
    filled = float(st.filled or 0.0)
    status = status_from_ib(st.status) or OrderStatus.ACCEPTED
    if status is OrderStatus.ACCEPTED and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    limit = o.lmtPrice if o.orderType in ("LMT", "STP LMT") else None
    return OrderReport(o.orderRef, instrument_id, status, o.action, float(o.totalQuantity),
                       filled, str(o.permId or st.permId or ""), limit)
