"""The shared gateway conformance suite: every scenario, on every venue of ``VENUES``.

Each venue's real client library (ccxt, alpaca-py, ib_async, mt5linux) talks
over loopback to a stand-in speaking that venue's wire protocol; the suite
sees the venue only through ``gateways.testing.venue.VenueHarness``.  What a
venue does that the others do not is tested in that venue's own files.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.base import (
    DAY_NS,
    Gateway,
    GatewayCapabilities,
    GatewayStartError,
    History,
    MarketData,
    check_horizon,
)
from gateways.testing.harness import wait_until
from gateways.testing.venue import SUBMIT_FAULTS, VENUES, Row, VenueHarness, harness_class, row
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


@pytest.fixture(params=sorted(VENUES))
async def venue(request: pytest.FixtureRequest) -> AsyncIterator[VenueHarness]:
    """Each venue's stand-in in turn, started; everything it built is closed after."""
    h = await harness_class(request.param)().start()
    try:
        yield h
    finally:
        await h.stop()


def _fault_cases() -> list[Any]:
    return [pytest.param(v, f, id=f"{v}-{f}") for v in sorted(VENUES)
            for f in SUBMIT_FAULTS if f not in harness_class(v).unsupported_faults]


# -- helpers -------------------------------------------------------------------------------
def bars(events: list[Any]) -> list[Bar]:
    return [e for e in events if isinstance(e, Bar)]


def rows(got: list[Bar]) -> list[Row]:
    return [(b.ts_open, b.open, b.high, b.low, b.close, b.volume) for b in got]


def fills(events: list[Any], coid: str | None = None) -> list[Fill]:
    return [e for e in events
            if isinstance(e, Fill) and (coid is None or e.client_order_id == coid)]


def updates(events: list[Any], coid: str) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def statuses(events: list[Any], coid: str) -> list[OrderStatus]:
    return [u.status for u in updates(events, coid)]


def health(events: list[Any]) -> list[GatewayHealth]:
    return [e for e in events if isinstance(e, GatewayHealth)]


def market(h: VenueHarness, coid: str, qty: float | None = None,
           side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest(time.time_ns(), coid, h.instrument_id, side, qty or h.order_qty,
                        OrderType.MARKET, None)


def resting(h: VenueHarness, coid: str, qty: float | None = None) -> OrderRequest:
    return OrderRequest(time.time_ns(), coid, h.instrument_id, Side.BUY, qty or h.order_qty,
                        OrderType.LIMIT, h.resting_limit)


def closed_rows(h: VenueHarness, n: int, base: float = 100.0) -> list[Row]:
    """``n`` closed bars ending where the current bar opens."""
    return [row(h.bar_open(k - n), base + k) for k in range(n)]


# -- bars ----------------------------------------------------------------------------------
async def test_streams_closed_bars_exactly_once(venue: VenueHarness) -> None:
    h = venue
    h.install_history(h.instrument_id, closed_rows(h, 5))
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw)
    published = [(h.bar_open(k), 200.0 + k, 205.0 + k, 198.0 + k, 201.5 + k, 2.0 + k)
                 for k in range(4)]
    for bar in published:
        await h.publish_bar(h.instrument_id, bar)
    await wait_until(lambda: len(bars(events)) >= 4, what="four closed bars")
    await asyncio.sleep(0.2)  # nothing more may arrive: no forming bar, no repeat
    got = bars(events)
    assert rows(got) == published
    assert all(b.ts == b.ts_open + h.timeframe_s * 1_000_000_000 for b in got)
    assert {b.instrument_id for b in got} == {h.instrument_id}


async def test_gap_after_a_stream_drop_is_backfilled_once(venue: VenueHarness) -> None:
    h = venue
    t = [h.bar_open(k) for k in range(8)]
    history = closed_rows(h, 5)
    h.install_history(h.instrument_id, history)
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw)
    b0 = row(t[0], 400.0)
    await h.publish_bar(h.instrument_id, b0)
    await wait_until(lambda: len(bars(events)) >= 1, what="first streamed bar")
    # while the stream is cut the venue trades on: four bars pass unstreamed
    missed = [row(t[k], 400.0 + 10 * k) for k in range(1, 5)]
    h.install_history(h.instrument_id, history + [b0, *missed])
    h.set_now(t[5] + 1_000_000_000)
    await h.drop_streams()
    await wait_until(lambda: len(bars(events)) >= 5, timeout=10, what="backfilled bars")
    b5 = row(t[5], 470.0)
    await h.publish_bar(h.instrument_id, b5)
    await wait_until(lambda: len(bars(events)) >= 6, timeout=10, what="the bar after")
    await asyncio.sleep(0.2)
    assert rows(bars(events)) == [b0, *missed, b5]


