"""MT5 habits the shared conformance suite cannot express, on the stand-in terminal.

The real mt5linux 1.0.11 client talks rpyc to ``gateways.testing.mt5_server``;
the terminal is scripted through its test controls.  Covered: a broker that
rewrites the comment (still reconciled by ticket), fills of pending orders
while the daemon was down (found from deals after a restart), the bounded
requote policy, a hedging account holding two positions on one symbol, an
SL hit the server made on its own, retcodes as rejections, the trade server's
time zone, and start-up refusals (autotrading off, wrong account mode).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateways.base import GatewayStartError
from gateways.mt5.tickets import TicketBook
from gateways.testing.harness import wait_until
from gateways.testing.mt5_harness import FAST_TIMING, NS, SERVER_OFFSET_S, Mt5Harness
from gateways.testing.venue import row
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


@pytest.fixture
async def mt5() -> AsyncIterator[Mt5Harness]:
    h = await Mt5Harness().start()
    try:
        yield h
    finally:
        await h.stop()


def fills(events: list[Any], coid: str | None = None) -> list[Fill]:
    return [e for e in events
            if isinstance(e, Fill) and (coid is None or e.client_order_id == coid)]


def statuses(events: list[Any], coid: str) -> list[OrderStatus]:
    return [e.status for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def reasons(events: list[Any], coid: str) -> list[str]:
    return [e.reason for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def order(h: Mt5Harness, coid: str, side: Side = Side.BUY, qty: float | None = None,
          kind: OrderType = OrderType.MARKET, price: float | None = None) -> OrderRequest:
    return OrderRequest(time.time_ns(), coid, h.instrument_id, side, qty or h.order_qty, kind,
                        price)


async def test_altered_comment_is_still_reconciled_by_ticket() -> None:
    h = await Mt5Harness(comment_mode="replace").start()
    try:
        events: list[Any] = []
        gw = h.gateway(events.append)
        await h.connect(gw)
        gw.submit(order(h, "P260101-COMMENT-1", kind=OrderType.LIMIT, price=1.0))
        await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "P260101-COMMENT-1"))
        st = h.state()
        [(ticket, (comment, _state))] = st["orders"].items()
        assert "COMMENT" not in comment  # the broker wrote its own
        await gw.close()
        deal = str(h.control("_fill", int(ticket), 0.05, 1.0))  # filled while down

        again: list[Any] = []
        gw2 = h.gateway(again.append)
        await h.connect(gw2)
        [rep] = await gw2.open_orders()
        assert (rep.client_order_id, rep.broker_order_id) == ("P260101-COMMENT-1", str(ticket))
        assert rep.filled_quantity == pytest.approx(0.05)
        missed = await gw2.fills_since(h.now_ns() - 3600 * NS)
        assert [(f.client_order_id, f.trade_id) for f in missed] == [("P260101-COMMENT-1", deal)]
        # the adopted order's next deal streams in under our id, though the comment is gone
        later = str(h.control("_fill", int(ticket), 0.05, 1.0))
        await wait_until(lambda: len(fills(again, "P260101-COMMENT-1")) == 1, what="deal")
        assert [f.trade_id for f in fills(again)] == [later]
        book = TicketBook(h.state_file)
        assert book.deals() == {int(deal): "P260101-COMMENT-1", int(later): "P260101-COMMENT-1"}
        book.close()
    finally:
        await h.stop()


async def test_pending_fills_while_down_are_found_from_deals_once(mt5: Mt5Harness) -> None:
    h = mt5
    first: list[Any] = []
    gw = h.gateway(first.append)
    await h.connect(gw)
    gw.submit(order(h, "D-1", kind=OrderType.LIMIT, price=1.0, qty=0.3))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(first, "D-1"))
    await gw.close()
    ticket = h.ticket_of("D-1")
    d1 = str(h.control("_fill", ticket, 0.1, 1.0))
    d2 = str(h.control("_fill", ticket, 0.2, 0.99))  # the rest: the order is done
    events: list[Any] = []
    gw2 = h.gateway(events.append)
    await h.connect(gw2)
    missed = await gw2.fills_since(h.now_ns() - 3600 * NS)
    assert [(f.client_order_id, f.trade_id, f.quantity, f.price) for f in missed] == [
        ("D-1", d1, pytest.approx(0.1), 1.0), ("D-1", d2, pytest.approx(0.2), 0.99)]
    await asyncio.sleep(0.4)  # several polls: deals made before the start are not streamed
    assert fills(events) == []  # (the daemon adopted them from fills_since: never twice)
    assert (await gw2.order_status("D-1")).status is OrderStatus.FILLED  # type: ignore[union-attr]
    assert await gw2.open_orders() == []
    assert (await gw2.account()).positions == {h.instrument_id: pytest.approx(0.3)}


async def test_requotes_are_retried_with_a_fresh_price_then_given_up(mt5: Mt5Harness) -> None:
    h = mt5
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    h.control("_script", "retcode", retcode=10004)
    gw.submit(order(h, "R-1"))
    await wait_until(lambda: len(fills(events, "R-1")) == 1, what="fill after a requote")
    assert h.submissions() == 2 and statuses(events, "R-1") == [OrderStatus.ACCEPTED]
    for _ in range(3):  # one more than requote_retries (2)
        h.control("_script", "retcode", retcode=10004)
    gw.submit(order(h, "R-2"))
    await wait_until(lambda: bool(statuses(events, "R-2")), what="rejection")
    assert statuses(events, "R-2") == [OrderStatus.REJECTED]
    assert "10004" in reasons(events, "R-2")[0] and "requote" in reasons(events, "R-2")[0]
    assert h.submissions() == 5 and fills(events, "R-2") == []


@pytest.mark.parametrize(("retcode", "text"), [
    (10018, "market is closed"), (10019, "no money"), (10027, "AutoTrading"),
    (10016, "invalid stops"), (10014, "invalid volume")])
async def test_retcodes_reject_with_the_meaning(mt5: Mt5Harness, retcode: int, text: str) -> None:
    h = mt5
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    h.control("_script", "retcode", retcode=retcode)
    gw.submit(order(h, "X-1"))
    await wait_until(lambda: bool(statuses(events, "X-1")), what="outcome")
    await asyncio.sleep(0.1)
    assert statuses(events, "X-1") == [OrderStatus.REJECTED]
    assert str(retcode) in reasons(events, "X-1")[0] and text in reasons(events, "X-1")[0]
    assert h.submissions() == 1


async def test_ipc_timeout_is_outcome_unknown_then_resolved_without_resend(
        mt5: Mt5Harness) -> None:
    h = mt5
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    h.control("_script", "ipc_timeout", placed=True)
    gw.submit(order(h, "U-1"))
    await wait_until(lambda: len(fills(events, "U-1")) == 1, what="the fill found by lookup")
    assert statuses(events, "U-1")[:2] == [OrderStatus.OUTCOME_UNKNOWN, OrderStatus.ACCEPTED]
    assert "-10005" in reasons(events, "U-1")[0]
    assert h.submissions() == 1


async def test_hedging_account_holds_two_positions_on_one_symbol() -> None:
    h = await Mt5Harness(hedging=True).start()
    try:
        events: list[Any] = []
        gw = h.gateway(events.append)
        assert gw.capabilities.hedged_positions
        await h.connect(gw)
        gw.submit(order(h, "H-1", Side.BUY, 0.2))
        await wait_until(lambda: len(fills(events, "H-1")) == 1)
        gw.submit(order(h, "H-2", Side.SELL, 0.1))
        await wait_until(lambda: len(fills(events, "H-2")) == 1)
        acct = await gw.account()
        assert acct.hedged
        assert sorted(p.quantity for p in acct.position_details) == [pytest.approx(-0.1),
                                                                     pytest.approx(0.2)]
        assert acct.positions == {h.instrument_id: pytest.approx(0.1)}
        assert acct.margin_used and acct.margin_available and acct.equity
    finally:
        await h.stop()


async def test_netting_config_on_a_hedging_account_stops_the_start() -> None:
    h = await Mt5Harness(hedging=True).start()
    try:
        gw = h.gateway(lambda _e: None, account_mode="netting")
        with pytest.raises(GatewayStartError, match="hedging account"):
            await h.connect(gw)
    finally:
        await h.stop()


async def test_autotrading_off_stops_the_start(mt5: Mt5Harness) -> None:
    mt5.control("_set", autotrading=False)
    gw = mt5.gateway(lambda _e: None)
    with pytest.raises(GatewayStartError, match="AutoTrading"):
        await mt5.connect(gw)


async def test_stop_loss_hit_by_the_server_is_a_fill(mt5: Mt5Harness) -> None:
    h = mt5
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(order(h, "S-1"))
    await wait_until(lambda: len(fills(events, "S-1")) == 1)
    [(pid, _)] = h.state()["positions"].items()
    assert await gw.set_stops(str(pid), sl=1.05, tp=1.3) is None
    assert h.control("_get", "positions")[int(pid)].sl == 1.05
    assert "no position" in (await gw.set_stops("12345", sl=1.0) or "")
    deal = h.control("_hit", int(pid), "sl")
    await wait_until(lambda: len(fills(events)) == 2, what="the SL deal")
    sl = fills(events)[1]
    assert (sl.client_order_id, sl.trade_id) == (f"mt5-sl-{deal}", str(deal))
    assert (sl.side, sl.price) == (Side.SELL, 1.05)
    assert (await gw.account()).positions == {}


async def test_bar_times_come_back_in_utc_from_the_server_zone(mt5: Mt5Harness) -> None:
    h = mt5
    h.install_history(h.instrument_id, [row(h.bar_open(k), 1.1 + k / 1000) for k in range(-3, 0)])
    state = h.control("_get", "rates")["EURUSD"]
    assert state[0][0] == h.bar_open(-3) // NS + SERVER_OFFSET_S  # the terminal shows server time
    gw = h.gateway(lambda _e: None, trading=False)
    await h.connect(gw, stream=False)
    got = await gw.warm_up_bars(3)
    assert [b.ts_open for b in got] == [h.bar_open(k) for k in range(-3, 0)]
    assert all(isinstance(b, Bar) and b.ts == b.ts_open + 60 * NS for b in got)


async def test_unreachable_terminal_names_what_to_start(mt5: Mt5Harness) -> None:
    gw = mt5.gateway(lambda _e: None, port=1)
    with pytest.raises(GatewayStartError, match="python -m mt5linux"):
        await mt5.connect(gw)


async def test_modify_a_resting_order_and_refuse_an_unknown_one(mt5: Mt5Harness) -> None:
    h = mt5
    events: list[Any] = []
    gw = h.gateway(events.append)
    await h.connect(gw)
    gw.submit(order(h, "M-1", kind=OrderType.LIMIT, price=1.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "M-1"))
    assert await gw.modify_order("M-1", price=1.01, sl=0.99) is None
    [working] = h.control("_get", "orders").values()
    assert (working.price_open, working.sl) == (1.01, 0.99)
    assert "no working order" in (await gw.modify_order("NOPE") or "")
    h.control("_script", "retcode", retcode=10016)
    assert "10016" in (await gw.modify_order("M-1", price=1.02, sl=1.5) or "")


async def test_hedging_close_by_position_ticket() -> None:
    h = await Mt5Harness(hedging=True).start()
    try:
        events: list[Any] = []
        gw = h.gateway(events.append)
        await h.connect(gw)
        gw.submit(order(h, "C-1", Side.BUY, 0.2))
        await wait_until(lambda: len(fills(events, "C-1")) == 1)
        gw.submit(order(h, "C-2", Side.BUY, 0.1))
        await wait_until(lambda: len(fills(events, "C-2")) == 1)
        first = next(p for p in (await gw.account()).position_details if p.quantity > 0.15)
        gw.close_position(order(h, "C-3", Side.SELL, 0.2), first.position_id)
        await wait_until(lambda: len(fills(events, "C-3")) == 1)
        acct = await gw.account()
        assert [(p.quantity, p.position_id) for p in acct.position_details] == [
            (pytest.approx(0.1), next(p.position_id for p in acct.position_details))]
        assert h.state()["sends"][-1]["position"] == int(first.position_id)
    finally:
        await h.stop()


async def test_terminal_outage_is_reported_then_resynced(mt5: Mt5Harness) -> None:
    h = mt5
    events: list[Any] = []
    gw = h.gateway(events.append, trading=False)
    await h.connect(gw)
    h.control("_set", down=True)  # the terminal lost its IPC link: calls fail with -10004
    await wait_until(lambda: any(e.state is HealthState.DISCONNECTED for e in health(events)))
    down = next(e for e in health(events) if e.state is HealthState.DISCONNECTED)
    assert "-10004" in down.reason
    h.control("_set", down=False)
    await wait_until(lambda: health(events)[-1].state is HealthState.RESYNCED)


@pytest.mark.parametrize(("clock", "stale"), [(1_704_068_430.0, True),  # a Monday
                                              (1_704_526_200.0, False)])  # a Saturday
async def test_stale_ticks_are_degraded_only_while_the_market_trades(
        mt5: Mt5Harness, clock: float, stale: bool) -> None:
    h = mt5
    h.control("_set", now=clock)
    events: list[Any] = []
    timing = FAST_TIMING.model_copy(update={"stale_after_s": 0.2})
    gw = h.gateway(events.append, trading=False, timing=timing)
    await h.connect(gw)
    await asyncio.sleep(0.6)  # the terminal's clock stands still: no new tick
    flagged = [e for e in health(events) if e.stream == "ticks:EURUSD"]
    assert bool(flagged) is stale
    if stale:
        assert flagged[0].state is HealthState.DEGRADED and "no tick" in flagged[0].reason


def health(events: list[Any]) -> list[GatewayHealth]:
    return [e for e in events if isinstance(e, GatewayHealth)]
