"""Pure conversions between MT5 values (plain dicts and tuples) and kernel events.

MT5 shows every time in the trade server's zone, as seconds since the epoch
*of that wall clock* (a bar opening 00:00 server time on a UTC+2 server is
stamped 00:00 "UTC", two hours after the real instant).  ``server_to_utc_ns``
and ``utc_to_server_s`` convert with the zone's rules, daylight saving included.
Bars are labelled by their open time at MT5; the kernel's ``ts`` is the close.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

from gateways.base import OrderReport, PositionReport
from trader.core.events import Bar, Fill, OrderStatus, OrderType, Side

NS = 1_000_000_000
UTC = datetime.UTC
COMMENT_MAX = 31  # the terminal keeps at most 31 characters of a comment

# MT5 constants the conversions use (values of the MetaTrader5 package)
ORDER_TYPE_BUY, ORDER_TYPE_SELL = 0, 1
ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT = 2, 3
ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP = 4, 5
ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT = 6, 7
TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_SLTP = 1, 5, 6
TRADE_ACTION_MODIFY, TRADE_ACTION_REMOVE = 7, 8
ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN = 0, 1, 2
ORDER_TIME_GTC = 0
ORDER_STATE_STARTED, ORDER_STATE_PLACED, ORDER_STATE_CANCELED = 0, 1, 2
ORDER_STATE_PARTIAL, ORDER_STATE_FILLED, ORDER_STATE_REJECTED, ORDER_STATE_EXPIRED = 3, 4, 5, 6
DEAL_TYPE_BUY, DEAL_TYPE_SELL = 0, 1
DEAL_REASON_SL, DEAL_REASON_TP, DEAL_REASON_SO = 4, 5, 6
POSITION_TYPE_BUY = 0
ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 2
SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC = 1, 2
TIMEFRAMES = {60: 1, 120: 2, 180: 3, 240: 4, 300: 5, 600: 10, 900: 15, 1200: 20, 1800: 30,
              3600: 16385, 7200: 16386, 14400: 16388, 86400: 16408}


class Mt5MessageError(ValueError):
    """A record from the terminal that cannot be used; names the record and the field."""


# -- time ------------------------------------------------------------------------------------
def server_to_utc_ns(server_s: float, tz: ZoneInfo) -> int:
    """An MT5 time (server wall clock as epoch seconds) as UTC nanoseconds."""
    whole = int(server_s // 1)
    wall = datetime.datetime.fromtimestamp(whole, UTC).replace(tzinfo=tz)
    offset = wall.utcoffset() or datetime.timedelta(0)
    return int(round((server_s - offset.total_seconds()) * NS))


def utc_to_server_s(utc_ns: int, tz: ZoneInfo) -> int:
    """UTC nanoseconds as the server wall clock in epoch seconds (what MT5 compares)."""
    instant = datetime.datetime.fromtimestamp(utc_ns // NS, UTC)
    offset = instant.astimezone(tz).utcoffset() or datetime.timedelta(0)
    return utc_ns // NS + int(offset.total_seconds())


def server_datetime(server_s: int) -> datetime.datetime:
    """A server-clock time as the aware datetime MT5 date arguments take."""
    return datetime.datetime.fromtimestamp(server_s, UTC)


def mt5_timeframe(timeframe_s: int) -> int:
    """The ``TIMEFRAME_*`` constant of a bar length in seconds."""
    try:
        return TIMEFRAMES[timeframe_s]
    except KeyError:
        raise Mt5MessageError(f"timeframe of {timeframe_s} s has no MT5 equivalent "
                              f"(known: {sorted(TIMEFRAMES)})") from None


# -- bars ------------------------------------------------------------------------------------
def rate_to_bar(rate: tuple[Any, ...] | list[Any], instrument_id: str, timeframe_s: int,
                tz: ZoneInfo) -> Bar:
    """One rates record ``(time, open, high, low, close, tick_volume, spread, real_volume)``.

    Volume is the real volume where the broker reports one (exchange instruments),
    else the tick count (FX and CFDs have no traded volume at MT5).
    """
    try:
        t, o, h, lo, c, tick_volume, _spread, real_volume = rate[:8]
        ts_open = server_to_utc_ns(float(t), tz)
        volume = float(real_volume) if real_volume else float(tick_volume)
        return Bar(ts_open + timeframe_s * NS, instrument_id, timeframe_s, ts_open, float(o),
                   float(h), float(lo), float(c), volume)
    except (TypeError, ValueError) as exc:
        raise Mt5MessageError(f"rates record of {instrument_id}: {exc}: {rate!r}") from None


# -- orders ----------------------------------------------------------------------------------
def comment_for(client_order_id: str) -> str:
    """The ``comment`` carrying our client order id (the terminal keeps 31 characters)."""
    return client_order_id[:COMMENT_MAX]


def comment_matches(comment: str, client_order_id: str) -> bool:
    """True if a broker-side comment can be ours: equal, or a truncation of our id.

    Brokers truncate or rewrite comments; this is only a fallback when no ticket
    is on record (an order whose submit answer was lost)."""
    if not comment:
        return False
    return comment == comment_for(client_order_id) or (
        len(comment) >= 8 and client_order_id.startswith(comment))


def mt5_order_type(side: Side, order_type: OrderType, stop_limit: bool = False) -> int:
    """The ``ORDER_TYPE_*`` of an order request."""
    buy = side is Side.BUY
    if order_type is OrderType.MARKET:
        return ORDER_TYPE_BUY if buy else ORDER_TYPE_SELL
    if order_type is OrderType.LIMIT:
        return ORDER_TYPE_BUY_LIMIT if buy else ORDER_TYPE_SELL_LIMIT
    if stop_limit:
        return ORDER_TYPE_BUY_STOP_LIMIT if buy else ORDER_TYPE_SELL_STOP_LIMIT
    return ORDER_TYPE_BUY_STOP if buy else ORDER_TYPE_SELL_STOP


def side_of_type(mt5_type: int) -> Side:
    """BUY for even ``ORDER_TYPE_*`` / ``DEAL_TYPE_*`` codes, SELL for odd ones."""
    return Side.BUY if mt5_type % 2 == 0 else Side.SELL


def filling_for(filling_mode: int, market: bool) -> int:
    """The filling type a symbol accepts (``symbol_info().filling_mode`` bits).

    Pending orders rest, so RETURN; a market order takes FOK if allowed, else
    IOC, else RETURN (exchange execution without either flag)."""
    if not market:
        return ORDER_FILLING_RETURN
    if filling_mode & SYMBOL_FILLING_FOK:
        return ORDER_FILLING_FOK
    if filling_mode & SYMBOL_FILLING_IOC:
        return ORDER_FILLING_IOC
    return ORDER_FILLING_RETURN


def order_request(*, symbol: str, side: Side, order_type: OrderType, volume: float,
                  price: float, magic: int, comment: str, deviation: int, filling: int,
                  stop_price: float | None = None, sl: float = 0.0,
                  tp: float = 0.0, position: int = 0) -> dict[str, Any]:
    """The ``order_send`` request of a new order (plain values: it travels as source text)."""
    market = order_type is OrderType.MARKET
    stop_limit = order_type is OrderType.STOP and stop_price is not None and price > 0
    req: dict[str, Any] = {
        "action": TRADE_ACTION_DEAL if market else TRADE_ACTION_PENDING,
        "symbol": symbol,
        "volume": float(volume),
        "type": mt5_order_type(side, order_type, stop_limit),
        "price": float(stop_price if stop_limit else price),
        "sl": float(sl),
        "tp": float(tp),
        "deviation": int(deviation),
        "magic": int(magic),
        "comment": comment,
        "type_time": ORDER_TIME_GTC,
        "type_filling": filling,
    }
    if stop_limit:
        req["stoplimit"] = float(price)
    if position:  # hedging: close (part of) this position rather than open another
        req["position"] = int(position)
    return req


def volume_violation(volume: float, info: Mapping[str, Any]) -> str | None:
    """Why ``volume`` lots break the symbol's volume rules (``symbol_info``), or None."""
    lo, hi = float(info.get("volume_min") or 0.0), float(info.get("volume_max") or 0.0)
    step = float(info.get("volume_step") or 0.0)
    name = info.get("name", "")
    if volume < lo - 1e-9:
        return f"{volume} lots of {name} is below the minimum {lo}"
    if hi and volume > hi + 1e-9:
        return f"{volume} lots of {name} is above the maximum {hi}"
    if step and abs(volume / step - round(volume / step)) > 1e-6:
        return f"{volume} lots of {name} is not a multiple of the volume step {step}"
    return None


