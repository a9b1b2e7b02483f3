"""Alpaca's own order habits, on the stand-in through the real alpaca-py clients.

US-equity sessions (closed market, extended hours), fractional shares, replace,
stop and stop-limit orders, day orders expiring, a 429 with rate-limit headers,
and fills recovered from the paged ``FILL`` account activities after a restart.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

import pytest

from gateways.testing.alpaca_harness import AlpacaHarness
from gateways.testing.harness import wait_until
from gateways.testing.standin import Fault
from trader.core.events import Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side

AAPL, SPY, BTC = "AAPL.ALPACA", "SPY.ALPACA", "BTCUSD.ALPACA"


def at(text: str) -> int:
    """Milliseconds of a UTC time."""
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


SESSION = at("2024-01-03T15:00:30")  # a Wednesday, 10:00 in New York: the market is open
AFTER_HOURS = at("2024-01-03T22:00:30")  # 17:00 in New York: closed, extended hours trade


def order(coid: str, inst: str, qty: float, kind: OrderType = OrderType.MARKET,
          limit: float | None = None, stop: float | None = None,
          side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest(time.time_ns(), coid, inst, side, qty, kind, limit, stop)


def statuses(events: list[Any], coid: str) -> list[OrderStatus]:
    return [e.status for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def reason(events: list[Any], coid: str) -> str:
    mine = [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]
    return mine[-1].reason


def fills(events: list[Any], coid: str) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill) and e.client_order_id == coid]


def posted(h: AlpacaHarness) -> list[dict[str, str]]:
    return [r.params for r in h.standin.received("/v2/orders", "POST")]


async def stock_gateway(h: AlpacaHarness, events: list[Any], now_ms: int, **cfg: Any) -> Any:
    h.standin.set_clock(now_ms)
    gw = h.gateway(events.append, instruments=(AAPL, SPY), market_data=False, **cfg)
    await h.connect(gw)
    return gw


async def test_equity_order_outside_the_session_is_not_sent(alpaca: AlpacaHarness) -> None:
    events: list[Any] = []
    gw = await stock_gateway(alpaca, events, at("2024-01-01T15:00:30"))  # New Year's Day
    gw.submit(order("C-1", AAPL, 1))
    await wait_until(lambda: bool(statuses(events, "C-1")), what="refusal")
    assert statuses(events, "C-1") == [OrderStatus.REJECTED]
    assert "market is closed" in reason(events, "C-1") and "not sent" in reason(events, "C-1")
    assert alpaca.submissions() == 0


async def test_extended_hours_sends_day_limit_orders_and_refuses_market_ones(
        alpaca: AlpacaHarness) -> None:
    events: list[Any] = []
    gw = await stock_gateway(alpaca, events, AFTER_HOURS, extended_hours=True)
    gw.submit(order("X-1", AAPL, 2, OrderType.LIMIT, 180.0))
    gw.submit(order("X-2", AAPL, 2))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "X-1")
                     and bool(statuses(events, "X-2")), what="ack and refusal")
    [sent] = posted(alpaca)
    assert (sent["client_order_id"], sent["type"], sent["time_in_force"]) == ("X-1", "limit",
                                                                             "day")
    assert sent["extended_hours"] == "True"
    assert statuses(events, "X-2") == [OrderStatus.REJECTED]
    assert "limit orders" in reason(events, "X-2")


async def test_in_session_orders_use_the_configured_time_in_force(alpaca: AlpacaHarness) -> None:
    events: list[Any] = []
    gw = await stock_gateway(alpaca, events, SESSION, time_in_force="gtc", extended_hours=True)
    gw.submit(order("G-1", AAPL, 3, OrderType.LIMIT, 150.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "G-1"), what="ack")
    [sent] = posted(alpaca)
    assert sent["time_in_force"] == "gtc" and "extended_hours" not in sent


async def test_fractional_shares_only_where_the_asset_allows(alpaca: AlpacaHarness) -> None:
    events: list[Any] = []
    gw = await stock_gateway(alpaca, events, SESSION, time_in_force="gtc")
    gw.submit(order("F-1", AAPL, 0.5))
    gw.submit(order("F-2", SPY, 0.5))
    await wait_until(lambda: len(fills(events, "F-1")) == 1 and bool(statuses(events, "F-2")),
                     what="fractional fill and refusal")
    assert fills(events, "F-1")[0].quantity == pytest.approx(0.5)
    assert posted(alpaca)[0]["time_in_force"] == "day"  # Alpaca: fractional orders are DAY
    assert statuses(events, "F-2") == [OrderStatus.REJECTED]
    assert "not fractionable" in reason(events, "F-2")
    assert alpaca.submissions() == 1


async def test_replace_ends_the_old_order_and_continues_under_the_new_id(
        alpaca: AlpacaHarness) -> None:
    events: list[Any] = []
    gw = await stock_gateway(alpaca, events, SESSION)
    gw.submit(order("R-1", AAPL, 4, OrderType.LIMIT, 150.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "R-1"), what="ack")
    gw.replace("R-1", "R-2", limit_price=151.0)
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, "R-1")
                     and OrderStatus.ACCEPTED in statuses(events, "R-2"), what="replace")
    assert statuses(events, "R-1") == [OrderStatus.ACCEPTED, OrderStatus.CANCELED]
    assert reason(events, "R-1") == "replaced by R-2"
    assert alpaca.venue_orders() == {"R-1": "replaced", "R-2": "new"}
    new = alpaca.standin.order_by_client_id("R-2")
    assert new is not None and (new.price, new.qty) == (151.0, 4)
    trade = await alpaca.venue_fill("R-2")
    await wait_until(lambda: len(fills(events, "R-2")) == 1, what="fill of the replacement")
    assert fills(events, "R-2")[0].trade_id == trade and fills(events, "R-1") == []
    gw.replace("R-1", "R-3", limit_price=152.0)  # the old order is gone: nothing is sent
    await wait_until(lambda: bool(statuses(events, "R-3")), what="refusal")
    assert statuses(events, "R-3") == [OrderStatus.REJECTED]
    assert sum(r.method == "PATCH" for r in alpaca.standin.requests) == 1


@pytest.mark.parametrize(("limit", "kind"), [(None, "stop"), (139.0, "stop_limit")])
async def test_stop_and_stop_limit_orders(alpaca: AlpacaHarness, limit: float | None,
                                          kind: str) -> None:
    events: list[Any] = []
    gw = await stock_gateway(alpaca, events, SESSION)
    gw.submit(order("S-1", AAPL, 1, OrderType.STOP, limit, 140.0, side=Side.BUY))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "S-1"), what="ack")
    [sent] = posted(alpaca)
    assert sent["type"] == kind and float(sent["stop_price"]) == 140.0
    assert (float(sent["limit_price"]) if limit else None) == limit


async def test_a_day_order_expiring_at_the_venue_ends_expired(alpaca: AlpacaHarness) -> None:
    events: list[Any] = []
    gw = await stock_gateway(alpaca, events, SESSION)
    gw.submit(order("E-1", AAPL, 1, OrderType.LIMIT, 100.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "E-1"), what="ack")
    await alpaca.standin.expire("E-1")
    await wait_until(lambda: OrderStatus.EXPIRED in statuses(events, "E-1"), what="expiry")
    assert statuses(events, "E-1") == [OrderStatus.ACCEPTED, OrderStatus.EXPIRED]


async def test_fills_while_down_come_back_from_paged_account_activities(
        alpaca: AlpacaHarness) -> None:
    h = alpaca
    t0 = h.now_ns()
    first: list[Any] = []
    gw1 = h.gateway(first.append, market_data=False)
    await h.connect(gw1)
    gw1.submit(order("P-1", BTC, 0.05, OrderType.LIMIT, 45_000.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(first, "P-1"), what="ack")
    await gw1.close()
    down = [await h.venue_fill("P-1", 0.01, 44_990.0 + k, notify=False) for k in range(4)]

    events: list[Any] = []
    gw2 = h.gateway(events.append, market_data=False)
    await h.connect(gw2)
    pages_before = len(h.standin.received("/v2/account/activities/FILL"))
    got = await gw2.fills_since(t0)
    pages = len(h.standin.received("/v2/account/activities/FILL")) - pages_before
    assert [f.trade_id for f in got] == down  # every execution, in order, under our id
    assert {f.client_order_id for f in got} == {"P-1"}
    assert [f.price for f in got] == [44_990.0, 44_991.0, 44_992.0, 44_993.0]
    assert pages >= 3  # two activities per page: the walk followed page_token
    [rep] = await gw2.open_orders()
    assert (rep.status, rep.filled_quantity) == (OrderStatus.PARTIALLY_FILLED,
                                                 pytest.approx(0.04))
    acct = await gw2.account()
    assert acct.positions == {BTC: pytest.approx(0.04)}
    assert acct.avg_prices[BTC] == pytest.approx(44_991.5)
    assert acct.buying_power == pytest.approx(100_000.0 - sum(44_990.0 + k for k in range(4))
                                              * 0.01, abs=0.01)


async def test_fill_missed_by_the_stream_is_caught_up_from_activities(
        alpaca: AlpacaHarness) -> None:
    """The order's terminal state arrives, its fill message was lost: the activities have it."""
    h = alpaca
    events: list[Any] = []
    gw = h.gateway(events.append, market_data=False)
    await h.connect(gw)
    gw.submit(order("M-1", BTC, 0.02, OrderType.LIMIT, 45_000.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "M-1"), what="ack")
    trade = await h.venue_fill("M-1", notify=False)
    o = h.standin.order_by_client_id("M-1")
    assert o is not None
    await h.standin.notify_order(o, "fill")  # a fill event whose execution part was torn off
    await wait_until(lambda: len(fills(events, "M-1")) == 1, what="caught-up fill")
    await asyncio.sleep(0.2)
    assert [f.trade_id for f in fills(events, "M-1")] == [trade]
    assert gw.stats.activity_fills == 1