async def test_two_instruments_stream_independently(venue: VenueHarness) -> None:
    h = venue
    h.install_history(h.instrument_id, closed_rows(h, 2))
    h.install_history(h.second_instrument, closed_rows(h, 2, base=10.0))
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False,
                   instruments=(h.instrument_id, h.second_instrument))
    await h.connect(gw)
    for k in range(2):
        await h.publish_bar(h.instrument_id, row(h.bar_open(k), 100.0 + k))
        await h.publish_bar(h.second_instrument, row(h.bar_open(k), 10.0 + k))
    await wait_until(lambda: len(bars(events)) >= 4, what="two bars each")
    await asyncio.sleep(0.2)
    by_inst: dict[str, list[float]] = {}
    for b in bars(events):
        by_inst.setdefault(b.instrument_id, []).append(b.open)
    assert by_inst == {h.instrument_id: [100.0, 101.0], h.second_instrument: [10.0, 11.0]}


@pytest.mark.parametrize("bad", ["spike", "nan"])
async def test_bad_bar_never_reaches_the_sink(venue: VenueHarness, bad: str) -> None:
    h = venue
    h.install_history(h.instrument_id, closed_rows(h, 3))
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw, stream=False)
    await gw.warm_up_bars(3)  # the band's reference is the last closed bar
    gw.start_streams()
    await h.connect(gw)
    good = [row(h.bar_open(k), 103.0 + k) for k in range(3)]
    o, hi, lo, c, v = good[1][1:]
    poison: Row = ((good[1][0], o, 1e9, lo, 1e9, v) if bad == "spike"
                   else (good[1][0], o, hi, lo, math.nan, v))
    for bar in (good[0], poison, good[2]):
        await h.publish_bar(h.instrument_id, bar)
    await wait_until(lambda: any(b.ts_open == good[2][0] for b in bars(events)),
                     what="the bar after the bad one")
    await asyncio.sleep(0.1)
    got = bars(events)
    assert [b.ts_open for b in got] == [good[0][0], good[2][0]]
    degraded = [e for e in health(events) if e.state is HealthState.DEGRADED]
    assert degraded and "bad bar rejected" in degraded[0].reason
    assert h.instrument_id in degraded[0].reason


async def test_history_is_honest_about_missing_bars_and_the_forming_one(
        venue: VenueHarness) -> None:
    h = venue
    series = closed_rows(h, 12)
    del series[4]  # the venue has a hole (no trades in that interval)
    h.install_history(h.instrument_id, series)
    gw = h.gateway(lambda _e: None, trading=False)
    await h.connect(gw, stream=False)
    start, end = h.bar_open(-12), h.bar_open(0)
    hist = await gw.history(h.instrument_id, start, end)
    assert isinstance(hist, History)
    assert rows(hist.bars) == series
    assert (hist.expected, hist.missing, hist.complete) == (12, 1, False)
    # the forming bar is never history: with no end, the last bar is the last closed one
    h.install_history(h.instrument_id, closed_rows(h, 12) + [row(h.bar_open(0), 150.0)])
    now = await gw.history(h.instrument_id, start)
    assert now.bars[-1].ts_open == h.bar_open(-1) and now.complete


async def test_warm_up_ends_at_the_last_closed_bar(venue: VenueHarness) -> None:
    h = venue
    history = closed_rows(h, 10)
    h.install_history(h.instrument_id, history + [row(h.bar_open(0), 999.0)])
    gw = h.gateway(lambda _e: None, trading=False)
    await h.connect(gw, stream=False)
    got = await gw.warm_up_bars(6)
    assert rows(got) == history[-6:]


async def test_stream_drop_and_resync_are_reported(venue: VenueHarness) -> None:
    h = venue
    h.install_history(h.instrument_id, closed_rows(h, 3))
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw)
    await h.drop_streams()
    await wait_until(lambda: any(e.state is HealthState.RESYNCED for e in health(events)),
                     timeout=10, what="resynced")
    states = [e.state for e in health(events)]
    assert states[0] is HealthState.CONNECTED
    assert states.index(HealthState.DISCONNECTED) < states.index(HealthState.RESYNCED)
    assert all(e.gateway == h.venue and e.reason for e in health(events))