def order_status(order: Mapping[str, Any], working: bool) -> OrderStatus:
    """Our status of an MT5 order record (``working``: listed by ``orders_get``)."""
    filled = float(order["volume_initial"]) - float(order["volume_current"])
    if working:
        return OrderStatus.PARTIALLY_FILLED if filled > 1e-9 else OrderStatus.ACCEPTED
    state = int(order["state"])
    if state == ORDER_STATE_FILLED:
        return OrderStatus.FILLED
    if state == ORDER_STATE_REJECTED:
        return OrderStatus.REJECTED
    if state == ORDER_STATE_EXPIRED:
        return OrderStatus.EXPIRED
    if state == ORDER_STATE_CANCELED:
        return OrderStatus.CANCELED
    return OrderStatus.PARTIALLY_FILLED if filled > 1e-9 else OrderStatus.ACCEPTED


def order_report(order: Mapping[str, Any], client_order_id: str, instrument_id: str,
                 working: bool) -> OrderReport:
    """An MT5 order record as a reconciliation report."""
    initial = float(order["volume_initial"])
    price = float(order.get("price_open") or 0.0)
    return OrderReport(client_order_id, instrument_id, order_status(order, working),
                       str(side_of_type(int(order["type"]))), initial,
                       initial - float(order["volume_current"]), str(order["ticket"]),
                       price or None)


