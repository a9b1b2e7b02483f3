"""Gateway conformance: every real gateway must pass these against its venue stand-in.

Parametrised over ``gateways.testing.harness.HARNESSES``; a new gateway joins by
adding a harness.  The real client library (ccxt 4.5.90) is driven over
loopback; nothing in it is mocked.
"""

from __future__ import annotations

import asyncio
import base64
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
from gateways.ccxt import GatewayStartError
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
    HealthState,
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


async def test_streams_closed_bars_exactly_once(harness: CcxtHarness) -> None:
    h = harness
    h.history(5)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect()
    await h.wait_market_ws()
    series = []
    for i in range(6):
        t = ANCHOR_MS + i * MINUTE_MS
        forming = candle(t, 200.0 + i, 0.5)
        final = [float(t), 200.0 + i, 205.0 + i, 198.0 + i, 201.5 + i, 2.0 + i]
        await h.standin.push_candle(h.venue_id, forming)
        await h.standin.push_candle(h.venue_id, final, closed=True)
        series.append(final)
    await h.standin.push_candle(h.venue_id, candle(ANCHOR_MS + 6 * MINUTE_MS, 300.0))
    await wait_until(lambda: len(bars(events)) >= 6, what="six closed bars")
    await asyncio.sleep(0.1)  # nothing more may arrive
    got = bars(events)
    assert as_rows(got) == expected_rows(series)
    assert all(b.ts == b.ts_open + 60 * 1_000_000_000 for b in got)
    assert {b.instrument_id for b in got} == {h.instrument_id}


async def test_disconnect_backfills_gap_without_duplicates(harness: CcxtHarness) -> None:
    h = harness
    history = h.history(5)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect()
    warm = await gw.warm_up((ANCHOR_MS - 5 * MINUTE_MS) * NS)
    assert as_rows(warm) == expected_rows(history)
    await h.wait_market_ws()
    s = h.standin
    c0 = candle(ANCHOR_MS, 400.0)
    await s.push_candle(h.venue_id, c0)
    c1_forming = candle(ANCHOR_MS + MINUTE_MS, 410.0, 0.1)
    await s.push_candle(h.venue_id, c1_forming)
    await wait_until(lambda: len(bars(events)) >= 1, what="first streamed bar")
    # while the client is cut off the venue trades on: the forming candle gets
    # its final values and four more minutes pass, none of it streamed
    c1_final = [float(ANCHOR_MS + MINUTE_MS), 410.0, 420.0, 405.0, 415.0, 9.0]
    missed = [candle(ANCHOR_MS + k * MINUTE_MS, 400.0 + 10 * k) for k in range(2, 6)]
    s.set_series(h.venue_id, history + [c0, c1_final] + missed)
    s.set_clock(ANCHOR_MS + 6 * MINUTE_MS + 10_000)
    await s.drop_connections()
    await wait_until(lambda: len(bars(events)) >= 6, what="backfilled bars")
    await h.wait_market_ws()
    await wait_until(lambda: len(s.market_ws) > 0)
    await asyncio.sleep(0.1)
    c6 = candle(ANCHOR_MS + 6 * MINUTE_MS, 470.0)
    await s.push_candle(h.venue_id, c6)
    await s.push_candle(h.venue_id, candle(ANCHOR_MS + 7 * MINUTE_MS, 480.0))
    await wait_until(lambda: len(bars(events)) >= 7, what="bar after reconnect")
    await asyncio.sleep(0.1)
    assert as_rows(bars(events)) == expected_rows([c0, c1_final, *missed, c6])
    assert gw.stats.reconnects >= 1


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