# -- start-up ------------------------------------------------------------------------------
async def test_refused_credentials_stop_the_start(venue: VenueHarness) -> None:
    h = venue
    gw = h.gateway(lambda _e: None, bad_credentials=True)
    with pytest.raises(GatewayStartError, match="(?i)credential"):
        await h.connect(gw)


async def test_unlisted_instrument_stops_the_start(venue: VenueHarness) -> None:
    h = venue
    gw = h.gateway(lambda _e: None, trading=False, instruments=(h.unlisted_instrument,))
    with pytest.raises(GatewayStartError, match="not listed"):
        await h.connect(gw)


async def test_declares_capabilities_and_speaks_both_protocols(venue: VenueHarness) -> None:
    h = venue
    gw = h.gateway(lambda _e: None)
    assert isinstance(gw, Gateway) and isinstance(gw, MarketData)
    caps = gw.capabilities
    assert isinstance(caps, GatewayCapabilities)
    assert {OrderType.MARKET, OrderType.LIMIT} <= caps.order_types
    assert caps.client_order_ids and caps.trading and caps.market_data
    assert caps.fills_lookback_ns == h.fills_lookback_ns
    year_ago = time.time_ns() - 365 * DAY_NS
    assert ((check_horizon(caps, year_ago, time.time_ns()) is not None)
            is (h.fills_lookback_ns is not None and h.fills_lookback_ns < 365 * DAY_NS))


# -- orders --------------------------------------------------------------------------------
async def test_market_order_fills_once_with_the_venue_execution_id(venue: VenueHarness) -> None:
    h = venue
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(market(h, "T-1"))
    await wait_until(lambda: len(fills(events, "T-1")) == 1, what="fill")
    await asyncio.sleep(0.3)  # stream, REST answer and catch-up all saw it: still one fill
    [fill] = fills(events, "T-1")
    assert fill.trade_id in h.execution_ids()
    assert (fill.side, fill.instrument_id) == (Side.BUY, h.instrument_id)
    assert fill.quantity == pytest.approx(h.order_qty) and fill.price > 0
    first = updates(events, "T-1")[0]
    assert first.status is OrderStatus.ACCEPTED and first.broker_order_id
    assert h.submissions() == 1


async def test_resting_limit_then_cancel(venue: VenueHarness) -> None:
    h = venue
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(resting(h, "T-2"))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "T-2"), what="ack")
    gw.cancel("T-2")
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, "T-2"), what="cancel")
    await asyncio.sleep(0.2)
    assert statuses(events, "T-2") == [OrderStatus.ACCEPTED, OrderStatus.CANCELED]
    assert "cancel" in h.venue_orders()["T-2"].lower()
    assert fills(events) == []


async def test_insufficient_funds_is_rejected_with_the_venue_reason(venue: VenueHarness) -> None:
    h = venue
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(market(h, "T-3", qty=h.unaffordable_qty))
    await wait_until(lambda: bool(updates(events, "T-3")), what="reject")
    await asyncio.sleep(0.2)
    assert statuses(events, "T-3") == [OrderStatus.REJECTED]
    assert h.insufficient_text.lower() in updates(events, "T-3")[0].reason.lower()
    assert fills(events) == []


async def test_duplicate_client_order_id_is_not_sent_twice(venue: VenueHarness) -> None:
    h = venue
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(resting(h, "T-4"))
    gw.submit(resting(h, "T-4"))
    await wait_until(lambda: len(updates(events, "T-4")) >= 2, what="ack and refusal")
    assert sorted(statuses(events, "T-4")) == sorted([OrderStatus.ACCEPTED,
                                                      OrderStatus.REJECTED])
    assert h.submissions() == 1


@pytest.mark.parametrize(("venue_name", "fault"), _fault_cases())
async def test_submit_fault_ends_in_one_outcome_never_a_resend(venue_name: str,
                                                               fault: str) -> None:
    h = await harness_class(venue_name)().start()
    try:
        events: list[Any] = []
        gw = h.gateway(events.append)
        await h.connect(gw)
        h.script_submit(fault)
        gw.submit(market(h, "F-1"))
        placed = fault in ("timeout_placed", "error_placed", "rate_limited")
        final = OrderStatus.ACCEPTED if placed else OrderStatus.REJECTED
        await wait_until(lambda: final in statuses(events, "F-1"), timeout=10,
                         what=f"outcome after {fault}")
        if placed:
            await wait_until(lambda: len(fills(events, "F-1")) == 1, what="the fill")
        await asyncio.sleep(1.2)  # past any stall: a blind re-send would show up now
        got = statuses(events, "F-1")
        assert got[-1] is final
        assert OrderStatus.REJECTED not in got[:-1]
        if not placed:  # nobody but the gateway's own doubt can say what happened
            assert got[0] is OrderStatus.OUTCOME_UNKNOWN and "not re-sent" in \
                updates(events, "F-1")[-1].reason
        assert h.submissions() == (2 if fault == "rate_limited" else 1)
        assert len(h.venue_orders()) == (1 if placed else 0)
        assert len(fills(events, "F-1")) == (1 if placed else 0)
    finally:
        await h.stop()


