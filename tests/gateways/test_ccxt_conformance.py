"""What the ccxt gateway does beyond the shared suite (``test_conformance.py``): REST
polling and its fallbacks, venue precision, exchange time, resolver statistics.

Parametrised over the ccxt venues of ``gateways.testing.harness.HARNESSES``.  The real
client library (ccxt 4.5.90) is driven over loopback; nothing in it is mocked.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateways.base import (
    DAY_NS,
    Gateway,
    GatewayCapabilities,
    History,
    MarketData,
    check_horizon,
)
from gateways.testing.harness import (
    ANCHOR_MS,
    MINUTE_MS,
    CcxtHarness,
    candle,
    wait_until,
)
from gateways.testing.standin import Fault
from trader.core.events import (
    Bar,
    Fill,
    GatewayHealth,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)

NS = 1_000_000


def bars(events: list[Any]) -> list[Bar]:
    return [e for e in events if isinstance(e, Bar)]


def fills(events: list[Any], coid: str | None = None) -> list[Fill]:
    return [e for e in events
            if isinstance(e, Fill) and (coid is None or e.client_order_id == coid)]


def updates(events: list[Any], coid: str) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def statuses(events: list[Any], coid: str) -> list[OrderStatus]:
    return [u.status for u in updates(events, coid)]


def as_rows(got: list[Bar]) -> list[tuple[int, float, float, float, float, float]]:
    return [(b.ts_open // NS, b.open, b.high, b.low, b.close, b.volume) for b in got]


def expected_rows(series: list[list[float]]) -> list[tuple[int, float, float, float, float, float]]:
    return [(int(c[0]), c[1], c[2], c[3], c[4], c[5]) for c in series]


def order(coid: str, inst: str, side: Side, qty: float, limit: float | None = None) -> OrderRequest:
    kind = OrderType.LIMIT if limit is not None else OrderType.MARKET
    return OrderRequest(time.time_ns(), coid, inst, side, qty, kind, limit)


async def test_market_order_fills_with_trade_id(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    await h.wait_private_ws(gw)
    gw.submit(order("T-1", h.instrument_id, Side.BUY, 0.01))
    await wait_until(lambda: len(fills(events, "T-1")) == 1, what="fill")
    await asyncio.sleep(0.2)  # websocket, REST response and catch-up all saw it: still one fill
    [fill] = fills(events, "T-1")
    [trade] = h.standin.trades
    assert fill.trade_id == trade.trade_id
    assert (fill.side, fill.quantity, fill.price) == (Side.BUY, 0.01, trade.price)
    assert fill.commission == pytest.approx(trade.fee)
    assert fill.instrument_id == h.instrument_id
    acks = updates(events, "T-1")
    assert acks[0].status is OrderStatus.ACCEPTED and acks[0].broker_order_id == trade.order_id
    [sent] = h.creates()
    assert h.client_id_param(sent) == "T-1"
    assert sent.signed_ok is True


async def test_limit_order_then_cancel(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    await h.wait_private_ws(gw)
    gw.submit(order("T-2", h.instrument_id, Side.BUY, 0.012345678, limit=40_000.0004))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "T-2"), what="ack")
    [sent] = h.creates()
    inst = gw.instruments[h.instrument_id]
    # amounts and prices were rounded by ccxt's precision helpers to the venue's steps
    assert inst.on_lot(float(sent.params.get("quantity") or sent.params.get("volume")))
    assert inst.on_tick(float(sent.params["price"]))
    gw.cancel("T-2")
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, "T-2"), what="cancel")
    await asyncio.sleep(0.1)
    assert statuses(events, "T-2") == [OrderStatus.ACCEPTED, OrderStatus.CANCELED]
    assert [o.status for o in h.standin.orders.values()] == ["canceled"]
    assert fills(events) == []


async def test_order_below_venue_minimum_never_leaves(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    gw.submit(order("T-4", h.instrument_id, Side.BUY, 0.00001, limit=1.0))  # notional 0.00001
    await wait_until(lambda: bool(updates(events, "T-4")), what="reject")
    [upd] = updates(events, "T-4")
    assert upd.status is OrderStatus.REJECTED and "below minimum" in upd.reason
    assert h.creates() == []


async def test_submit_timeout_is_resolved_by_query_not_resent(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False)
    await gw.connect()
    h.script_submit(Fault("stall_after", delay=1.0))  # executes, answers after the 0.4 s timeout
    gw.submit(order("T-5", h.instrument_id, Side.BUY, 0.01))
    await wait_until(lambda: len(fills(events, "T-5")) == 1, timeout=5, what="resolved fill")
    await asyncio.sleep(1.0)  # past the stall: a blind retry would show up now
    assert len(h.creates()) == 1
    assert len(h.standin.orders) == 1
    # unknown first, unless the poller found the order while the answer still hung
    assert statuses(events, "T-5")[-1] is OrderStatus.ACCEPTED
    assert statuses(events, "T-5") in ([OrderStatus.OUTCOME_UNKNOWN, OrderStatus.ACCEPTED],
                                       [OrderStatus.ACCEPTED])
    assert OrderStatus.REJECTED not in statuses(events, "T-5")
    assert gw.stats.resolved_by_query <= 1
    assert fills(events, "T-5")[0].trade_id == h.standin.trades[0].trade_id


async def test_rate_limited_submit_backs_off_then_places_once(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    h.script_submit(Fault("rate_limit"))
    gw.submit(order("T-7", h.instrument_id, Side.BUY, 0.01))
    await wait_until(lambda: len(fills(events, "T-7")) == 1, what="fill after backoff")
    assert len(h.creates()) == 2  # the throttled request and the accepted one
    assert len(h.standin.orders) == 1
    assert gw.stats.rate_limited == 1


async def test_rest_polling_when_websocket_disabled(harness: CcxtHarness) -> None:
    h = harness
    history = h.history(3)
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False)
    await gw.connect()
    await asyncio.sleep(0.1)
    assert bars(events) == []  # history is not replayed as live bars
    later = [candle(ANCHOR_MS + k * MINUTE_MS, 500.0 + k) for k in range(3)]
    h.standin.set_series(h.venue_id, history + later)
    h.standin.set_clock(ANCHOR_MS + 3 * MINUTE_MS + 5_000)
    await gw._sync_time()  # the venue clock jumped; a real poller would see time pass
    await wait_until(lambda: len(bars(events)) >= 3, what="polled bars")
    await asyncio.sleep(0.15)
    assert as_rows(bars(events)) == expected_rows(later)
    assert not h.standin.market_ws
    gw.submit(order("T-9", h.instrument_id, Side.BUY, 0.01))
    await wait_until(lambda: len(fills(events, "T-9")) == 1, what="polled fill")
    assert fills(events, "T-9")[0].trade_id == h.standin.trades[0].trade_id


async def test_warm_up_paginates_history(harness: CcxtHarness) -> None:
    h = harness
    history = h.history(10)
    gw = h.gateway(lambda _e: None, trading=False,
                   timing=h.config().timing.model_copy(update={"history_page_limit": 3}))
    await gw.connect(stream=False)
    got = await gw.warm_up((ANCHOR_MS - 10 * MINUTE_MS) * NS)
    assert as_rows(got) == expected_rows(history)
    assert len([r for r in h.standin.requests if "OHLC" in r.path or "klines" in r.path]) >= 4


async def test_no_url_escapes_loopback(harness: CcxtHarness) -> None:
    h = harness
    gw = h.gateway(lambda _e: None, trading=False)
    await gw.connect(stream=False)

    def walk(tree: Any) -> list[str]:
        if isinstance(tree, dict):
            return [u for v in tree.values() for u in walk(v)]
        return [tree] if isinstance(tree, str) else []

    urls = walk(gw.exchange.urls["api"])
    assert urls and all("://127.0.0.1:" in u for u in urls)
    dead = [u for u in urls if f":{h.standin.port}" not in u]
    assert dead and all("127.0.0.1:1" in u for u in dead)


async def test_websocket_failing_falls_back_to_rest_polling(harness: CcxtHarness) -> None:
    h = harness
    history = h.history(3)
    urls = h.standin.urls()  # type: ignore[attr-defined]
    # market-data websocket pointed at a closed port: every dial fails
    broken = {k: (dict(v) if isinstance(v, dict) else v) for k, v in urls.items()}
    for key in ("spot", "publicV2"):
        if key in broken["ws"]:
            broken["ws"][key] = "ws://127.0.0.1:1/ws"
    events: list[Any] = []
    timing = h.config().timing.model_copy(update={"ws_retry_after_polling_s": 30.0})
    gw = h.gateway(events.append, trading=False, urls=broken, timing=timing)
    await gw.connect()
    await wait_until(lambda: gw.stats.polling_fallbacks == 1, what="fallback to polling")
    assert gw.stats.ws_errors == 3
    later = [candle(ANCHOR_MS + k * MINUTE_MS, 600.0 + k) for k in range(2)]
    h.standin.set_series(h.venue_id, history + later)
    h.standin.set_clock(ANCHOR_MS + 2 * MINUTE_MS + 5_000)
    await gw._sync_time()
    await wait_until(lambda: len(bars(events)) >= 2, what="bars by polling")
    assert as_rows(bars(events)) == expected_rows(later)
    assert gw.stats.polled_bars == 2


async def test_quiet_market_bar_is_closed_through_rest(harness: CcxtHarness) -> None:
    h = harness
    h.history(3)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect()
    await h.wait_market_ws()
    await h.standin.push_candle(h.venue_id, candle(ANCHOR_MS, 700.0, 0.5))
    final = [float(ANCHOR_MS), 700.0, 710.0, 690.0, 705.0, 4.0]
    h.standin.set_series(h.venue_id, h.standin.candles[h.venue_id][:-1] + [final])
    # no next candle ever comes (no trades); the venue clock passes the bar's end
    h.standin.set_clock(ANCHOR_MS + MINUTE_MS + 100)
    await gw._sync_time()
    await wait_until(lambda: len(bars(events)) >= 1, what="bar closed by REST")
    assert as_rows(bars(events)) == expected_rows([final])


async def test_gateway_runs_on_exchange_time(harness: CcxtHarness) -> None:
    """The stand-in's clock reads 2024; the gateway measures the offset and uses it."""
    h = harness
    gw = h.gateway(lambda _e: None, trading=False)
    await gw.connect(stream=False)
    assert abs(gw._now_ms() - h.standin.now_ms()) < 1_500  # Kraken's clock has 1 s steps
    assert abs(gw._now_ms() - time.time() * 1000) > 86_400_000


