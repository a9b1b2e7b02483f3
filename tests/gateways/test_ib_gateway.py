"""IB-only scenarios: the real ib_async over loopback against the stand-in TWS.

What TWS does that other venues do not: connectivity messages 1100/1101/1102
with the socket still up, data-farm messages, the nightly restart that rolls the
order id sequence back, the commission report after the fill, execution
corrections, modify by re-placing, brackets, historical-data pacing (162).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gzip
import json
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateways.base import GatewayStartError
from gateways.ib.config import IbGatewayConfig
from gateways.ib.contracts import ContractBook
from gateways.ib.gateway import IbGateway
from gateways.testing.harness import wait_until
from gateways.testing.ib_harness import IbHarness
from gateways.testing.tws import Listing
from gateways.testing.venue import row
from trader.core.events import (
    Bar,
    Fill,
    FillCorrection,
    GatewayHealth,
    HealthState,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ib"
NS = 1_000_000_000


@pytest.fixture
async def h() -> AsyncIterator[IbHarness]:
    harness = await IbHarness().start()
    try:
        yield harness
    finally:
        await harness.stop()


def fills(events: list[Any], coid: str | None = None) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill) and coid in (None, e.client_order_id)]


def statuses(events: list[Any], coid: str) -> list[OrderStatus]:
    return [e.status for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def health(events: list[Any]) -> list[GatewayHealth]:
    return [e for e in events if isinstance(e, GatewayHealth)]


def limit(h: IbHarness, coid: str, qty: float = 10.0, price: float | None = None) -> OrderRequest:
    return OrderRequest(time.time_ns(), coid, h.instrument_id, Side.BUY, qty, OrderType.LIMIT,
                        price or h.resting_limit)


def market(h: IbHarness, coid: str, qty: float = 10.0) -> OrderRequest:
    return OrderRequest(time.time_ns(), coid, h.instrument_id, Side.BUY, qty)


async def trading(h: IbHarness, events: list[Any], **overrides: Any) -> Any:
    gw = h.gateway(events.append, **overrides)
    await h.connect(gw, stream=False)
    return gw


# -- connectivity ---------------------------------------------------------------------
async def test_fill_during_a_1100_gap_is_recovered_after_1102(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    gw.submit(limit(h, "G-1"))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "G-1"), what="ack")
    await h.tws.connectivity_lost()
    await wait_until(lambda: any(e.state is HealthState.DISCONNECTED for e in health(events)),
                     what="1100 reported")
    gap = await h.venue_fill("G-1")  # TWS is cut off from IB: nobody hears of it
    await asyncio.sleep(0.2)
    assert fills(events) == []  # nothing flowed during the gap
    await h.tws.connectivity_restored(data_lost=False)
    await wait_until(lambda: len(fills(events, "G-1")) == 1, what="fill pulled after 1102")
    await asyncio.sleep(0.2)
    assert [f.trade_id for f in fills(events)] == [gap]
    states = [e.state for e in health(events)]
    assert states.index(HealthState.DISCONNECTED) < states.index(HealthState.RESYNCED)
    assert "1100" in health(events)[states.index(HealthState.DISCONNECTED)].reason
    assert gw.session == 1  # the socket never dropped: same session


async def test_1101_data_lost_renews_the_bar_subscription(h: IbHarness) -> None:
    h.install_history(h.instrument_id, [row(h.bar_open(k - 3), 100.0 + k) for k in range(3)])
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw)
    requests_before = sum(1 for m in h.tws.requests if m[0] == "20")
    await h.tws.connectivity_lost()
    await h.tws.connectivity_restored(data_lost=True)  # TWS forgot every subscription
    await wait_until(lambda: sum(1 for m in h.tws.requests if m[0] == "20") > requests_before
                     and any(c.bar_subs for c in h.tws.conns), what="resubscribed")
    bar = row(h.bar_open(0), 105.0)
    await h.publish_bar(h.instrument_id, bar)
    await wait_until(lambda: any(isinstance(e, Bar) for e in events), what="bar after 1101")
    got = [e for e in events if isinstance(e, Bar)]
    assert [(b.ts_open, b.close) for b in got] == [(bar[0], bar[4])]


async def test_data_farm_down_is_degraded_until_it_is_back(h: IbHarness) -> None:
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw)
    await h.tws.broadcast_error(2103, "Market data farm connection is broken:usfarm")
    await h.tws.broadcast_error(2104, "Market data farm connection is OK:usfarm")
    await wait_until(lambda: any(e.state is HealthState.RESYNCED for e in health(events)),
                     what="farm back")
    farm = [e for e in health(events) if e.stream == "bars"]
    assert [e.state for e in farm] == [HealthState.DEGRADED, HealthState.RESYNCED]
    assert "2103" in farm[0].reason and "usfarm" in farm[0].reason


async def test_restart_with_order_id_rollback_does_not_cross_attribute(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    gw.submit(limit(h, "R-1"))  # stays open across the restart
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "R-1"), what="ack")
    for k in range(4):  # filled before the restart, with higher ids than the open one
        gw.submit(market(h, f"R-0{k}", qty=2.0))
    await wait_until(lambda: len(fills(events)) == 4, what="fills before")
    old, done = h.tws.order_by_ref("R-1"), h.tws.order_by_ref("R-03")
    await h.tws.restart(next_order_id=1)  # IB Gateway's nightly restart: ids start over
    await wait_until(lambda: gw.session == 2 and any(
        e.state is HealthState.RESYNCED for e in health(events)), timeout=10, what="reconnect")
    # enough new orders that a rolled-back sequence (1, 2, ...) would reach the old ids
    news = [f"R-{k}" for k in range(2, 2 + done.order_id + 2)]
    for coid in news:
        gw.submit(limit(h, coid, qty=3.0, price=45.0))
    await wait_until(lambda: all(statuses(events, c) for c in news), what="new outcomes")
    assert all(statuses(events, c) == [OrderStatus.ACCEPTED] for c in news)  # no 103
    # no new order reused an old id (TWS reads a live one's id as a modify of it)
    assert {h.tws.order_by_ref(c).order_id for c in news}.isdisjoint(
        {o.order_id for o in h.tws.orders if o.order_ref in ("R-1", "R-00", "R-01", "R-02",
                                                             "R-03")})
    assert (old.quantity, old.lmt) == (10.0, h.resting_limit)
    first = await h.venue_fill("R-1")
    second = await h.venue_fill("R-2")
    await wait_until(lambda: len(fills(events)) == 6, what="both fills")
    assert {(f.client_order_id, f.trade_id, f.quantity) for f in fills(events)[4:]} == {
        ("R-1", first, 10.0), ("R-2", second, 3.0)}


async def test_client_id_in_use_stops_the_start_with_the_id(h: IbHarness) -> None:
    first = await trading(h, [])
    assert first.session == 1
    timing = h.config((h.instrument_id,)).timing.model_copy(update={"connect_attempts": 2})
    second = h.gateway(lambda _e: None, timing=timing)
    with pytest.raises(GatewayStartError, match="clientId 7"):
        await second.connect(stream=False)


# -- orders -----------------------------------------------------------------------------
async def test_commission_with_the_execution_is_in_the_fill(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    gw.submit(market(h, "C-1"))
    await wait_until(lambda: len(fills(events, "C-1")) == 1, what="fill")
    await asyncio.sleep(0.1)
    assert fills(events)[0].commission == pytest.approx(1.0)
    assert not [e for e in events if isinstance(e, FillCorrection)]


async def test_commission_a_moment_after_the_execution_still_rides_in_the_fill(
        h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    h.tws.commission_delay_s = 0.03  # a later socket read, within the gateway's short wait
    gw.submit(market(h, "C-3"))
    await wait_until(lambda: len(fills(events, "C-3")) == 1, what="fill")
    await asyncio.sleep(0.1)
    assert fills(events)[0].commission == pytest.approx(1.0)
    assert not [e for e in events if isinstance(e, FillCorrection)]


async def test_commission_after_the_fill_is_a_fill_correction(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    h.tws.hold_commissions = True
    gw.submit(market(h, "C-2"))
    await wait_until(lambda: len(fills(events, "C-2")) == 1, what="fill")
    await asyncio.sleep(0.1)
    [fill] = fills(events)
    assert fill.commission == 0.0
    await h.tws.release_commissions()
    await wait_until(lambda: any(isinstance(e, FillCorrection) for e in events),
                     what="late commission")
    [fix] = [e for e in events if isinstance(e, FillCorrection)]
    assert (fix.trade_id, fix.client_order_id, fix.commission) == (fill.trade_id, "C-2", 1.0)
    assert fix.price is None and fix.quantity is None
    assert events.index(fill) < events.index(fix)


async def test_execution_correction_is_not_a_second_fill(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    gw.submit(limit(h, "X-1"))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "X-1"), what="ack")
    original = await h.venue_fill("X-1", price=49.5)
    await wait_until(lambda: len(fills(events)) == 1, what="fill")
    revised = await h.tws.correct_execution(original, 49.25)
    await wait_until(lambda: any(isinstance(e, FillCorrection) and e.price is not None
                                 for e in events), what="correction")
    assert revised != original and revised.startswith(original.rsplit(".", 1)[0])
    assert len(fills(events)) == 1
    [fix] = [e for e in events if isinstance(e, FillCorrection) and e.price is not None]
    assert (fix.trade_id, fix.price) == (original, 49.25)


async def test_modify_replaces_the_working_order_in_place(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    gw.submit(limit(h, "M-1"))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "M-1"), what="ack")
    assert gw.modify("M-1", limit_price=48.0, quantity=12.0)
    await wait_until(lambda: h.tws.order_by_ref("M-1").lmt == 48.0, what="modified")
    venue = [o for o in h.tws.orders if o.order_ref == "M-1"]
    assert len(venue) == 1 and venue[0].quantity == 12.0  # one order, changed, not a second
    assert len(h.tws.placed) == 2 and h.tws.placed[0][1] == h.tws.placed[1][1]  # same orderId
    assert statuses(events, "M-1") == [OrderStatus.ACCEPTED]
    assert not gw.modify("NOPE", limit_price=1.0)


async def test_bracket_exits_wait_for_the_entry_and_cancel_each_other(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    entry = OrderRequest(time.time_ns(), "B-1", h.instrument_id, Side.BUY, 10.0,
                         OrderType.LIMIT, 49.0)
    coid, tp, sl = gw.submit_bracket(entry, take_profit=60.0, stop_loss=40.0)
    await wait_until(lambda: all(OrderStatus.ACCEPTED in statuses(events, c)
                                 for c in (coid, tp, sl)), what="three acks")
    parent = h.tws.order_by_ref(coid)
    legs = [h.tws.order_by_ref(c) for c in (tp, sl)]
    assert all(o.parent_id == parent.order_id and o.action == "SELL" for o in legs)
    assert legs[0].oca_group == legs[1].oca_group != ""
    assert [o.status for o in legs] == ["PreSubmitted", "PreSubmitted"]  # wait for the entry
    await h.venue_fill(coid)
    await wait_until(lambda: h.tws.order_by_ref(tp).status == "Submitted", what="exits live")
    await h.venue_fill(tp)
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, sl), what="OCA cancel")
    assert [f.client_order_id for f in fills(events)] == [coid, tp]
    assert OrderStatus.CANCELED not in statuses(events, tp)


async def test_reject_keeps_the_ib_code_and_text(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    gw.submit(market(h, "E-1", qty=h.unaffordable_qty))
    await wait_until(lambda: bool(statuses(events, "E-1")), what="reject")
    [upd] = [e for e in events if isinstance(e, OrderUpdate)]
    assert upd.status is OrderStatus.REJECTED
    assert upd.reason.startswith("IB 201 (order rejected):") and "EQUITY WITH LOAN" in upd.reason


async def test_cancel_reports_the_cancel_once(h: IbHarness) -> None:
    events: list[Any] = []
    gw = await trading(h, events)
    gw.submit(limit(h, "K-1"))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "K-1"), what="ack")
    gw.cancel("K-1")
    gw.cancel("K-1")  # a second cancel of a cancelled order: IB says 10147, no second event
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, "K-1"), what="cancel")
    await asyncio.sleep(0.2)
    assert statuses(events, "K-1") == [OrderStatus.ACCEPTED, OrderStatus.CANCELED]


# -- market data --------------------------------------------------------------------------
async def test_history_pages_within_pacing_and_backs_off_after_162(h: IbHarness) -> None:
    series = [row(h.bar_open(k - 30), 100.0 + k / 10) for k in range(30)]
    h.install_history(h.instrument_id, series)
    gw = h.gateway(lambda _e: None, trading=False, history_bars_per_request=8)
    await h.connect(gw, stream=False)
    h.tws.pacing_violations = 2  # another program on the login used up the budget
    hist = await gw.history(h.instrument_id, h.bar_open(-30), h.bar_open(0))
    assert [b.ts_open for b in hist.bars] == [r[0] for r in series]
    assert hist.complete and hist.expected == 30
    sent = [m for m in h.tws.requests if m[0] == "20"]
    assert len(sent) == 4 + 2  # four pages of at most 8 bars, two refused with 162
    assert gw.pacer.violations == 2 and gw.stats.pacing_violations == 2


async def test_recorded_ib_bars_round_trip_with_honest_gaps(h: IbHarness) -> None:
    """nautilus' recorded reqHistoricalData answer (sparse one-minute bars, New York time)."""
    eastern = ZoneInfo("America/New_York")
    rows = []
    with gzip.open(FIXTURES / "bars.json.gz", "rt") as f:
        for line in f:
            b = json.loads(line)
            t = dt.datetime.fromisoformat(b["date"]).replace(tzinfo=eastern)
            rows.append((int(t.timestamp()) * NS, b["open"], b["high"], b["low"], b["close"],
                         b["volume"]))
    h.install_history(h.instrument_id, rows)
    h.set_now(rows[-1][0] + 3600 * NS)
    gw = h.gateway(lambda _e: None, trading=False)
    await h.connect(gw, stream=False)
    start, end = rows[0][0], rows[-1][0] + 60 * NS
    hist = await gw.history(h.instrument_id, start, end)
    assert [(b.ts_open, b.open, b.high, b.low, b.close, b.volume) for b in hist.bars] == rows
    assert all(b.ts == b.ts_open + 60 * NS for b in hist.bars)
    assert hist.expected == (end - start) // (60 * NS) and hist.missing == hist.expected - 405