async def test_partial_fill_then_cancel_keeps_event_order(venue: VenueHarness) -> None:
    h = venue
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(resting(h, "T-5", qty=2 * h.order_qty))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "T-5"), what="ack")
    part = await h.venue_fill("T-5", h.order_qty / 2, h.resting_limit)
    await wait_until(lambda: len(fills(events, "T-5")) == 1, what="partial fill")
    gw.cancel("T-5")
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, "T-5"), what="cancel")
    await asyncio.sleep(0.2)
    mine = [e for e in events if getattr(e, "client_order_id", None) == "T-5"
            and (isinstance(e, Fill) or e.status is not OrderStatus.PARTIALLY_FILLED)]
    kinds = ["Fill" if isinstance(e, Fill) else e.status.value for e in mine]
    assert kinds == ["ACCEPTED", "Fill", "CANCELED"]
    assert fills(events, "T-5")[0].trade_id == part


async def test_fill_during_an_order_stream_outage_is_not_lost(venue: VenueHarness) -> None:
    h = venue
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(resting(h, "T-6"))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "T-6"), what="ack")
    await h.drop_streams()
    trade = await h.venue_fill("T-6", notify=False)  # nobody is told
    await wait_until(lambda: len(fills(events, "T-6")) == 1, timeout=10, what="recovered fill")
    await asyncio.sleep(0.3)
    assert [f.trade_id for f in fills(events, "T-6")] == [trade]


async def test_reconciliation_after_a_restart_with_fills_while_down(venue: VenueHarness) -> None:
    h = venue
    t0 = h.now_ns()
    first: list[Any] = []
    gw1 = h.gateway(first.append)
    await h.connect(gw1)
    gw1.submit(resting(h, "T-7", qty=2 * h.order_qty))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(first, "T-7"), what="ack")
    broker_id = updates(first, "T-7")[0].broker_order_id
    await gw1.close()  # the daemon goes down
    down = await h.venue_fill("T-7", h.order_qty, h.resting_limit)  # nobody listens

    events: list[Any] = []
    gw2 = h.gateway(events.append)
    await h.connect(gw2)
    [rep] = [r for r in await gw2.open_orders() if r.client_order_id == "T-7"]
    assert rep.instrument_id == h.instrument_id
    assert rep.status is OrderStatus.PARTIALLY_FILLED
    assert rep.filled_quantity == pytest.approx(h.order_qty)
    assert rep.quantity == pytest.approx(2 * h.order_qty)
    status = await gw2.order_status("T-7")
    assert status is not None and status.broker_order_id == broker_id
    assert await gw2.order_status("NOPE-1") is None
    missed = [f for f in await gw2.fills_since(t0) if f.client_order_id == "T-7"]
    assert [(f.trade_id, f.price) for f in missed] == [(down, h.resting_limit)]
    assert missed[0].quantity == pytest.approx(h.order_qty)
    acct = await gw2.account()
    assert acct.positions == {h.instrument_id: pytest.approx(h.order_qty)}
    # the adopted order's next execution streams in under our client order id
    live = await h.venue_fill("T-7")
    await wait_until(lambda: live in {f.trade_id for f in fills(events, "T-7")},
                     timeout=10, what="adopted fill")
    await asyncio.sleep(0.2)
    ids = [f.trade_id for f in fills(events, "T-7")]
    assert len(ids) == len(set(ids)) and set(ids) <= {down, live}


async def test_account_report_after_a_fill(venue: VenueHarness) -> None:
    h = venue
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(market(h, "A-1"))
    await wait_until(lambda: len(fills(events, "A-1")) == 1, what="fill")
    acct = await gw.account()
    assert acct.positions == {h.instrument_id: pytest.approx(h.order_qty)}
    [pos] = acct.position_details
    assert pos.instrument_id == h.instrument_id and pos.quantity == pytest.approx(h.order_qty)
    assert acct.cash and all(math.isfinite(v) for v in acct.cash.values())