# -- protocol: capabilities, history, bad bars, health, outcome unknown --------------------
def health(events: list[Any]) -> list[GatewayHealth]:
    return [e for e in events if isinstance(e, GatewayHealth)]


async def test_declares_capabilities_and_speaks_both_protocols(harness: CcxtHarness) -> None:
    h = harness
    gw = h.gateway(lambda _e: None)
    assert isinstance(gw, Gateway) and isinstance(gw, MarketData)
    caps = gw.capabilities
    assert isinstance(caps, GatewayCapabilities)
    assert {OrderType.MARKET, OrderType.LIMIT} <= caps.order_types
    assert caps.client_order_ids and caps.trading and caps.market_data
    stop = OrderRequest(0, "X", h.instrument_id, Side.BUY, 1.0, OrderType.STOP, None, 1.0)
    assert "not supported" in (caps.supports(stop) or "")
    # the reconciliation horizon is the venue's: Binance lists ~6 months, Kraken everything
    lookback = {"binance": 180 * DAY_NS, "kraken": None}[h.venue]
    assert caps.fills_lookback_ns == lookback
    year_ago = time.time_ns() - 365 * DAY_NS
    assert (check_horizon(caps, year_ago, time.time_ns()) is not None) is (lookback is not None)


async def test_history_is_paginated_and_honest_about_missing_bars(
        harness: CcxtHarness) -> None:
    h = harness
    series = h.history(12)
    del series[4]  # the venue has a hole (no trades that minute)
    h.standin.set_series(h.venue_id, series)
    gw = h.gateway(lambda _e: None, trading=False,
                   timing=h.config().timing.model_copy(update={"history_page_limit": 4}))
    await gw.connect(stream=False)
    start = (ANCHOR_MS - 12 * MINUTE_MS) * NS
    hist = await gw.history(h.instrument_id, start, ANCHOR_MS * NS)
    assert isinstance(hist, History)
    assert as_rows(hist.bars) == expected_rows(series)
    assert (hist.expected, hist.missing, hist.complete) == (12, 1, False)
    # asking further back than the venue has: fewer bars, and the result says so
    h.history(12)
    older = await gw.history(h.instrument_id, start - 30 * MINUTE_MS * NS, ANCHOR_MS * NS)
    assert len(older.bars) == 12 and older.missing == 30 and not older.complete
    full = await gw.history(h.instrument_id, start, ANCHOR_MS * NS)
    assert full.complete and len(full.bars) == 12
    pages = [r for r in h.standin.requests if "OHLC" in r.path or "klines" in r.path]
    assert len(pages) >= 3 + 1  # Binance pages by 4; Kraken returns its window at once
    # the end is capped at the last closed bar: the forming one never comes back
    h.standin.set_series(h.venue_id, h.standin.candles[h.venue_id] + [candle(ANCHOR_MS, 150.0)])
    now = await gw.history(h.instrument_id, start)
    assert now.bars[-1].ts_open == (ANCHOR_MS - MINUTE_MS) * NS and now.complete


async def test_unknown_outcome_keeps_being_resolved_while_queries_fail(
        harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False)
    await gw.connect()
    h.script_submit(Fault("error_after"))
    for endpoint in h.lookup_endpoints:
        h.standin.script(endpoint, Fault("rate_limit"), times=3)
    gw.submit(order("U-2", h.instrument_id, Side.BUY, 0.01))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "U-2"), timeout=8,
                     what="resolution after failed queries")
    assert gw.resolver.stats.query_errors >= 1
    assert len(h.creates()) == 1 and len(h.standin.orders) == 1


async def test_account_report_fields(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    gw.submit(order("A-1", h.instrument_id, Side.BUY, 0.01))
    await wait_until(lambda: len(fills(events, "A-1")) == 1, what="fill")
    acct = await gw.account()
    assert acct.positions == {h.instrument_id: pytest.approx(0.01)}
    [pos] = acct.position_details
    assert pos.instrument_id == h.instrument_id and not acct.hedged
    assert acct.buying_power == pytest.approx(next(iter(acct.cash.values())))
    assert acct.margin_used is None  # spot: no margin reported
