"""Orders under the venues' real habits: 429 + Retry-After, 418 bans / Kraken lockout,
"execution status unknown" codes, truncated 200 bodies, and the bound on unknown outcomes.

Every scenario drives the real ccxt client against the loopback stand-ins
(``gateways.testing``); long waits (an 8 s ban, a Retry-After) run on a fake
clock shared by the gateway's limiter and the stand-in's ban.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from gateways.ccxt import CcxtTiming
from gateways.ccxt.limits import VenueLimits
from gateways.testing.clock import ManualClock
from gateways.testing.harness import FAST_TIMING, CcxtHarness, wait_until
from gateways.testing.standin import Fault
from trader.core.events import (
    Fill,
    GatewayHealth,
    HealthState,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)


def order(coid: str, inst: str, qty: float = 0.01, limit: float | None = None) -> OrderRequest:
    kind = OrderType.LIMIT if limit is not None else OrderType.MARKET
    return OrderRequest(time.time_ns(), coid, inst, Side.BUY, qty, kind, limit)


def updates(events: list[Any], coid: str) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate) and e.client_order_id == coid]


def statuses(events: list[Any], coid: str) -> list[OrderStatus]:
    return [u.status for u in updates(events, coid)]


def fills(events: list[Any], coid: str) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill) and e.client_order_id == coid]


def health(events: list[Any]) -> list[GatewayHealth]:
    return [e for e in events if isinstance(e, GatewayHealth)]


async def test_429_retry_after_is_honoured_before_anything_else_is_sent(
        harness: CcxtHarness) -> None:
    h = harness
    clock = ManualClock()
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False,
                   limits=VenueLimits(rate_limit_pause_s=3.0))
    gw.limiter.use_clock(clock, clock.sleep)
    await gw.connect()
    h.script_submit(Fault("rate_limit", retry_after=3.0))
    gw.submit(order("R-1", h.instrument_id))
    await wait_until(lambda: gw.limiter.stats.rate_limited == 1, what="the 429")
    seen = len(h.standin.requests)
    await asyncio.sleep(0.4)  # Retry-After (3 s on the fake clock) has not passed
    assert len(h.standin.requests) == seen, "a request was sent inside Retry-After"
    assert gw.limiter.stats.paused and not gw.limiter.banned
    clock.advance(3.0)
    await wait_until(lambda: len(fills(events, "R-1")) == 1, what="fill after Retry-After")
    assert len(h.creates()) == 2 and len(h.standin.orders) == 1


async def test_429_on_submit_and_on_its_lookup_still_ends_in_an_outcome(
        harness: CcxtHarness) -> None:
    h = harness
    clock = ManualClock(auto=True)  # virtual time: every Retry-After passes at once
    events: list[Any] = []
    gw = h.gateway(events.append)  # streams, so no REST poller races for the lookup
    gw.limiter.use_clock(clock, clock.sleep)
    await gw.connect()
    await h.wait_private_ws(gw)
    h.script_submit(Fault("rate_limit", retry_after=2.0))
    for endpoint in h.lookup_endpoints:
        h.standin.script(endpoint, Fault("rate_limit", retry_after=2.0))
    gw.submit(order("R-2", h.instrument_id))
    await wait_until(lambda: any(s.is_terminal for s in statuses(events, "R-2")), timeout=8,
                     what="an outcome")
    got = statuses(events, "R-2")
    assert got[0] is OrderStatus.OUTCOME_UNKNOWN
    assert got[-1] is OrderStatus.REJECTED and "not re-sent" in updates(events, "R-2")[-1].reason
    assert len(h.creates()) == 1 and h.standin.orders == {}
    assert gw.resolver.pending == []


async def test_ban_pauses_every_request_refuses_orders_and_queues_cancels(
        harness: CcxtHarness) -> None:
    h = harness
    clock = ManualClock()
    h.standin.ban_clock = clock
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False, limits=VenueLimits(ban_pause_s=8.0))
    gw.limiter.use_clock(clock, clock.sleep)
    await gw.connect()
    gw.submit(order("B-0", h.instrument_id, limit=40_000.0))
    await wait_until(lambda: OrderStatus.ACCEPTED in statuses(events, "B-0"), what="resting")
    h.script_submit(Fault("ban", delay=8.0))
    gw.submit(order("B-1", h.instrument_id))
    await wait_until(lambda: gw.limiter.banned, what="the ban")
    await wait_until(lambda: OrderStatus.OUTCOME_UNKNOWN in statuses(events, "B-1"),
                     what="the banned submit's outcome unknown")
    assert any(e.state is HealthState.DEGRADED and "ban" in e.reason for e in health(events))
    assert gw.limiter.stats.bans == 1
    refused_before = h.standin.refused_in_ban
    sent = len(h.standin.requests)
    gw.submit(order("B-2", h.instrument_id))  # a new order during the ban
    [upd] = updates(events, "B-2")
    assert upd.status is OrderStatus.REJECTED and upd.reason.startswith("venue ban until ")
    gw.cancel("B-0")  # queued behind the ban
    await asyncio.sleep(0.6)  # the old gateway sent again 0.6 s into the ban
    assert len(h.standin.requests) == sent, "a request was sent during the ban"
    assert h.standin.refused_in_ban == refused_before
    assert gw.limiter.stats.banned and gw.limiter.stats.until_utc
    clock.advance(8.0)
    await wait_until(lambda: OrderStatus.CANCELED in statuses(events, "B-0"), what="cancel")
    await wait_until(lambda: OrderStatus.REJECTED in statuses(events, "B-1"),
                     what="the banned submit settled by our id")
    assert any(e.state is HealthState.RESYNCED for e in health(events))
    assert h.standin.refused_in_ban == refused_before  # nothing hit the ban after the first
    assert [h.client_id_param(r) for r in h.creates()] == ["B-0", "B-1"]  # B-1 not re-sent
    assert not gw.limiter.stats.paused


@pytest.mark.parametrize("code", [-1006, -1000])
async def test_binance_execution_status_unknown_not_placed(binance: CcxtHarness,
                                                           code: int) -> None:
    h = binance
    events: list[Any] = []
    gw = h.gateway(events.append)
    await gw.connect()
    await h.wait_private_ws(gw)
    h.script_submit(Fault("error_before", code=code))
    gw.submit(order("E-1", h.instrument_id))
    await wait_until(lambda: any(s.is_terminal for s in statuses(events, "E-1")), timeout=5,
                     what="an outcome")
    got = statuses(events, "E-1")
    assert got == [OrderStatus.OUTCOME_UNKNOWN, OrderStatus.REJECTED]
    assert len(h.creates()) == 1 and h.standin.orders == {}


@pytest.mark.parametrize("placed", [True, False])
async def test_truncated_200_is_never_a_ghost_ack(harness: CcxtHarness, placed: bool) -> None:
    h = harness
    events: list[Any] = []
    gw = h.gateway(events.append, use_websocket=False)
    await gw.connect()
    h.script_submit(Fault("truncated_after" if placed else "truncated_before"))
    gw.submit(order("J-1", h.instrument_id))
    final = OrderStatus.ACCEPTED if placed else OrderStatus.REJECTED
    await wait_until(lambda: final in statuses(events, "J-1"), timeout=5, what="resolution")
    if placed:
        await wait_until(lambda: len(fills(events, "J-1")) == 1, what="the fill")
    await asyncio.sleep(0.2)
    ups = updates(events, "J-1")
    assert ups[0].status is OrderStatus.OUTCOME_UNKNOWN
    assert all(u.broker_order_id for u in ups if u.status is OrderStatus.ACCEPTED)
    if placed:
        [o] = h.standin.orders.values()
        assert [u.broker_order_id for u in ups if u.status is OrderStatus.ACCEPTED] == [o.order_id]
    assert len(h.creates()) == 1
    assert gw.limiter.stats.truncated == 1


async def test_unknown_outcome_is_marked_lost_after_the_bound(harness: CcxtHarness) -> None:
    h = harness
    events: list[Any] = []
    timing = CcxtTiming(**(FAST_TIMING.model_dump() | {"unknown_order_timeout_s": 0.6}))
    gw = h.gateway(events.append, use_websocket=False, timing=timing)
    await gw.connect()
    h.script_submit(Fault("error_after"))
    for endpoint in h.lookup_endpoints:  # the venue never answers a lookup
        h.standin.script(endpoint, Fault("error", code=-1000, message="EGeneral:Internal error"),
                         times=1000)
    gw.submit(order("L-1", h.instrument_id))
    await wait_until(lambda: OrderStatus.EXPIRED in statuses(events, "L-1"), timeout=5,
                     what="lost")
    last = updates(events, "L-1")[-1]
    assert last.reason.startswith("lost: outcome unknown after 0.6 s")
    assert any(e.state is HealthState.DEGRADED and "L-1" in e.reason for e in health(events))
    assert len(h.creates()) == 1 and gw.resolver.pending == []
    assert gw.stats.lost_orders == 1 and gw.resolver.stats.lost == 1