def deal_to_fill(deal: Mapping[str, Any], client_order_id: str, instrument_id: str,
                 tz: ZoneInfo) -> Fill:
    """One deal (an execution; its ticket is the trade id) as a ``Fill``."""
    try:
        ts = server_to_utc_ns(int(deal["time_msc"]) / 1000, tz)
        cost = float(deal.get("commission") or 0.0) + float(deal.get("fee") or 0.0)
        return Fill(ts, client_order_id, str(deal["ticket"]), instrument_id,
                    side_of_type(int(deal["type"])), float(deal["volume"]),
                    float(deal["price"]), -cost, str(deal["order"]))
    except (KeyError, TypeError, ValueError) as exc:
        raise Mt5MessageError(f"deal of {instrument_id}: {type(exc).__name__} {exc}: "
                              f"{dict(deal)!r}") from None


def is_trade_deal(deal: Mapping[str, Any]) -> bool:
    """Buys and sells only (not balance, credit, commission or dividend records)."""
    return int(deal.get("type", -1)) in (DEAL_TYPE_BUY, DEAL_TYPE_SELL)


def broker_close_id(deal: Mapping[str, Any]) -> str:
    """A client order id for a deal the server made on its own (SL, TP, stop-out)."""
    kind = {DEAL_REASON_SL: "sl", DEAL_REASON_TP: "tp", DEAL_REASON_SO: "stopout"}.get(
        int(deal.get("reason", -1)), "broker")
    return f"mt5-{kind}-{deal['ticket']}"


def position_report(pos: Mapping[str, Any], instrument_id: str) -> PositionReport:
    """One MT5 position (signed lots) as a report."""
    sign = 1.0 if int(pos["type"]) == POSITION_TYPE_BUY else -1.0
    return PositionReport(instrument_id, sign * float(pos["volume"]),
                          float(pos["price_open"]), str(pos["ticket"]))
