"""Converters from ccxt's unified structures to kernel types, on ccxt's recorded fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import ccxt
import pytest

from gateways.ccxt.candles import candle_to_bar
from gateways.ccxt.convert import (
    BrokerMessageError,
    client_order_id_of,
    instrument_from_market,
    order_report,
    order_status,
    trade_to_fill,
)
from trader.core.events import OrderStatus, Side

FIX = json.loads((Path(__file__).parent / "fixtures" / "ccxt_static_responses.json").read_text())


def test_binance_trade_becomes_fill_with_venue_trade_id() -> None:
    [trade] = FIX["binance"]["fetchMyTrades"]["parsedResponse"]
    fill = trade_to_fill(trade, "C-1", "LTCUSDT", "USDT")
    assert (fill.trade_id, fill.broker_order_id) == ("309520010", "3784695242")
    assert (fill.side, fill.quantity, fill.price) == (Side.SELL, 0.2, 69.63)
    assert fill.commission == pytest.approx(0.013926)
    assert fill.ts == 1698138992358 * 1_000_000


def test_fee_in_base_asset_is_valued_at_trade_price() -> None:
    trade = {"id": "9", "order": "1", "symbol": "BTC/USDT", "side": "buy", "amount": 1.0,
             "price": 100.0, "timestamp": 1, "fee": {"cost": 0.001, "currency": "BTC"}}
    assert trade_to_fill(trade, "C", "B", "USDT").commission == pytest.approx(0.1)


def test_trade_without_id_is_refused_by_name() -> None:
    with pytest.raises(BrokerMessageError, match="no trade id"):
        trade_to_fill({"side": "buy", "amount": 1, "price": 1}, "C", "B")


def test_binance_open_and_closed_orders_as_reports() -> None:
    [open_o] = FIX["binance"]["fetchOpenOrders"]["parsedResponse"]
    rep = order_report(open_o, "LTCUSDT")
    assert rep.client_order_id == open_o["clientOrderId"]
    assert rep.status is OrderStatus.ACCEPTED and rep.quantity == pytest.approx(0.2)
    closed = FIX["binance"]["fetchOrder"]["parsedResponse"]
    rep = order_report(closed, "LTCUSDT")
    assert rep.status is OrderStatus.FILLED and rep.filled_quantity == pytest.approx(0.1)
    assert rep.broker_order_id == "3397148653" and rep.side == "SELL"


def test_kraken_userref_is_not_taken_for_our_client_id() -> None:
    closed = FIX["kraken"]["fetchOrder"]["parsedResponse"]
    assert closed["clientOrderId"] == "0"
    assert client_order_id_of(closed) is None
    rep = order_report(closed, "LTCUSDT", client_order_id="C-7")
    assert rep.status is OrderStatus.FILLED and rep.broker_order_id == "OGMZCL-KC6MC-ZRBGM6"
    ws_view = {"id": "O1", "clientOrderId": "0", "info": {"cl_ord_id": "C-8"}}
    assert client_order_id_of(ws_view) == "C-8"


def test_binance_cancel_report_uses_original_client_id() -> None:
    assert client_order_id_of({"clientOrderId": None, "info": {"C": "C-9", "c": "web_x"}}) == "C-9"


def test_partial_fill_status_and_unknown_status() -> None:
    assert order_status({"status": "open", "filled": 0.5}) is OrderStatus.PARTIALLY_FILLED
    assert order_status({"status": None}) is None
    with pytest.raises(BrokerMessageError, match="unknown status 'weird'"):
        order_status({"id": "1", "status": "weird"})


@pytest.mark.parametrize("venue", ["binance", "kraken"])
def test_recorded_klines_through_real_ccxt_parser_to_bars(venue: str) -> None:
    entry = FIX[venue]["fetchOHLCV"]
    ex: Any = getattr(ccxt, venue)()
    raw = entry["httpResponse"]
    rows = raw if venue == "binance" else raw["result"]["XBTUSDT"]
    _symbol, _tf, since, limit = entry["input"][:4]
    parsed = [c for c in ex.parse_ohlcvs(rows, None, "1h") if c[0] >= since][:limit]
    expected = entry["parsedResponse"]
    assert parsed == expected
    bars = [candle_to_bar(c, "BTCUSDT", 3600) for c in expected]
    assert all(b.ts - b.ts_open == 3600 * 10**9 for b in bars)
    assert [b.close for b in bars] == [c[4] for c in expected]


def test_instrument_constraints_from_a_ccxt_market() -> None:
    market = {"symbol": "BTC/USDT", "quote": "USDT",
              "precision": {"price": 0.01, "amount": 0.00001},
              "limits": {"amount": {"min": 0.00001}, "cost": {"min": 5.0}}}
    inst = instrument_from_market(market, "BTCUSDT", "binance", ccxt.TICK_SIZE)
    assert (inst.tick_size, inst.lot_step, inst.min_quantity, inst.min_notional) == (
        0.01, 0.00001, 0.00001, 5.0)
    decimals = dict(market, precision={"price": 2, "amount": 5})
    inst = instrument_from_market(decimals, "BTCUSDT", "x", ccxt.DECIMAL_PLACES)
    assert inst.tick_size == pytest.approx(0.01) and inst.lot_step == pytest.approx(0.00001)
    with pytest.raises(BrokerMessageError, match="precision of price/amount missing"):
        instrument_from_market(dict(market, precision={}), "B", "binance", ccxt.TICK_SIZE)
