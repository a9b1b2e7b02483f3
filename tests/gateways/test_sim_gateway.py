"""SimulatedGateway fill rules, costs and constraint rejections."""

from __future__ import annotations

import pytest

from gateways.base import Gateway
from gateways.sim import SimCosts, SimulatedGateway
from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from trader.core.instruments import AssetClass, Instrument

NS = 1_000_000_000
DAY = 86_400
T0 = 1_700_006_400 * NS  # a UTC midnight


def bar(i: int, o: float, h: float, lo: float, c: float, inst: str = "SPY") -> Bar:
    start = T0 + i * DAY * NS
    return Bar(start + DAY * NS, inst, DAY, start, o, h, lo, c, 1000.0)


def instruments() -> dict[str, Instrument]:
    return {
        "SPY": Instrument(id="SPY", symbol="SPY", venue="ARCA", asset_class=AssetClass.EQUITY,
                          tick_size=0.01, lot_step=1, min_quantity=1),
        "BTC": Instrument(id="BTC", symbol="BTC/USD", venue="X", asset_class=AssetClass.CRYPTO,
                          tick_size=0.5, lot_step=0.001, min_quantity=0.001, min_notional=10),
    }


def make(costs: SimCosts = SimCosts()) -> tuple[SimulatedGateway, list]:
    events: list = []
    gw = SimulatedGateway(instruments(), costs, base_timeframes={"SPY": DAY, "BTC": DAY},
                          initial_cash=100_000.0)
    gw.bind(events.append)
    return gw, events


def order(coid: str, side: Side, qty: float, kind: OrderType = OrderType.MARKET, *,
          limit: float | None = None, stop: float | None = None, ts: int | None = None,
          inst: str = "SPY") -> OrderRequest:
    return OrderRequest(bar(0, 1, 1, 1, 1).ts if ts is None else ts, coid, inst, side, qty,
                        kind, limit, stop)


def fills(events: list) -> list[Fill]:
    return [e for e in events if isinstance(e, Fill)]


def updates(events: list) -> list[OrderUpdate]:
    return [e for e in events if isinstance(e, OrderUpdate)]


def test_speaks_the_gateway_protocol() -> None:
    assert isinstance(make()[0], Gateway)


def test_market_order_fills_at_next_open_plus_slippage_with_commission() -> None:
    gw, ev = make(SimCosts(slippage_bps=10, commission_bps=5, fee_per_order=1.5))
    gw.on_bar(bar(0, 100, 101, 99, 100.5))
    gw.submit(order("b1", Side.BUY, 10))
    assert [u.status for u in updates(ev)] == [OrderStatus.ACCEPTED]
    gw.on_bar(bar(1, 102, 103, 101, 102.5))
    (f,) = fills(ev)
    assert f.price == pytest.approx(102 * 1.001, rel=1e-12)
    assert f.quantity == 10 and f.side is Side.BUY and f.client_order_id == "b1"
    assert f.ts == bar(1, 1, 1, 1, 1).ts_open  # executed at the open
    assert f.commission == pytest.approx(10 * 102 * 1.001 * 5e-4 + 1.5, rel=1e-12)
    gw.submit(order("s1", Side.SELL, 10, ts=bar(1, 1, 1, 1, 1).ts))
    gw.on_bar(bar(2, 98, 99, 97, 98))
    s = fills(ev)[1]
    assert s.price == pytest.approx(98 * 0.999, rel=1e-12)
    assert s.commission == pytest.approx(10 * 98 * 0.999 * 5e-4 + 1.5, rel=1e-12)
    # Broker-side record: cash moved by notional and fees, position flat again.
    assert gw.positions["SPY"] == 0
    expected = 100_000 - f.quantity * f.price - f.commission + s.quantity * s.price - s.commission
    assert gw.cash["USD"] == pytest.approx(expected, rel=1e-12)


