"""The gateway protocol outside the venue suite: sim, replay-as-live, router, horizon, history."""

from __future__ import annotations

import asyncio

import pytest

from gateways import registry
from gateways.base import (
    DAY_NS,
    AccountReport,
    Gateway,
    GatewayCapabilities,
    GatewayContext,
    History,
    MarketData,
    PositionReport,
    check_horizon,
    expected_bars,
)
from gateways.replay_live import ReplayLiveGateway
from gateways.sim import SimulatedGateway
from trader.core.clock import ReplayClock
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
from trader.core.instruments import AssetClass, Instrument
from trader.engine.orders import TRANSITIONS, check_transition
from trader.engine.router import Router

NS = 1_000_000_000
H = 3600


def hbar(i: int, close: float = 100.0, inst: str = "BTC") -> Bar:
    return Bar((i + 1) * H * NS, inst, H, i * H * NS, close, close + 1, close - 1, close, 1.0)


def sim() -> SimulatedGateway:
    inst = Instrument(id="BTC", symbol="BTC/USD", venue="X", asset_class=AssetClass.CRYPTO,
                      lot_step=0.001, min_quantity=0.001)
    gw = registry.build("sim", {}, GatewayContext({"BTC": inst}, "USD", 10_000.0,
                                                 base_timeframes={"BTC": H}))
    assert isinstance(gw, SimulatedGateway)
    return gw


async def test_sim_declares_capabilities_and_reports_an_account() -> None:
    gw = sim()
    events: list = []
    gw.bind(events.append)
    assert isinstance(gw, Gateway) and not isinstance(gw, MarketData)
    caps = gw.capabilities
    assert isinstance(caps, GatewayCapabilities) and OrderType.STOP in caps.order_types
    assert caps.fills_lookback_ns is None and check_horizon(caps, 0, 10**19) is None
    gw.on_bar(hbar(0))
    gw.submit(OrderRequest(hbar(0).ts, "S-1", "BTC", Side.BUY, 1.0))
    gw.on_bar(hbar(1, 100.0))
    gw.submit(OrderRequest(hbar(1).ts, "S-2", "BTC", Side.BUY, 1.0))
    gw.on_bar(hbar(2, 110.0))
    acct = await gw.account()
    assert acct.positions == {"BTC": 2.0}
    assert acct.avg_prices == {"BTC": pytest.approx(105.0)}
    assert acct.position_details == (PositionReport("BTC", 2.0, pytest.approx(105.0)),)
    assert acct.buying_power == pytest.approx(10_000.0 - 210.0) and not acct.hedged


def test_account_report_defaults_and_hedged_positions() -> None:
    assert AccountReport() == AccountReport({}, {})  # the old two-field form still works
    hedged = AccountReport(positions={"EURUSD": 0.5}, position_details=(
        PositionReport("EURUSD", 1.0, 1.10, "p1"), PositionReport("EURUSD", -0.5, 1.12, "p2")))
    assert hedged.hedged


def test_check_horizon() -> None:
    caps = GatewayCapabilities(fills_lookback_ns=7 * DAY_NS)
    now = 100 * DAY_NS
    assert check_horizon(caps, now - 6 * DAY_NS, now) is None
    assert check_horizon(caps, None, now) is None  # nothing known: nothing to recover
    why = check_horizon(caps, now - 30 * DAY_NS, now)
    assert why is not None and "30.0 days" in why and "7.0 days" in why


def test_history_counts_intervals_on_the_bar_grid() -> None:
    assert expected_bars(0, 10 * H * NS, H) == 10
    assert expected_bars(1, 10 * H * NS, H) == 9  # the first full interval starts at 1 h
    assert expected_bars(0, 10 * H * NS + 1, H) == 11
    hist = History("BTC", [hbar(i) for i in range(8)], 0, 10 * H * NS, 10)
    assert (hist.missing, hist.complete) == (2, False)


def test_outcome_unknown_is_open_and_may_go_anywhere_later() -> None:
    assert not OrderStatus.OUTCOME_UNKNOWN.is_terminal
    for start in (OrderStatus.PENDING_SUBMIT, OrderStatus.SUBMITTED):
        assert check_transition(start, OrderStatus.OUTCOME_UNKNOWN)
    later = {OrderStatus.ACCEPTED, OrderStatus.PARTIALLY_FILLED, OrderStatus.FILLED,
             OrderStatus.CANCELED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
    assert TRANSITIONS[OrderStatus.OUTCOME_UNKNOWN] == later


class Silent:
    """A gateway that sends nothing (the router's view of a lost answer)."""

    name = "x"
    capabilities = GatewayCapabilities()

    def submit(self, order: OrderRequest) -> None:
        return None

    def cancel(self, client_order_id: str) -> None:
        return None


def test_router_takes_an_unknown_outcome_then_the_venue_answer() -> None:
    router = Router({"x": Silent()}, ReplayClock(0))  # type: ignore[dict-item]
    req = OrderRequest(1, router.next_client_order_id(), "BTC", Side.BUY, 1.0, gateway="x")
    order = router.submit(req)
    assert order is not None
    coid = req.client_order_id
    router.on_update(OrderUpdate(2, coid, OrderStatus.OUTCOME_UNKNOWN, "answer lost"))
    assert order.status is OrderStatus.OUTCOME_UNKNOWN and coid in router.active
    router.on_fill(Fill(3, coid, "t1", "BTC", Side.BUY, 1.0, 100.0))
    assert order.status is OrderStatus.FILLED and router.illegal_transitions == 0


def test_fill_correction_and_health_pass_through_the_kernel_without_subscribers() -> None:
    from trader.core.kernel import Kernel

    kernel = Kernel(ReplayClock(0))
    seen: list = []
    kernel.consumers.append(seen.append)
    events = [FillCorrection(5, "t1", "O-1", commission=0.25),
              GatewayHealth(6, "gw", HealthState.DEGRADED, "bad bar")]
    assert kernel.run(events) == 2 and seen == events


async def test_replay_live_reports_feed_end_and_failure_in_event_time() -> None:
    out: list = []
    gw = ReplayLiveGateway([hbar(0), hbar(1)], speed=None)
    gw.bind(out.append)
    await gw.stream()
    [end] = [e for e in out if isinstance(e, GatewayHealth)]
    assert (end.state, end.reason, end.ts) == (HealthState.DISCONNECTED, "feed ended",
                                                hbar(1).ts)

    def broken():
        yield hbar(0)
        raise ValueError("row 2: NaN value")

    out.clear()
    gw = ReplayLiveGateway(broken(), speed=None, name="feed")
    gw.bind(out.append)
    await gw.stream()
    assert gw.finished.is_set() and gw.failed is not None
    [fail] = [e for e in out if isinstance(e, GatewayHealth)]
    assert fail.state is HealthState.DISCONNECTED and "NaN value" in fail.reason


async def test_replay_live_guards_its_bars() -> None:
    out: list = []
    bad = Bar(2 * H * NS, "BTC", H, H * NS, 1.0, 0.5, 2.0, 1.0, 1.0)  # high < low
    gw = ReplayLiveGateway([hbar(0), bad, hbar(2)], speed=None)
    gw.bind(out.append)
    await gw.stream()
    assert [b for b in out if isinstance(b, Bar)] == [hbar(0), hbar(2)]
    assert any(isinstance(e, GatewayHealth) and e.state is HealthState.DEGRADED for e in out)
    await asyncio.sleep(0)
