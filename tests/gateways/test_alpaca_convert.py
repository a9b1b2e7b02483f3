"""Pure conversions at the Alpaca boundary, on alpaca-py's own recorded responses.

Each fixture body is parsed by alpaca-py's models (as the client does) and then
converted; the values checked are the ones in the recorded bodies.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from alpaca.data.models import BarSet
from alpaca.trading.models import Order, Position, TradeAccount, TradeUpdate

from gateways.alpaca.convert import (
    STATUS,
    AlpacaMessageError,
    bar_from_alpaca,
    execution_id_of_activity,
    fill_from_activity,
    fill_from_update,
    ns_of,
    order_report,
    order_request,
    order_status,
    plain_symbol,
    retry_after_s,
    session_close_ns,
    utc,
)
from trader.core.events import OrderRequest, OrderStatus, OrderType, Side

FIX = Path(__file__).parent / "fixtures" / "alpaca"
NS = 1_000_000_000


def body(name: str) -> Any:
    return json.loads((FIX / f"{name}.json").read_text())["response"]


def iso_ns(text: str) -> int:
    return ns_of(dt.datetime.fromisoformat(text.replace("Z", "+00:00")))


def test_daily_stock_bars_are_stamped_at_the_session_close() -> None:
    bars = BarSet(body("test_historical_stock_data__test_get_bars__1")["bars"])["AAPL"]
    got = [bar_from_alpaca(b, "AAPL.ALPACA", 86_400, equity_daily=True) for b in bars]
    first = got[0]
    assert (first.open, first.high, first.low, first.close, first.volume) == (
        174.0, 174.84, 172.31, 174.61, 85_998_033.0)
    assert first.ts_open == iso_ns("2022-02-01T05:00:00Z")  # midnight New York
    assert first.ts == iso_ns("2022-02-01T21:00:00Z")  # 16:00 New York, the session close
    assert got[1].ts == iso_ns("2022-02-02T21:00:00Z")


def test_session_close_knows_early_closes_and_holidays() -> None:
    assert session_close_ns(iso_ns("2024-11-29T05:00:00Z")) == iso_ns("2024-11-29T18:00:00Z")
    assert session_close_ns(iso_ns("2024-07-03T04:00:00Z")) == iso_ns("2024-07-03T17:00:00Z")
    assert session_close_ns(iso_ns("2024-07-04T04:00:00Z")) is None  # Independence Day


def test_intraday_and_crypto_bars_close_one_interval_after_the_open() -> None:
    bars = BarSet(body("test_historical_crypto_data__test_get_crypto_bars__1")["bars"])["BTC/USD"]
    bar = bar_from_alpaca(bars[0], "BTCUSD.ALPACA", 60)
    assert bar.ts_open == iso_ns("2022-03-09T05:00:00Z")
    assert bar.ts == bar.ts_open + 60 * NS
    daily = bar_from_alpaca(bars[0], "BTCUSD.ALPACA", 86_400)  # crypto: no session
    assert daily.ts == daily.ts_open + 86_400 * NS


def test_order_report_from_recorded_orders() -> None:
    o = Order(**body("test_order_routes__test_limit_order__1"))
    rep = order_report(o, "SPY.ALPACA")
    assert rep.client_order_id == o.client_order_id and rep.broker_order_id == str(o.id)
    assert rep.status is OrderStatus.ACCEPTED
    assert rep.side == o.side.value.upper()
    assert rep.limit_price == float(o.limit_price)
    market = Order(**body("test_order_routes__test_market_order__1"))
    assert order_report(market, "AAPL.ALPACA").quantity == 1.0
    replaced = Order(**body("test_order_routes__test_replace_order__1"))  # PATCH's answer
    rep = order_report(replaced, "AAPL.ALPACA")
    assert rep.status is OrderStatus.ACCEPTED and rep.client_order_id == replaced.client_order_id


def test_every_alpaca_order_state_maps_and_unknown_ones_are_named() -> None:
    from alpaca.trading.enums import OrderStatus as AlpacaStatus

    assert {s.value for s in AlpacaStatus} <= set(STATUS)
    assert order_status("replaced") is OrderStatus.CANCELED
    assert order_status("new", 0.5) is OrderStatus.PARTIALLY_FILLED
    assert order_status(AlpacaStatus.PENDING_CANCEL) is OrderStatus.ACCEPTED
    with pytest.raises(AlpacaMessageError, match="'teleported'"):
        order_status("teleported")


def test_account_and_position_fixtures_parse() -> None:
    acct = TradeAccount(**body("test_account_routes__test_get_account__1"))
    assert float(acct.cash) == -23140.2 and float(acct.buying_power) == 262113.632
    [pos] = [Position(**p) for p in body("test_position_routes__test_get_all_positions__1")]
    assert (pos.symbol, float(pos.qty), float(pos.avg_entry_price)) == ("AAPL", 5.0, 100.0)


def test_fill_from_a_trade_update_and_from_the_activity_of_the_same_execution() -> None:
    order = body("test_order_routes__test_market_order__1")
    order.update(symbol="AAPL", status="filled", filled_qty="1")
    exec_id = "0b7e4bd1-c0f4-4bd3-9c2c-2d23f0c5d1aa"
    upd = TradeUpdate(event="fill", execution_id=exec_id, order=order,
                      timestamp="2021-03-16T18:38:02.1Z", price="121.5", qty="1",
                      position_qty="1")
    f1 = fill_from_update(upd, "C-1", "AAPL.ALPACA")
    act = {"id": f"20210316183802100::{exec_id}", "activity_type": "FILL",
           "transaction_time": "2021-03-16T18:38:02.1Z", "type": "fill", "price": "121.5",
           "qty": "1", "side": "buy", "symbol": "AAPL", "leaves_qty": "0",
           "order_id": order["id"], "cum_qty": "1", "order_status": "filled"}
    f2 = fill_from_activity(act, "C-1", "AAPL.ALPACA")
    assert f1 == f2  # one execution, one fill, whichever path saw it
    assert (f1.trade_id, f1.side, f1.price, f1.quantity) == (exec_id, Side.BUY, 121.5, 1.0)
    assert execution_id_of_activity("plain-id") == "plain-id"
    with pytest.raises(AlpacaMessageError, match="activity.price"):
        fill_from_activity({**act, "price": "n/a"}, "C-1", "AAPL.ALPACA")


@pytest.mark.parametrize(("order_type", "limit", "stop", "kind"), [
    (OrderType.MARKET, None, None, "market"),
    (OrderType.LIMIT, 10.5, None, "limit"),
    (OrderType.STOP, None, 9.0, "stop"),
    (OrderType.STOP, 8.9, 9.0, "stop_limit"),
])
def test_order_requests_carry_our_client_order_id(order_type: OrderType, limit: float | None,
                                                  stop: float | None, kind: str) -> None:
    req = OrderRequest(0, "C-7", "AAPL.ALPACA", Side.SELL, 3.0, order_type, limit, stop)
    fields = order_request(req, "AAPL", "gtc").to_request_fields()
    assert fields["type"] == kind and fields["client_order_id"] == "C-7"
    assert (fields["side"], fields["time_in_force"], float(fields["qty"])) == ("sell", "gtc", 3.0)
    assert "extended_hours" not in fields
    ext = order_request(req, "AAPL", "day", extended_hours=True).to_request_fields()
    assert ext["extended_hours"] is True


def test_an_order_that_cannot_be_expressed_is_named() -> None:
    req = OrderRequest(0, "C-8", "AAPL.ALPACA", Side.BUY, 1.0, OrderType.LIMIT, None)
    with pytest.raises(ValueError, match="limit price"):
        order_request(req, "AAPL", "day")


def test_rate_limit_wait_follows_the_venue_headers() -> None:
    assert retry_after_s({"Retry-After": "2.5"}, 1000.0, 60.0) == 2.5
    assert retry_after_s({"X-RateLimit-Reset": "1003"}, 1000.0, 60.0) == 3.0
    assert retry_after_s({"X-RateLimit-Reset": "1900"}, 1000.0, 60.0) == 60.0  # capped
    assert retry_after_s({"X-RateLimit-Reset": "soon"}, 1000.0, 60.0) == 1.0
    assert retry_after_s({}, 1000.0, 0.2) == 0.2


def test_time_and_symbol_helpers_round_trip() -> None:
    t = 1_704_068_400_123_456_000
    assert ns_of(utc(t)) == t
    assert plain_symbol("BTC/USD") == "BTCUSD" and plain_symbol("AAPL") == "AAPL"
