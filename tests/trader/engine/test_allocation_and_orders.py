"""Allocator sizing and netting, planner rounding and minimums, router bookkeeping."""

from __future__ import annotations

import pytest

from gateways.sim import SimulatedGateway
from trader.core.clock import ReplayClock
from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderUpdate, Side
from trader.core.instruments import AssetClass, Instrument
from trader.engine.allocator import Allocator
from trader.engine.orders import IllegalTransition, check_transition
from trader.engine.planner import Planner, plan_quantity, to_request
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router

SPY = Instrument(id="SPY", symbol="SPY", venue="ARCA", asset_class=AssetClass.EQUITY,
                 lot_step=1, min_quantity=1)
BTC = Instrument(id="BTC", symbol="BTC/USD", venue="CB", asset_class=AssetClass.CRYPTO,
                 lot_step=0.001, min_quantity=0.002, min_notional=10)
INSTRUMENTS = {"SPY": SPY, "BTC": BTC}


def portfolio(cash: float = 100_000.0) -> Portfolio:
    pf = Portfolio(INSTRUMENTS, cash)
    pf.on_bar(Bar(1, "SPY", 86400, 0, 100, 100, 100, 100, 1))
    pf.on_bar(Bar(1, "BTC", 86400, 0, 20_000, 20_000, 20_000, 20_000, 1))
    return pf


def test_budgets_over_one_are_refused() -> None:
    with pytest.raises(ValueError, match="exceeds 1"):
        Allocator(portfolio(), {"a": 0.7, "b": 0.4})


def test_weights_times_budget_times_nav_net_across_models() -> None:
    pf = portfolio()
    alloc = Allocator(pf, {"a": 0.5, "b": 0.3})
    assert alloc.set_weights("a", {"SPY": 1.0}) == ["SPY"]
    assert alloc.set_weights("b", {"SPY": -0.5}) == ["SPY"]
    assert alloc.targets["a"]["SPY"] == pytest.approx(500.0)
    assert alloc.targets["b"]["SPY"] == pytest.approx(-150.0)
    assert alloc.net_target("SPY") == pytest.approx(350.0)
    assert alloc.set_weights("a", {"SPY": 1.0}) == []  # same view: nothing to do
    alloc.rescale(0.5)
    assert alloc.net_target("SPY") == pytest.approx(175.0)


def test_plan_quantity_rounds_to_lots_and_skips_below_minimums() -> None:
    p = plan_quantity(10.9, 3.0, 2.0, SPY, 100.0)
    assert p.quantity == 5.0 and not p.reduce_only  # 10.9 - 3 - 2 = 5.9 -> 5 lots
    assert plan_quantity(5.5, 5.0, 0.0, SPY, 100.0) is None  # below one lot
    assert plan_quantity(0.0019, 0.0, 0.0, BTC, 20_000.0) is None  # below min quantity
    assert plan_quantity(0.0049, 0.0, 0.0, BTC, 1_000.0) is None  # notional 4 < 10
    assert plan_quantity(0.0049, 0.0, 0.0, BTC, 20_000.0).quantity == pytest.approx(0.004)
    sell = plan_quantity(0.0, 7.0, 0.0, SPY, 100.0)
    assert sell.quantity == -7.0 and sell.reduce_only
    flip = plan_quantity(-3.0, 7.0, 0.0, SPY, 100.0)
    assert flip.quantity == -10.0 and not flip.reduce_only
    assert plan_quantity(100.0, 0.0, 0.0, SPY, 100.0, min_trade_value=20_000.0) is None


def test_planner_counts_working_orders() -> None:
    pf = portfolio()
    alloc = Allocator(pf, {"a": 0.5})
    alloc.set_weights("a", {"SPY": 1.0})
    working = {"SPY": 200.0}
    planner = Planner(alloc, pf, lambda i: working.get(i, 0.0), INSTRUMENTS)
    (p,) = planner.plan(["SPY"])
    assert p.quantity == 300.0
    working["SPY"] = 500.0
    assert planner.plan(["SPY"]) == []


