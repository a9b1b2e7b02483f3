"""ccxt's unified structures to kernel types, at the boundary and nowhere else.

Every function here is pure: given a ccxt market / order / trade dict it
returns an ``Instrument``, ``OrderReport``, status or ``Fill``, or raises
``BrokerMessageError`` naming the field that was missing or malformed.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ccxt.base.decimal_to_precision import TICK_SIZE

from gateways.base import OrderReport
from trader.core.events import Fill, OrderStatus, OrderType, Side
from trader.core.instruments import AssetClass, Instrument

_MS = 1_000_000

_STATUS = {
    "open": OrderStatus.ACCEPTED,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELED,
    "cancelled": OrderStatus.CANCELED,
    "expired": OrderStatus.EXPIRED,
    "rejected": OrderStatus.REJECTED,
}


class BrokerMessageError(ValueError):
    """A message from the exchange that cannot be turned into a kernel event."""


def _num(d: Mapping[str, Any], key: str, where: str) -> float:
    v = d.get(key)
    if v is None:
        raise BrokerMessageError(f"{where}: field {key!r} missing")
    try:
        return float(v)
    except (TypeError, ValueError):
        raise BrokerMessageError(f"{where}: field {key!r} is not a number: {v!r}") from None


def _step(value: Any, precision_mode: int) -> float | None:
    if value is None:
        return None
    v = float(value)
    return v if precision_mode == TICK_SIZE else 10.0 ** (-v)


def instrument_from_market(
    market: Mapping[str, Any], instrument_id: str, venue: str, precision_mode: int
) -> Instrument:
    """An ``Instrument`` carrying the venue's tick, lot, minimum amount and minimum cost."""
    where = f"{venue} market {market.get('symbol')!r}"
    precision = market.get("precision") or {}
    limits = market.get("limits") or {}
    tick = _step(precision.get("price"), precision_mode)
    lot = _step(precision.get("amount"), precision_mode)
    if not tick or not lot:
        raise BrokerMessageError(f"{where}: precision of price/amount missing")
    min_amount = float((limits.get("amount") or {}).get("min") or 0.0)
    min_cost = float((limits.get("cost") or {}).get("min") or 0.0)
    return Instrument(
        id=instrument_id,
        symbol=str(market["symbol"]),
        venue=venue,
        asset_class=AssetClass.CRYPTO,
        quote_currency=str(market.get("quote") or "USD"),
        tick_size=tick,
        lot_step=lot,
        min_quantity=max(min_amount, lot) if min_amount else 0.0,
        min_notional=min_cost,
    )


def order_status(order: Mapping[str, Any]) -> OrderStatus | None:
    """The kernel status of a ccxt order; None when the venue did not say."""
    raw = order.get("status")
    if raw is None:
        return None
    status = _STATUS.get(str(raw).lower())
    if status is None:
        raise BrokerMessageError(f"order {order.get('id')!r}: unknown status {raw!r}")
    if status is OrderStatus.ACCEPTED and float(order.get("filled") or 0.0) > 0:
        return OrderStatus.PARTIALLY_FILLED
    return status


def client_order_id_of(obj: Mapping[str, Any]) -> str | None:
    """Our id from a ccxt order or trade: unified field first, then the raw venue keys.

    Kraken's websocket puts the numeric ``userref`` in ``clientOrderId`` and our
    id in ``cl_ord_id``; Binance's cancel report carries the original id in ``C``.
    """
    coid = obj.get("clientOrderId")
    if coid and not str(coid).isdigit():
        return str(coid)
    info = obj.get("info")
    if isinstance(info, Mapping):
        for key in ("cl_ord_id", "C", "c", "clientOrderId", "origClientOrderId"):
            raw = info.get(key)
            if raw:
                return str(raw)
    return None


def order_report(
    order: Mapping[str, Any], instrument_id: str, client_order_id: str | None = None
) -> OrderReport:
    """A ccxt order as the broker-side ``OrderReport`` used by reconciliation."""
    where = f"order {order.get('id')!r}"
    coid = client_order_id or client_order_id_of(order)
    if not coid:
        raise BrokerMessageError(f"{where}: no client order id")
    status = order_status(order) or OrderStatus.ACCEPTED
    price = order.get("price")
    return OrderReport(
        client_order_id=coid,
        instrument_id=instrument_id,
        status=status,
        side=str(order.get("side") or "").upper(),
        quantity=_num(order, "amount", where),
        filled_quantity=float(order.get("filled") or 0.0),
        broker_order_id=str(order.get("id") or ""),
        limit_price=float(price) if price and str(order.get("type")) == "limit" else None,
    )


def trade_to_fill(
    trade: Mapping[str, Any], client_order_id: str, instrument_id: str, quote: str | None = None,
    fee_prices: Mapping[str, float] | None = None,
) -> Fill:
    """A ccxt trade as a kernel ``Fill``; the venue's trade id is mandatory.

    The fee keeps the asset it was charged in (see ``Fill``): in the quote
    currency it is cash, as before; in the base asset it is a quantity of the
    instrument (the wallet grew by the net amount) valued at the trade price; in
    a third asset (BNB) it is recorded in that asset and valued at
    ``fee_prices[asset]`` (quote per unit) when known, else at 0 with the units kept.
    """
    where = f"trade {trade.get('id')!r}"
    tid = trade.get("id")
    if not tid:
        raise BrokerMessageError(f"{where}: no trade id")
    side = str(trade.get("side") or "").lower()
    if side not in ("buy", "sell"):
        raise BrokerMessageError(f"{where}: side {trade.get('side')!r}")
    ts_ms = trade.get("timestamp")
    price = _num(trade, "price", where)
    commission, fee_asset, fee_qty, in_instrument = fee_of(trade, quote, price, fee_prices)
    return Fill(
        int(ts_ms) * _MS if ts_ms else 0,
        client_order_id,
        str(tid),
        instrument_id,
        Side.BUY if side == "buy" else Side.SELL,
        _num(trade, "amount", where),
        price,
        commission,
        str(trade.get("order") or ""),
        fee_asset,
        fee_qty,
        in_instrument,
    )


def fee_of(
    trade: Mapping[str, Any], quote: str | None, price: float,
    fee_prices: Mapping[str, float] | None = None,
) -> tuple[float, str, float, bool]:
    """(commission value in quote, fee asset or "" for cash, units charged, paid in the base)."""
    fee = trade.get("fee") or {}
    try:
        cost = float(fee.get("cost") or 0.0) if fee else 0.0
    except (TypeError, ValueError):
        raise BrokerMessageError(
            f"trade {trade.get('id')!r}: fee cost is not a number: {fee.get('cost')!r}") from None
    currency = fee.get("currency") if fee else None
    if not cost or currency is None or quote is None or currency == quote:
        return cost, "", 0.0, False  # cash in the quote currency: the old meaning
    base = str(trade.get("symbol") or "").split("/")[0]
    if currency == base:
        return cost * price, str(currency), cost, True
    rate = (fee_prices or {}).get(str(currency))
    return (cost * rate if rate else 0.0), str(currency), cost, False


def ccxt_order_type(order_type: OrderType) -> str:
    if order_type is OrderType.MARKET:
        return "market"
    if order_type is OrderType.LIMIT:
        return "limit"
    raise BrokerMessageError(f"order type {order_type} is not supported by the ccxt gateway")