async def test_rate_limited_history_waits_out_the_venue_and_completes(
        alpaca: AlpacaHarness) -> None:
    h = alpaca
    rows = [(h.bar_open(k - 10), 100.0 + k, 102.0 + k, 99.0 + k, 101.0 + k, 1.0)
            for k in range(10)]
    h.install_history(BTC, rows)
    gw = h.gateway(lambda _e: None, trading=False)
    await h.connect(gw, stream=False)
    h.standin.script("crypto_bars", Fault("rate_limit", retry_after=0.05))
    hist = await gw.history(BTC, h.bar_open(-10), h.bar_open(0))
    assert hist.complete and [b.open for b in hist.bars] == [r[1] for r in rows]
    assert gw.rest.throttled == 1
    throttled = [r for r in h.standin.received("/v1beta3/crypto/us/bars")]
    assert len(throttled) == 1 + 3  # the 429, then ten bars in pages of four


async def test_unaffordable_sell_is_refused_with_the_venue_words(alpaca: AlpacaHarness) -> None:
    events: list[Any] = []
    gw = alpaca.gateway(events.append, market_data=False)
    await alpaca.connect(gw)
    gw.submit(order("Q-1", BTC, 1.0, side=Side.SELL))
    await wait_until(lambda: bool(statuses(events, "Q-1")), what="refusal")
    assert statuses(events, "Q-1") == [OrderStatus.REJECTED]
    assert "insufficient qty available" in reason(events, "Q-1")


async def test_a_truncated_submit_answer_is_resolved_by_client_order_id(
        alpaca: AlpacaHarness) -> None:
    """HTTP 200 with half a JSON body: the order exists; it is found, never sent again."""
    h = alpaca
    events: list[Any] = []
    gw = h.gateway(events.append, market_data=False)
    await h.connect(gw)
    h.standin.script("orders", Fault("truncated_after"))
    gw.submit(order("T-1", BTC, 0.01))
    await wait_until(lambda: len(fills(events, "T-1")) == 1
                     and OrderStatus.ACCEPTED in statuses(events, "T-1"), what="resolved")
    await asyncio.sleep(0.3)
    assert h.submissions() == 1 and len(h.venue_orders()) == 1
    assert statuses(events, "T-1")[-1] is OrderStatus.ACCEPTED
    assert OrderStatus.REJECTED not in statuses(events, "T-1")