async def test_insufficient_funds_is_rejected_with_reason(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    gw.submit(order("T-3", h.instrument_id, Side.BUY, 10.0))  # 500k vs 100k cash
    await wait_until(lambda: bool(updates(events, "T-3")), what="reject")
    [upd] = updates(events, "T-3")
    assert upd.status is OrderStatus.REJECTED
    assert h.insufficient_text.lower() in upd.reason.lower()
    assert "InsufficientFunds" in upd.reason
    assert h.standin.orders == {}


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


async def test_submit_timeout_without_order_is_rejected_not_resent(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False)
    await gw.connect()
    h.script_submit(Fault("stall_before", delay=0.8))  # never executes
    gw.submit(order("T-6", h.instrument_id, Side.BUY, 0.01))
    await wait_until(lambda: OrderStatus.REJECTED in statuses(events, "T-6"), timeout=5,
                     what="resolution")
    unknown, upd = updates(events, "T-6")
    assert unknown.status is OrderStatus.OUTCOME_UNKNOWN and "not re-sent" in unknown.reason
    assert upd.status is OrderStatus.REJECTED and "not re-sent" in upd.reason
    await asyncio.sleep(0.5)
    assert len(h.creates()) == 1 and h.standin.orders == {}


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


async def test_reconciliation_after_restart(harness: CcxtHarness) -> None:
    h = harness
    t0 = h.standin.now_ms() * NS
    first: list[Any] = []
    gw1 = h.gateway(first.append)
    await gw1.connect()
    await h.wait_private_ws(gw1)
    gw1.submit(order("T-8", h.instrument_id, Side.BUY, 0.02, limit=45_000.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(first, "T-8"), what="ack")
    await gw1.close()  # the daemon goes down
    down_trade = await h.standin.fill("T-8", 0.01, 45_000.0)  # executes while nobody listens

    events: list[Any] = []
    gw2 = h.gateway(events.append)
    await gw2.connect()
    [rep] = await gw2.open_orders()
    assert rep.client_order_id == "T-8" and rep.instrument_id == h.instrument_id
    assert rep.status is OrderStatus.PARTIALLY_FILLED
    assert rep.filled_quantity == pytest.approx(0.01) and rep.quantity == pytest.approx(0.02)
    status = await gw2.order_status("T-8")
    assert status is not None and status.broker_order_id == down_trade.order_id
    assert await gw2.order_status("NOPE-1") is None
    [missed] = await gw2.fills_since(t0)
    assert (missed.client_order_id, missed.trade_id) == ("T-8", down_trade.trade_id)
    assert missed.quantity == pytest.approx(0.01) and missed.price == 45_000.0
    acct = await gw2.account()
    assert acct.positions == {h.instrument_id: pytest.approx(0.01)}
    # the adopted order's next execution streams in under our client order id
    await h.wait_private_ws(gw2)
    live_trade = await h.standin.fill("T-8")
    await wait_until(lambda: live_trade.trade_id in {f.trade_id for f in fills(events, "T-8")},
                     what="adopted fill")
    await asyncio.sleep(0.1)
    # the fill-completeness check may also replay the fill made while down: same trade id,
    # which the store and router deduplicate; nothing else, nothing twice
    ids = [f.trade_id for f in fills(events, "T-8")]
    assert len(ids) == len(set(ids))
    assert set(ids) <= {down_trade.trade_id, live_trade.trade_id}


async def test_wrong_secret_refuses_to_start(harness: CcxtHarness) -> None:
    h = harness
    wrong = base64.b64encode(b"not-the-secret").decode()
    gw = h.gateway(lambda _e: None, secret=wrong)
    with pytest.raises(GatewayStartError, match="refused the API credentials"):
        await gw.connect()


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


async def test_partial_fill_then_cancel_keeps_event_order(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    await h.wait_private_ws(gw)
    gw.submit(order("T-10", h.instrument_id, Side.BUY, 0.02, limit=45_000.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "T-10"), what="ack")
    part = await h.standin.fill("T-10", 0.005, 45_000.0)
    gw.cancel("T-10")
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, "T-10"), what="cancel")
    mine = [e for e in events if getattr(e, "client_order_id", None) == "T-10"]
    kinds = [type(e).__name__ if isinstance(e, Fill) else e.status.value for e in mine]
    assert kinds == ["ACCEPTED", "Fill", "CANCELED"]
    assert fills(events, "T-10")[0].trade_id == part.trade_id


async def test_fill_during_order_stream_outage_is_not_lost(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    await h.wait_private_ws(gw)
    gw.submit(order("T-11", h.instrument_id, Side.BUY, 0.01, limit=45_000.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "T-11"), what="ack")
    await h.standin.drop_connections()
    trade = await h.standin.fill("T-11", notify=False)  # nobody is told
    await wait_until(lambda: len(fills(events, "T-11")) == 1, what="recovered fill")
    await asyncio.sleep(0.2)
    assert [f.trade_id for f in fills(events, "T-11")] == [trade.trade_id]


async def test_unlisted_symbol_refuses_to_start(harness: CcxtHarness) -> None:
    h = harness
    gw = h.gateway(lambda _e: None, trading=False, symbols={"DOGE/EUR": "DOGE"})
    with pytest.raises(GatewayStartError, match="'DOGE/EUR' is not listed"):
        await gw.connect()


async def test_duplicate_client_order_id_is_not_sent_twice(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    gw.submit(order("T-12", h.instrument_id, Side.BUY, 0.01, limit=40_000.0))
    gw.submit(order("T-12", h.instrument_id, Side.BUY, 0.01, limit=40_000.0))
    await wait_until(lambda: len(updates(events, "T-12")) >= 2, what="ack and refusal")
    assert sorted(u.status for u in updates(events, "T-12")) == [
        OrderStatus.ACCEPTED, OrderStatus.REJECTED]
    assert len(h.creates()) == 1


async def test_two_instruments_stream_independently(harness: CcxtHarness) -> None:
    h = harness
    sym2, vid2, inst2 = h.second
    h.history(2)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False,
                   symbols={h.symbol: h.instrument_id, sym2: inst2})
    await gw.connect()
    await wait_until(lambda: len(h.standin.subscriptions) >= 2, what="two subscriptions")
    await asyncio.sleep(0.05)
    for k in range(3):
        t = ANCHOR_MS + k * MINUTE_MS
        await h.standin.push_candle(h.venue_id, candle(t, 100.0 + k))
        await h.standin.push_candle(vid2, candle(t, 10.0 + k))
    await wait_until(lambda: len(bars(events)) >= 4, what="two bars each")
    await asyncio.sleep(0.1)
    by_inst: dict[str, list[float]] = {}
    for b in bars(events):
        by_inst.setdefault(b.instrument_id, []).append(b.open)
    assert by_inst == {h.instrument_id: [100.0, 101.0], inst2: [10.0, 11.0]}
    assert set(gw.instruments) == {h.instrument_id, inst2}


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


@pytest.mark.parametrize("bad", ["spike", "nan"])
async def test_bad_bar_from_the_stream_never_reaches_the_sink(
        harness: CcxtHarness, bad: str) -> None:
    h = harness
    h.history(3)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect(stream=False)
    await gw.warm_up_bars(3)
    gw.start_streams()
    await h.wait_market_ws()
    s = h.standin
    good = [candle(ANCHOR_MS + k * MINUTE_MS, 103.0 + k) for k in range(3)]
    poison = list(good[1])
    if bad == "spike":
        poison[2] = poison[4] = 1e9  # one fat-fingered tick: high and close 1e9
    else:
        poison[4] = float("nan")
    await s.push_candle(h.venue_id, good[0])
    await s.push_candle(h.venue_id, poison)
    await s.push_candle(h.venue_id, good[2])
    await s.push_candle(h.venue_id, candle(ANCHOR_MS + 3 * MINUTE_MS, 106.0))
    await wait_until(lambda: any(b.ts_open == good[2][0] * NS for b in bars(events)),
                     what="the bar after the bad one")
    await asyncio.sleep(0.05)
    got = bars(events)
    assert [b.ts_open // NS for b in got] == [int(good[0][0]), int(good[2][0])]
    assert all(b.high < 1e6 and b.close == b.close for b in got)
    [degraded] = [e for e in health(events) if e.state is HealthState.DEGRADED]
    assert "bad bar rejected" in degraded.reason and h.instrument_id in degraded.reason
    assert gw.guard is not None and gw.guard.rejected == {h.instrument_id: 1}


async def test_stream_drop_and_resync_are_reported(harness: CcxtHarness) -> None:
    h = harness
    h.history(3)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect()
    await h.wait_market_ws()
    await h.standin.drop_connections()
    await wait_until(lambda: any(e.state is HealthState.RESYNCED for e in health(events)),
                     what="resynced")
    states = [e.state for e in health(events)]
    assert states[0] is HealthState.CONNECTED
    assert states.index(HealthState.DISCONNECTED) < states.index(HealthState.RESYNCED)
    assert all(e.gateway == h.venue and e.reason for e in health(events))


@pytest.mark.parametrize("executed", [True, False])
async def test_venue_5xx_on_submit_is_resolved_by_client_order_id(
        harness: CcxtHarness, executed: bool) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False)
    await gw.connect()
    h.script_submit(Fault("error_after" if executed else "error_before"))
    gw.submit(order("U-1", h.instrument_id, Side.BUY, 0.01))
    final = OrderStatus.ACCEPTED if executed else OrderStatus.REJECTED
    await wait_until(lambda: final in statuses(events, "U-1"), timeout=5, what="resolution")
    if executed:
        await wait_until(lambda: len(fills(events, "U-1")) == 1, what="the fill")
    await asyncio.sleep(0.3)  # a blind re-send would show up now
    assert statuses(events, "U-1")[0] is OrderStatus.OUTCOME_UNKNOWN
    assert statuses(events, "U-1")[-1] is final
    assert len(h.creates()) == 1
    assert len(h.standin.orders) == (1 if executed else 0)
    assert gw.resolver.pending == []


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
