"""The simulated exchange's realism: spread, slippage models, a participation cap that
fills across bars, latency, commission schedules; and the defaults that change nothing."""

from __future__ import annotations

import math

import pytest
from test_sim_gateway import DAY, bar, instruments, order

from gateways.sim import SimCosts, SimulatedGateway
from gateways.sim_costs import commission_of, execute, half_spread, slippage_fraction
from trader.core.events import Fill, OrderStatus, OrderType, OrderUpdate, Side


def make(costs: SimCosts) -> tuple[SimulatedGateway, list]:
    events: list = []
    gw = SimulatedGateway(instruments(), costs, base_timeframes={"SPY": DAY, "BTC": DAY},
                          initial_cash=1e6)
    gw.bind(events.append)
    return gw, events


def fills(events: list) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def test_defaults_are_the_original_rules() -> None:
    assert SimCosts(2, 1, 1).is_default and not SimCosts(2, 1, 1, spread_bps=1).is_default
    gw, ev = make(SimCosts(slippage_bps=10))
    gw.on_bar(bar(0, 100, 101, 99, 100))
    gw.submit(order("a", Side.BUY, 10))
    gw.on_bar(bar(1, 100, 101, 99, 100))
    assert fills(ev)[0].price == 100 * (1 + 10 / 10_000)
    assert gw.cost_split == {}  # the original path keeps no split


def test_spread_from_config_and_from_the_previous_bar_range() -> None:
    prev = bar(0, 100, 104, 96, 100)  # range 8
    b = bar(1, 100, 101, 99, 100)
    assert half_spread(SimCosts(spread_bps=20), prev, 100.0) == pytest.approx(0.1)
    assert half_spread(SimCosts(spread_range_fraction=0.25), prev, 100.0) == pytest.approx(1.0)
    gw, ev = make(SimCosts(spread_bps=20))
    gw.on_bar(prev)
    gw.submit(order("b", Side.BUY, 10))
    gw.submit(order("s", Side.SELL, 10))
    gw.on_bar(b)
    buy, sell = fills(ev)
    assert buy.price == pytest.approx(100.1) and sell.price == pytest.approx(99.9)
    # spread paid in money: 0.1 per unit x 10 units each; no slippage configured
    assert gw.cost_split[buy.trade_id] == pytest.approx((1.0, 0.0))


def test_slippage_models() -> None:
    prev = bar(0, 100, 102, 98, 100)  # range / close = 4%
    b = bar(1, 100, 101, 99, 100)  # volume 1000
    assert slippage_fraction(SimCosts(slippage_bps=5), prev, 10, b) == pytest.approx(5e-4)
    vol = SimCosts(slippage_model="volatility", slippage_vol_mult=0.1)
    assert slippage_fraction(vol, prev, 10, b) == pytest.approx(0.004)
    impact = SimCosts(slippage_model="sqrt_impact", impact_coef=0.5)
    # 0.5 x 4% x sqrt(250 / 1000) = 1%
    assert slippage_fraction(impact, prev, 250, b) == pytest.approx(0.01)
    ex = execute(order("x", Side.SELL, 250), b, prev, 250, impact)
    assert ex is not None and ex.price == pytest.approx(99.0) and ex.slippage_cost == \
        pytest.approx(1.0)
    # A resting limit order pays neither spread nor slippage.
    lim = execute(order("l", Side.BUY, 1, OrderType.LIMIT, limit=99.5), b, prev, 1,
                  SimCosts(spread_bps=50, slippage_bps=50))
    assert lim is not None and (lim.price, lim.spread_cost, lim.slippage_cost) == (99.5, 0, 0)


def test_a_large_order_fills_across_three_bars_under_a_participation_cap() -> None:
    costs = SimCosts(max_participation=0.1, commission_schedule="per_share", per_share=0.01,
                     per_share_min=1.5)
    gw, ev = make(costs)
    gw.on_bar(bar(0, 100, 101, 99, 100))
    gw.submit(order("big", Side.BUY, 250))
    for i, px in ((1, 100.0), (2, 101.0), (3, 102.0)):
        gw.on_bar(bar(i, px, px + 1, px - 1, px))  # 1000 units traded per bar: 100 may fill
    got = fills(ev)
    assert [(f.quantity, f.price) for f in got] == [(100, 100.0), (100, 101.0), (50, 102.0)]
    assert [f.ts for f in got] == [bar(i, 1, 1, 1, 1).ts_open for i in (1, 2, 3)]
    # per-share commission on the order as a whole: max(1.5, 0.01 x units so far) - paid
    assert [f.commission for f in got] == pytest.approx([1.5, 0.5, 0.5])
    statuses = [e.status for e in ev if isinstance(e, OrderUpdate)]
    assert statuses == [OrderStatus.ACCEPTED]
    assert gw.positions["SPY"] == 250
    report = gw._orders["big"]
    assert report.status is OrderStatus.FILLED and report.filled_quantity == 250
    # Nothing more fills on a later bar.
    gw.on_bar(bar(4, 103, 104, 102, 103))
    assert len(fills(ev)) == 3


def test_participation_is_shared_by_the_orders_of_one_bar_and_latency_delays() -> None:
    gw, ev = make(SimCosts(max_participation=0.1, latency_bars=1, latency_fraction=0.5))
    gw.on_bar(bar(0, 100, 101, 99, 100))
    gw.submit(order("a", Side.BUY, 60))
    gw.submit(order("b", Side.BUY, 60))
    gw.on_bar(bar(1, 100, 101, 99, 100))  # in flight: latency of one bar
    assert fills(ev) == []
    gw.on_bar(bar(2, 100, 110, 99, 108))  # 100 units for both; at open + half the body
    got = fills(ev)
    assert [(f.client_order_id, f.quantity) for f in got] == [("a", 60), ("b", 40)]
    assert got[0].price == pytest.approx(104.0)
    gw.on_bar(bar(3, 108, 109, 107, 108))
    assert [(f.client_order_id, f.quantity) for f in fills(ev)][-1] == ("b", 20)


def test_commission_schedules() -> None:
    mkt = order("m", Side.BUY, 100)
    lim = order("l", Side.BUY, 100, OrderType.LIMIT, limit=10.0)
    bps = SimCosts(commission_bps=2, fee_per_order=1)
    assert commission_of(bps, mkt, 100, 10_000, 0, 0) == pytest.approx(3.0)
    assert commission_of(bps, mkt, 100, 10_000, 50, 3.0) == pytest.approx(2.0)  # fee once
    ibkr = SimCosts(commission_schedule="per_share", per_share=0.005, per_share_min=1.0,
                    per_share_max_pct=0.01)
    assert commission_of(ibkr, mkt, 100, 10_000, 0, 0) == pytest.approx(1.0)   # minimum
    assert commission_of(ibkr, mkt, 1000, 100_000, 0, 0) == pytest.approx(5.0)  # per share
    # 10 000 shares at 0.05: 50 by the share, capped at 1% of the 500 value = 5
    assert commission_of(ibkr, mkt, 10_000, 500, 0, 0) == pytest.approx(5.0)
    mt = SimCosts(commission_schedule="maker_taker", maker_bps=-1, taker_bps=5)
    assert commission_of(mt, mkt, 100, 10_000, 0, 0) == pytest.approx(5.0)
    assert commission_of(mt, lim, 100, 10_000, 0, 0) == pytest.approx(-1.0)  # a rebate
    assert not math.isnan(commission_of(ibkr, mkt, 0, 0, 0, 0))
