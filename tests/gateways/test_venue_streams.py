"""Streams under the venues' real habits (issue 10, items 4 and 5).

Each scenario is a row of the issue's table, played by the stand-ins against
the real ccxt.pro client over loopback: torn websocket frames, non-numeric
candle fields, half-open sockets, repeated drops, a venue clock the host
does not know (time endpoint 502), Binance's kline closed flag and Kraken's
720-candle cap.  Timing is scaled down through ``FAST_TIMING``.
"""

from __future__ import annotations

import asyncio
from typing import Any

from gateways.testing.harness import (
    ANCHOR_MS,
    HARNESSES,
    MINUTE_MS,
    CcxtHarness,
    candle,
    wait_until,
)
from gateways.testing.standin import Fault
from trader.core.events import Bar, Fill, GatewayHealth, HealthState, OrderRequest, OrderType, Side

NS = 1_000_000


def bars(events: list[Any]) -> list[Bar]:
    return [e for e in events if isinstance(e, Bar)]


def health(events: list[Any], stream_word: str = "") -> list[GatewayHealth]:
    return [e for e in events if isinstance(e, GatewayHealth) and stream_word in e.reason]


def rows(got: list[Bar]) -> list[tuple[float, ...]]:
    return [(b.ts_open // NS, b.open, b.high, b.low, b.close, b.volume) for b in got]


def limit_buy(h: CcxtHarness, coid: str) -> OrderRequest:
    return OrderRequest(0, coid, h.instrument_id, Side.BUY, 0.01, OrderType.LIMIT, 40_000.0)


async def test_truncated_frame_on_order_stream_does_not_stop_fills(harness: CcxtHarness) -> None:
    """One torn frame must not stop the reader: the next fill still arrives promptly."""
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append, market_data=False)
    await gw.connect()
    await h.wait_private_ws(gw)
    gw.submit(limit_buy(h, "tf-1"))
    await wait_until(lambda: h.standin.order_by_client_id("tf-1") is not None, what="order")
    await asyncio.sleep(0.1)
    await h.standin.push_truncated({"channel": "executions", "data": [{"order_id": "x" * 40}]},
                                   private=True)
    await asyncio.sleep(0.05)
    await h.standin.fill("tf-1")
    await wait_until(lambda: any(isinstance(e, Fill) for e in events), 2.0,
                     "the fill after the torn frame")
    assert gw.frames.bad_frames == 1


async def test_bad_last_update_of_a_candle_is_repaired_from_rest(harness: CcxtHarness) -> None:
    """A candle whose last streamed update has a non-numeric field is re-read from REST."""
    h = harness
    h.history(3)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect()
    await h.wait_market_ws()
    s = h.standin
    good = [float(ANCHOR_MS), 300.0, 305.0, 298.0, 302.0, 4.0]
    garbled: list[Any] = list(good)
    garbled[3] = "abc"  # the low, as text the venue should never have sent
    await s.push_candle(h.venue_id, candle(ANCHOR_MS, 300.0, 0.5))
    await s.push_candle(h.venue_id, garbled)
    # the venue's REST record of that minute is intact
    s.set_series(h.venue_id, s.candles[h.venue_id][:-1] + [good])
    await s.push_candle(h.venue_id, candle(ANCHOR_MS + MINUTE_MS, 303.0))
    await wait_until(lambda: len(bars(events)) >= 1, 3.0, "the repaired bar")
    assert rows(bars(events)) == [tuple(good)]
    assert gw.stats.repaired_bars == 1
    await s.push_candle(h.venue_id, candle(ANCHOR_MS + 2 * MINUTE_MS, 304.0))
    await wait_until(lambda: len(bars(events)) >= 2, 3.0, "the stream goes on")


async def test_half_open_bar_socket_is_reconnected_and_backfilled(harness: CcxtHarness) -> None:
    """A socket that stays open but says nothing (pings unanswered) is closed and redialled."""
    h = harness
    history = h.history(3)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect()
    await h.wait_market_ws()
    s = h.standin
    subs = len(s.subscriptions)  # type: ignore[attr-defined]
    s.muted = True
    missed = [candle(ANCHOR_MS + k * MINUTE_MS, 500.0 + k) for k in range(2)]
    s.set_series(h.venue_id, history + missed)
    s.set_clock(ANCHOR_MS + 2 * MINUTE_MS + 1_000)
    await gw._sync_time()
    await wait_until(lambda: gw.stats.stalls >= 1, 5.0, "the watchdog to fire")
    s.muted = False  # the venue answers again, on the new connection
    await wait_until(lambda: len(s.subscriptions) > subs, 5.0, "a new subscription")  # type: ignore
    await wait_until(lambda: len(bars(events)) >= 2, 5.0, "the gap backfilled")
    assert rows(bars(events)) == [tuple(c) for c in missed]
    states = [e.state for e in health(events, "bar stream")]
    assert states[:2] == [HealthState.DISCONNECTED, HealthState.RESYNCED]


async def test_order_stream_returns_to_websocket_after_repeated_drops(
        harness: CcxtHarness) -> None:
    """Six drops over the 'day', each after a healthy spell: the websocket is never given up."""
    h = harness
    events: list[Any] = []
    timing = h.config().timing.model_copy(update={"healthy_reset_s": 0.3})
    gw = h.gateway(events.append, market_data=False, timing=timing)
    await gw.connect()
    await h.wait_private_ws(gw)
    for i in range(3):
        gw.submit(limit_buy(h, f"rd-{i}"))
    await wait_until(lambda: all(h.standin.order_by_client_id(f"rd-{i}") for i in range(3)))
    for _ in range(6):
        await h.standin.drop_connections()
        await h.wait_private_ws(gw, timeout=5.0)
        await asyncio.sleep(0.5)  # a healthy spell (scaled: 10 minutes in production)
    # ws_failures_before_polling is 3: without the reset the 3rd drop meant polling for ever
    assert gw.stats.polling_fallbacks == 0
    assert gw.health["orders"] is HealthState.RESYNCED
    await h.standin.fill("rd-0")
    await wait_until(lambda: any(isinstance(e, Fill) for e in events), 3.0, "fill via websocket")


async def test_polling_is_bounded_and_websocket_retried(harness: CcxtHarness) -> None:
    """While polling, each cycle looks up at most ``poll_max_requests`` orders."""
    h = harness
    events: list[Any] = []
    timing = h.config().timing.model_copy(update={
        "ws_failures_before_polling": 1, "poll_max_requests": 2, "poll_interval_s": 0.1,
        "ws_retry_after_polling_s": 0.6})
    gw = h.gateway(events.append, market_data=False, timing=timing)
    await gw.connect()
    await h.wait_private_ws(gw)
    for i in range(6):
        gw.submit(limit_buy(h, f"pb-{i}"))
    await wait_until(lambda: all(h.standin.order_by_client_id(f"pb-{i}") for i in range(6)))
    await asyncio.sleep(0.1)
    before = len(h.standin.requests)
    await h.standin.drop_connections()
    await wait_until(lambda: gw.stats.polling_fallbacks >= 1, 3.0, "polling")
    await h.wait_private_ws(gw, timeout=5.0)  # back on the websocket
    lookups = [r for r in h.standin.requests[before:]
               if any(r.path.endswith(e) for e in h.lookup_endpoints)]
    # one full re-read on reconnect (6 orders) plus ~6 polling cycles of at most 2 orders
    per_lookup = len(h.lookup_endpoints)
    assert len(lookups) <= per_lookup * (6 + 2 * 8)


async def test_time_sync_502_blocks_bars_instead_of_host_clock(harness: CcxtHarness) -> None:
    """Venue clock unknown (time endpoint 502): no forming candle is published as closed."""
    h = harness
    h.history(3)
    endpoint = "time" if h.venue == "binance" else "Time"
    h.standin.script(endpoint, Fault("error_before"), times=6)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect(stream=False)
    gw.start_streams()
    await wait_until(lambda: bool(health(events, "time sync failed")), 3.0, "time health")
    await wait_until(lambda: gw.stats.time_sync_failures >= 6, 5.0, "retries")
    await h.wait_market_ws()
    forming = candle(ANCHOR_MS, 800.0, 0.5)
    await h.standin.push_candle(h.venue_id, forming)
    await asyncio.sleep(0.4)
    # the host clock (years after the stand-in's 2024) says the candle is long over: ignored
    assert bars(events) == []
    final = [float(ANCHOR_MS), 800.0, 812.0, 790.0, 805.0, 6.0]
    await h.standin.push_candle(h.venue_id, final)
    await h.standin.push_candle(h.venue_id, candle(ANCHOR_MS + MINUTE_MS, 806.0))
    await wait_until(lambda: len(bars(events)) >= 1, 3.0, "the real close")
    assert rows(bars(events)) == [tuple(final)]


async def test_forming_candle_is_final_only_by_venue_signal_or_clock(
        harness: CcxtHarness) -> None:
    """Binance: the bar is out as soon as k.x=true; Kraken: only once the venue clock passes."""
    h = harness
    h.history(3)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await gw.connect()
    await h.wait_market_ws()
    s = h.standin
    s.set_clock(ANCHOR_MS + 30_000)  # mid-candle on the venue's clock
    await gw._sync_time()
    ups = [[float(ANCHOR_MS), 900.0, 900.0 + k, 899.0 - k, 900.0 + k / 2, 1.0 + k]
           for k in range(5)]
    await s.stream_forming(h.venue_id, ups, every_s=0.03)
    await asyncio.sleep(0.3)
    if h.venue == "binance":
        await wait_until(lambda: len(bars(events)) >= 1, 2.0, "bar on k.x")
        assert rows(bars(events)) == [tuple(ups[-1])]
    else:
        assert bars(events) == []  # no closed flag: the venue's clock decides
        s.set_clock(ANCHOR_MS + MINUTE_MS + 500)
        await gw._sync_time()
        await wait_until(lambda: len(bars(events)) >= 1, 3.0, "bar by venue clock")
        assert rows(bars(events)) == [tuple(ups[-1])]


async def test_kraken_warm_up_reports_the_720_candle_cap() -> None:
    h = await HARNESSES["kraken"]().start()
    try:
        h.history(1000, end_ms=ANCHOR_MS)
        h.standin.set_clock(ANCHOR_MS + 10_000)
        events: list[Any] = []
        gw = h.gateway(events.append, trading=False)
        await gw.connect(stream=False)
        got = await gw.warm_up_bars(1000)
        assert len(got) == 720  # every candle Kraken still serves is closed here
        report = gw.warmup_reports[h.instrument_id]
        assert (report.asked, report.got, report.venue_cap) == (1000, 720, 720)
        assert report.short and "asked 1000 bars, got 720" in report.describe()
    finally:
        await h.stop()
