"""Alpaca's own stream habits, on the stand-in through the real alpaca-py stream clients.

Updated bars (``u``) become ``BarCorrection``; a refused stream authentication and
an undecodable frame are reported and survived; daily stock bars are published
once per session, after its close, stamped at the close; shutdown is immediate.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from typing import Any

from gateways.testing.alpaca_harness import AlpacaHarness
from gateways.testing.harness import wait_until
from gateways.testing.venue import row
from trader.core.events import (
    Bar,
    BarCorrection,
    Fill,
    GatewayHealth,
    HealthState,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)

BTC, SPY, AAPL = "BTCUSD.ALPACA", "SPY.ALPACA", "AAPL.ALPACA"
NS = 1_000_000_000


def at(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


def of(events: list[Any], kind: type) -> list[Any]:
    return [e for e in events if isinstance(e, kind)]


def health(events: list[Any], stream: str, state: HealthState) -> list[GatewayHealth]:
    return [e for e in of(events, GatewayHealth) if e.stream == stream and e.state is state]


async def test_updated_bar_becomes_a_correction_never_a_second_bar(alpaca: AlpacaHarness) -> None:
    h = alpaca
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw)
    t0 = h.bar_open(0)
    await h.publish_bar(BTC, row(t0, 100.0))
    await wait_until(lambda: len(of(events, Bar)) == 1, what="the bar")
    revised = [t0 / 1e6, 100.0, 103.5, 99.0, 101.5, 1.7]  # late trades moved high and volume
    await h.standin.push_updated_bar("BTC/USD", revised)
    await wait_until(lambda: len(of(events, BarCorrection)) == 1, what="the correction")
    await h.publish_bar(BTC, row(h.bar_open(1), 101.0))
    await wait_until(lambda: len(of(events, Bar)) == 2, what="the next bar")
    [corr] = of(events, BarCorrection)
    assert corr.bar_ts == t0 + 60 * NS and corr.instrument_id == BTC
    assert (corr.high, corr.close, corr.volume) == (103.5, 101.5, 1.7)
    assert [b.ts_open for b in of(events, Bar)] == [t0, h.bar_open(1)]
    # a revision of a bar never published is not a correction of anything
    await h.standin.push_updated_bar("BTC/USD", [h.bar_open(5) / 1e6, 1.0, 2.0, 0.5, 1.5, 1.0])
    bad = [t0 / 1e6, 100.0, 90.0, 99.0, 101.5, 1.7]  # high below low: not a bar
    await h.standin.push_updated_bar("BTC/USD", bad)
    await wait_until(lambda: any(e.state is HealthState.DEGRADED
                                 for e in of(events, GatewayHealth)), what="rejected revision")
    assert len(of(events, BarCorrection)) == 1 and gw.stats.corrections == 1


async def test_refused_stream_authentication_is_reported_then_recovers(
        alpaca: AlpacaHarness) -> None:
    h = alpaca
    h.standin.refuse_stream_auth = True
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()  # REST accepts the keys; the streams do not (yet)
    await wait_until(lambda: bool(health(events, "bars:crypto", HealthState.DISCONNECTED))
                     and bool(health(events, "orders", HealthState.DISCONNECTED)),
                     what="both streams down")
    assert "auth failed" in health(events, "bars:crypto", HealthState.DISCONNECTED)[0].reason
    assert "authenticate" in health(events, "orders", HealthState.DISCONNECTED)[0].reason
    h.standin.refuse_stream_auth = False
    await wait_until(lambda: bool(health(events, "bars:crypto", HealthState.RESYNCED))
                     and bool(health(events, "orders", HealthState.RESYNCED)),
                     timeout=10, what="both streams back")
    await h.publish_bar(BTC, row(h.bar_open(0), 100.0))
    await wait_until(lambda: len(of(events, Bar)) == 1, what="a bar after recovery")


async def test_undecodable_frame_is_skipped_without_dropping_the_stream(
        alpaca: AlpacaHarness) -> None:
    h = alpaca
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    await h.standin.push_garbage()
    await h.standin.push_raw('{"stream": "trade_updates", "data": {"ev', private=True)
    await wait_until(lambda: gw.stats.bad_frames >= 2, what="two bad frames counted")
    degraded = [e for e in of(events, GatewayHealth) if e.state is HealthState.DEGRADED]
    assert {e.stream for e in degraded} == {"bars:crypto", "orders"}
    assert all("undecodable frame" in e.reason for e in degraded)
    await h.publish_bar(BTC, row(h.bar_open(0), 100.0))
    gw.submit(OrderRequest(time.time_ns(), "B-1", BTC, Side.BUY, 0.01, OrderType.MARKET))
    await wait_until(lambda: len(of(events, Bar)) == 1 and len(of(events, Fill)) == 1,
                     what="bar and fill after the bad frames")
    assert [r.connects for r in gw._runners] == [1, 1]  # the connections stayed up
    assert not [e for e in of(events, GatewayHealth) if e.state is HealthState.DISCONNECTED]


async def test_daily_stock_bars_publish_once_after_the_session_close(
        alpaca: AlpacaHarness) -> None:
    h = alpaca
    h.standin.set_clock(at("2024-01-03T15:00:30"))  # Wednesday, mid-session
    dec29 = at("2023-12-29T05:00:00")  # midnight New York (Jan 1 was a holiday)
    jan2, jan3 = at("2024-01-02T05:00:00"), at("2024-01-03T05:00:00")
    forming = [jan3, 470.0, 471.0, 469.0, 470.5, 1_000.0]
    h.standin.set_series("SPY", [[dec29, 466.0, 468.0, 465.0, 467.0, 9e6],
                                 [jan2, 467.0, 469.0, 466.0, 468.0, 8e6], forming])
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False, instruments=(SPY,), timeframe="1d")
    await h.connect(gw, stream=False)
    warm = await gw.warm_up_bars(2)
    assert [b.ts for b in warm] == [at("2023-12-29T21:00:00") * 1_000_000,
                                    at("2024-01-02T21:00:00") * 1_000_000]
    gw.start_streams()
    for k in range(3):  # the day goes on: the venue's daily bar keeps changing
        h.standin.candles["SPY"][-1] = [jan3, 470.0, 472.0 + k, 469.0, 471.0 + k, 2e6 + k]
        await h.standin.push_daily("SPY", h.standin.candles["SPY"][-1])
        await asyncio.sleep(0.1)
    assert of(events, Bar) == []  # never a forming day
    h.standin.set_clock(at("2024-01-03T21:00:05"))  # the session has closed
    await wait_until(lambda: len(of(events, Bar)) == 1, what="the closed day")
    await asyncio.sleep(0.3)
    [bar] = of(events, Bar)
    assert bar.ts_open == jan3 * 1_000_000 and bar.ts == at("2024-01-03T21:00:00") * 1_000_000
    assert (bar.close, bar.volume) == (473.0, 2e6 + 2)
    assert not h.standin.streams  # daily bars need no data stream


async def test_close_stops_every_stream_at_once(alpaca: AlpacaHarness) -> None:
    h = alpaca
    events: list[Any] = []
    gw = h.gateway(events.append, instruments=(BTC, AAPL))
    await h.connect(gw)
    assert {s.path for s in h.standin.streams.values()} == {"/v2/iex", "/v1beta3/crypto/us"}
    assert len(h.standin.private_ws) == 1
    await gw.close()  # cancels the stream tasks: no wait for the library's 5 s receive
    assert not gw._tasks
    await wait_until(lambda: not h.standin.streams and not h.standin.private_ws,
                     what="sockets closed at the venue")
    gw.submit(OrderRequest(time.time_ns(), "Z-1", BTC, Side.BUY, 0.01, OrderType.MARKET))
    [upd] = of(events, OrderUpdate)
    assert upd.status is OrderStatus.REJECTED and "not connected" in upd.reason


async def test_venue_restart_is_survived_with_the_gap_backfilled(alpaca: AlpacaHarness) -> None:
    h = alpaca
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    t = [h.bar_open(k) for k in range(4)]
    await h.publish_bar(BTC, row(t[0], 100.0))
    await wait_until(lambda: len(of(events, Bar)) == 1, what="the first bar")
    subs = len(h.standin.subscriptions)
    await h.standin.restart()
    # while the venue was away one minute closed; its bar is in the venue's history
    h.standin.candles["BTC/USD"].append([t[1] / 1e6, 101.0, 103.0, 100.0, 102.0, 1.0])
    h.set_now(t[2] + NS)
    await wait_until(lambda: len(h.standin.subscriptions) > subs
                     and gw.health.get("orders") is HealthState.RESYNCED, timeout=10,
                     what="streams back after the restart")
    await h.publish_bar(BTC, row(t[2], 104.0))
    await wait_until(lambda: len(of(events, Bar)) == 3, what="backfilled and next bar")
    await asyncio.sleep(0.2)
    assert [b.ts_open for b in of(events, Bar)] == t[:3]
    assert health(events, "bars:crypto", HealthState.DISCONNECTED)
    assert health(events, "bars:crypto", HealthState.RESYNCED)