def test_order_never_fills_on_the_bar_it_was_decided_on() -> None:
    gw, ev = make()
    b0 = bar(0, 100, 101, 99, 100)
    gw.on_bar(b0)
    gw.submit(order("b1", Side.BUY, 1, ts=b0.ts))
    gw.on_bar(b0)  # the same bar seen again (e.g. by another handler) must not fill it
    assert fills(ev) == []
    gw.on_bar(bar(1, 105, 106, 104, 105))
    assert fills(ev)[0].price == 105


def test_bars_of_other_instruments_or_timeframes_do_not_fill() -> None:
    gw, ev = make()
    gw.submit(order("b1", Side.BUY, 1))
    gw.on_bar(bar(1, 50, 51, 49, 50, inst="BTC"))
    b = bar(1, 100, 101, 99, 100)
    gw.on_bar(Bar(b.ts + 3 * DAY * NS, "SPY", 4 * DAY, b.ts_open, 1, 1, 1, 1, 1))
    assert fills(ev) == []


@pytest.mark.parametrize(
    ("side", "limit", "bar_ohlc", "expected"),
    [
        (Side.BUY, 95.0, (100, 101, 96, 100), None),      # range never reaches the limit
        (Side.BUY, 97.0, (100, 101, 96, 100), 97.0),      # touched inside the bar: at the limit
        (Side.BUY, 97.0, (94, 95, 93, 94), 94.0),         # gapped through: the better open
        (Side.SELL, 105.0, (100, 104, 99, 100), None),
        (Side.SELL, 103.0, (100, 104, 99, 100), 103.0),
        (Side.SELL, 103.0, (106, 107, 105, 106), 106.0),  # gapped up through the limit
    ],
)
def test_limit_orders(side: Side, limit: float, bar_ohlc: tuple, expected: float | None) -> None:
    gw, ev = make(SimCosts(slippage_bps=50))  # limit fills carry no slippage
    gw.submit(order("l1", side, 3, OrderType.LIMIT, limit=limit))
    gw.on_bar(bar(1, *bar_ohlc))
    got = fills(ev)
    if expected is None:
        assert got == []
        # Still working: a later bar that reaches the limit fills it.
        gw.on_bar(bar(2, limit, limit + 1, limit - 1, limit))
        assert [f.price for f in fills(ev)] == [limit]
    else:
        assert [f.price for f in got] == [expected]


@pytest.mark.parametrize(
    ("side", "stop", "bar_ohlc", "expected"),
    [
        (Side.BUY, 105.0, (100, 104, 99, 100), None),
        (Side.BUY, 103.0, (100, 104, 99, 100), 103.0 * 1.001),   # triggered at the stop
        (Side.BUY, 103.0, (106, 107, 105, 106), 106.0 * 1.001),  # gapped through: the worse open
        (Side.SELL, 95.0, (100, 101, 96, 100), None),
        (Side.SELL, 97.0, (100, 101, 96, 100), 97.0 * 0.999),
        (Side.SELL, 97.0, (90, 92, 89, 91), 90.0 * 0.999),        # gap down through the stop
    ],
)
def test_stop_orders(side: Side, stop: float, bar_ohlc: tuple, expected: float | None) -> None:
    gw, ev = make(SimCosts(slippage_bps=10))
    gw.submit(order("s1", side, 3, OrderType.STOP, stop=stop))
    gw.on_bar(bar(1, *bar_ohlc))
    got = fills(ev)
    if expected is None:
        assert got == []
    else:
        assert len(got) == 1 and got[0].price == pytest.approx(expected, rel=1e-12)


def test_limit_order_waits_until_a_later_bar_reaches_it() -> None:
    gw, ev = make()
    gw.submit(order("l1", Side.BUY, 2, OrderType.LIMIT, limit=90.0))
    gw.on_bar(bar(1, 100, 101, 95, 96))
    gw.on_bar(bar(2, 96, 97, 89, 92))
    (f,) = fills(ev)
    assert f.price == 90.0 and f.ts == bar(2, 1, 1, 1, 1).ts_open