def make_router() -> tuple[Router, SimulatedGateway, list]:
    events: list = []
    sim = SimulatedGateway(INSTRUMENTS)
    router = Router({"sim": sim}, ReplayClock(), id_prefix="t")
    sim.bind(lambda e: (events.append(e), router.on_update(e) if isinstance(e, OrderUpdate)
                        else router.on_fill(e)))
    return router, sim, events


def test_router_tracks_open_quantity_and_dedupes_fills() -> None:
    router, sim, events = make_router()
    coid = router.next_client_order_id()
    assert coid == "t-1"
    order = router.submit(OrderRequest(1, coid, "SPY", Side.BUY, 10.0))
    assert order.status is OrderStatus.ACCEPTED
    assert router.open_quantity("SPY") == 10.0
    fill = Fill(5, coid, "x-1", "SPY", Side.BUY, 4.0, 100.0)
    router.on_fill(fill)
    router.on_fill(fill)  # reported twice by the venue
    assert order.filled_quantity == 4.0 and order.status is OrderStatus.PARTIALLY_FILLED
    assert router.open_quantity("SPY") == 6.0
    router.on_fill(Fill(6, coid, "x-2", "SPY", Side.BUY, 6.0, 102.0))
    assert order.status is OrderStatus.FILLED and order.avg_fill_price == pytest.approx(101.2)
    assert router.open_quantity("SPY") == 0.0 and coid not in router.active
    assert router.order(coid) is order
    # Nothing works there any more: the risk check's walk over working quantities
    # does not visit the instrument again.
    assert router.open_quantities == {}


def test_router_releases_open_quantity_on_reject_and_cancel() -> None:
    router, sim, events = make_router()
    bad = router.submit(OrderRequest(1, router.next_client_order_id(), "SPY", Side.BUY, 1.5))
    assert bad.status is OrderStatus.REJECTED and "lot step" in bad.reason
    assert router.open_quantity("SPY") == 0.0
    req = to_request(plan_quantity(-0.0, 5.0, 0.0, SPY, 100.0), router.next_client_order_id(), 2)
    o = router.submit(req)
    assert router.open_quantity("SPY") == -5.0
    router.cancel(o.client_order_id)
    assert o.status is OrderStatus.CANCELED and router.open_quantity("SPY") == 0.0
    assert router.open_quantities == {}


def test_open_quantities_hold_only_instruments_with_orders_working() -> None:
    router, sim, events = make_router()
    buy = router.submit(OrderRequest(1, router.next_client_order_id(), "SPY", Side.BUY, 10.0))
    sell = router.submit(OrderRequest(1, router.next_client_order_id(), "SPY", Side.SELL, 4.0))
    assert router.open_quantities == {"SPY": 6.0}
    router.cancel(buy.client_order_id)
    assert router.open_quantities == {"SPY": -4.0}  # the sell still works
    router.on_fill(Fill(2, sell.client_order_id, "x-1", "SPY", Side.SELL, 1.0, 100.0))
    assert router.open_quantities == {"SPY": -3.0}
    router.on_fill(Fill(3, sell.client_order_id, "x-2", "SPY", Side.SELL, 3.0, 100.0))
    assert router.open_quantities == {}


def test_order_state_machine() -> None:
    assert check_transition(OrderStatus.SUBMITTED, OrderStatus.ACCEPTED)
    assert not check_transition(OrderStatus.ACCEPTED, OrderStatus.ACCEPTED)
    with pytest.raises(IllegalTransition):
        check_transition(OrderStatus.FILLED, OrderStatus.CANCELED)
    with pytest.raises(IllegalTransition):
        check_transition(OrderStatus.ACCEPTED, OrderStatus.REJECTED)


def test_router_refuses_a_client_order_id_it_already_owns() -> None:
    router, sim, events = make_router()
    first = router.submit(OrderRequest(1, "dup", "SPY", Side.BUY, 10.0))
    assert router.submit(OrderRequest(2, "dup", "SPY", Side.SELL, 3.0)) is None
    assert first.status is OrderStatus.ACCEPTED and router.active["dup"] is first
    assert router.open_quantity("SPY") == 10.0
    assert list(sim.submitted) == ["dup"]