async def test_front_month_future_is_qualified_by_the_roll_rule() -> None:
    today = ContractBook.today()
    near, far = ((today + dt.timedelta(days=d)).strftime("%Y%m%d") for d in (10, 100))
    futures = [Listing(495512551, "ES", "FUT", "CME", "", "USD", near, "50", 0.25),
               Listing(551601561, "ES", "FUT", "CME", "", "USD", far, "50", 0.25),
               Listing(265598, "AAPL")]
    h = await IbHarness(futures).start()
    try:
        picked = []
        for roll_days in (5, 15):  # 10 days to the near expiry: kept, then rolled
            cfg = h.config((h.instrument_id,), trading=False).model_dump()
            cfg["contracts"] = {"ES": {"symbol": "ES", "sec_type": "FUT", "exchange": "CME",
                                       "expiry": "front", "roll_days": roll_days}}
            gw = IbGateway(IbGatewayConfig(**cfg))
            gw.bind(lambda _e: None)
            h.gateways.append(gw)
            await gw.connect(stream=False)
            c = gw.book.contract("ES")
            picked.append((c.lastTradeDateOrContractMonth, c.conId))
            assert gw.book.by_instrument["ES"].min_tick == 0.25
            await gw.close()
        assert picked == [(near, 495512551), (far, 551601561)]
    finally:
        await h.stop()