def test_fixed_fee_is_charged_once_per_order_and_commission_scales_with_notional() -> None:
    gw, ev = make(SimCosts(commission_bps=0, fee_per_order=2.0))
    gw.submit(order("a", Side.BUY, 1))
    gw.submit(order("b", Side.BUY, 100))
    gw.on_bar(bar(1, 50, 51, 49, 50))
    assert [f.commission for f in fills(ev)] == [2.0, 2.0]
    gw2, ev2 = make(SimCosts(commission_bps=20, fee_per_order=0.0))
    gw2.submit(order("a", Side.BUY, 4))
    gw2.on_bar(bar(1, 50, 51, 49, 50))
    assert fills(ev2)[0].commission == pytest.approx(4 * 50 * 0.002, rel=1e-12)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (order("r1", Side.BUY, 1.5), "not a multiple of lot step"),
        (order("r2", Side.BUY, 0.0005, inst="BTC"), "not a multiple of lot step"),
        (order("r3", Side.BUY, 0.001, OrderType.LIMIT, limit=5000.0, inst="BTC"),
         "notional 5.00 below minimum 10"),
        (order("r4", Side.BUY, 1, OrderType.LIMIT, limit=100.005), "not on tick size"),
        (order("r5", Side.BUY, 1, OrderType.LIMIT), "limit order without limit price"),
        (order("r6", Side.BUY, 1, OrderType.STOP), "stop order without stop price"),
        (order("r7", Side.BUY, 1, inst="NOPE"), "unknown instrument NOPE"),
    ],
)
def test_orders_breaking_constraints_are_rejected_with_a_reason(
    request_: OrderRequest, reason: str
) -> None:
    gw, ev = make()
    gw.submit(request_)
    (u,) = updates(ev)
    assert u.status is OrderStatus.REJECTED and reason in u.reason
    assert u.client_order_id == request_.client_order_id
    gw.on_bar(bar(1, 100, 101, 99, 100))
    gw.on_bar(bar(1, 6000, 6001, 5999, 6000, inst="BTC"))
    assert fills(ev) == []


def test_min_quantity_rejection() -> None:
    events: list = []
    inst = Instrument(id="F", symbol="F", venue="V", asset_class=AssetClass.FX,
                      tick_size=0.00001, lot_step=1000, min_quantity=10000)
    gw = SimulatedGateway({"F": inst})
    gw.bind(events.append)
    gw.submit(OrderRequest(1, "m1", "F", Side.BUY, 5000.0))
    assert "below minimum 10000" in events[0].reason


def test_market_order_below_min_notional_uses_the_last_close() -> None:
    gw, ev = make()
    gw.on_bar(bar(0, 6000, 6001, 5999, 6000, inst="BTC"))
    gw.submit(order("m1", Side.BUY, 0.001, inst="BTC"))
    assert updates(ev)[0].status is OrderStatus.REJECTED
    assert "notional 6.00 below minimum 10" in updates(ev)[0].reason
    gw.submit(order("m2", Side.BUY, 0.002, inst="BTC"))
    assert updates(ev)[1].status is OrderStatus.ACCEPTED


async def test_cancel_removes_a_working_order_and_reports_it() -> None:
    gw, ev = make()
    gw.submit(order("l1", Side.BUY, 2, OrderType.LIMIT, limit=90.0))
    assert [r.client_order_id for r in await gw.open_orders()] == ["l1"]
    gw.cancel("l1")
    assert updates(ev)[-1].status is OrderStatus.CANCELED
    gw.on_bar(bar(1, 80, 81, 79, 80))
    assert fills(ev) == []
    assert await gw.open_orders() == []
    assert (await gw.order_status("l1")).status is OrderStatus.CANCELED


async def test_account_and_fills_since_report_the_broker_record() -> None:
    gw, ev = make(SimCosts(fee_per_order=1.0))
    gw.submit(order("b1", Side.BUY, 10))
    gw.on_bar(bar(1, 100, 101, 99, 100))
    acct = await gw.account()
    assert acct.positions == {"SPY": 10}
    assert acct.cash["USD"] == pytest.approx(100_000 - 1000 - 1.0)
    assert [f.client_order_id for f in await gw.fills_since(0)] == ["b1"]
    assert await gw.fills_since(bar(1, 1, 1, 1, 1).ts) == []
    assert (await gw.order_status("b1")).filled_quantity == 10
