"""Each pre-trade check: just inside the limit passes, just outside is scaled or rejected."""

from __future__ import annotations

import pytest
from risk_fixtures import NS, T0, hold, order, priced_engine

from risk.engine import RiskAction
from risk.events import OrderRiskEvent
from risk.state import TradingState

CAPS_OFF = {
    "instrument_exposure": {"limit": None},
    "asset_class_exposure": {"limits": {}},
    "gross_leverage": {"limit": None},
    "net_exposure": {"limit": None},
}


def caps(**over):
    out = dict(CAPS_OFF)
    out.update(over)
    return out


def assert_outside(engine, request, mode, reason, fit):
    events = []
    engine.kernel.bus.subscribe(OrderRiskEvent, events.append)
    d = engine.risk.check(request)
    assert d.reason == reason
    if mode == "scale":
        assert d.action is RiskAction.SCALE
        assert d.quantity == pytest.approx(fit)
    else:
        assert d.action is RiskAction.REJECT
        assert d.quantity == 0
    assert [e.reason for e in events] == [reason]
    assert events[0].action == mode
    assert engine.risk.counts[reason] == 1


@pytest.mark.parametrize("mode", ["scale", "reject"])
def test_instrument_exposure_cap(mode):
    risk = caps(instrument_exposure={"limit": 0.4, "on_breach": mode})
    e = priced_engine(risk)
    assert e.risk.check(order("AAA", "BUY", 400)).action is RiskAction.APPROVE  # 40,000 = 40%
    assert_outside(priced_engine(risk), order("AAA", "BUY", 401), mode, "instrument_exposure",
                   400)
    # The cap counts what is already held, and works for shorts too.
    e = priced_engine(risk)
    hold(e, "AAA", -100)
    assert e.risk.check(order("AAA", "SELL", 300)).action is RiskAction.APPROVE
    e = priced_engine(risk)
    hold(e, "AAA", -100)
    assert_outside(e, order("AAA", "SELL", 301), mode, "instrument_exposure", 300)


def test_instrument_exposure_counts_working_orders():
    e = priced_engine(caps(instrument_exposure={"limit": 0.4}))
    e.router.submit(order("AAA", "BUY", 300))
    d = e.risk.check(order("AAA", "BUY", 150))
    assert (d.action, d.quantity, d.reason) == (RiskAction.SCALE, 100, "instrument_exposure")


def test_reducing_orders_pass_exposure_caps_even_when_over_the_cap():
    e = priced_engine(caps(instrument_exposure={"limit": 0.4, "on_breach": "reject"},
                           gross_leverage={"limit": 0.5, "on_breach": "reject"}))
    hold(e, "AAA", 900)  # 90% of NAV: over both caps already (e.g. after a price move)
    assert e.risk.check(order("AAA", "SELL", 100, reduce_only=True)).action is RiskAction.APPROVE
    assert e.risk.check(order("AAA", "SELL", 900)).action is RiskAction.APPROVE
    assert e.risk.check(order("AAA", "BUY", 1)).reason == "instrument_exposure"


def test_reduce_only_flag_must_really_reduce():
    e = priced_engine()
    d = e.risk.check(order("AAA", "BUY", 10, reduce_only=True))
    assert (d.action, d.reason) == (RiskAction.REJECT, "reduce_only_would_increase")


@pytest.mark.parametrize("mode", ["scale", "reject"])
def test_asset_class_cap(mode):
    risk = caps(asset_class_exposure={"limits": {"crypto": 0.2}, "on_breach": mode})
    assert priced_engine(risk).risk.check(order("BTC", "BUY", 2.0)).action is RiskAction.APPROVE
    assert_outside(priced_engine(risk), order("BTC", "BUY", 2.001), mode, "asset_class_exposure",
                   2.0)
    # Other classes have no cap unless configured.
    assert priced_engine(risk).risk.check(order("AAA", "BUY", 900)).action is RiskAction.APPROVE


def test_asset_class_cap_is_gross_within_the_class():
    instruments = None  # default set has one crypto; add a second one
    from risk_fixtures import INSTRUMENTS

    instruments = INSTRUMENTS + [dict(INSTRUMENTS[2], id="ETH", symbol="ETH/USD")]
    e = priced_engine(caps(asset_class_exposure={"limits": {"crypto": 0.2}}),
                      {"BTC": 10_000.0, "ETH": 1_000.0}, instruments=instruments)
    hold(e, "BTC", -1.0)  # 10,000 short counts toward the gross cap
    assert e.risk.check(order("ETH", "BUY", 10.0)).action is RiskAction.APPROVE
    e = priced_engine(caps(asset_class_exposure={"limits": {"crypto": 0.2}}),
                      {"BTC": 10_000.0, "ETH": 1_000.0}, instruments=instruments)
    hold(e, "BTC", -1.0)
    d = e.risk.check(order("ETH", "BUY", 10.001))
    assert (d.action, d.reason) == (RiskAction.SCALE, "asset_class_exposure")
    assert d.quantity == pytest.approx(10.0)


@pytest.mark.parametrize("mode", ["scale", "reject"])
def test_gross_leverage_cap(mode):
    risk = caps(instrument_exposure={"limit": 1.0}, gross_leverage={"limit": 1.2,
                                                                    "on_breach": mode})
    e = priced_engine(risk)
    hold(e, "AAA", 800)
    assert e.risk.check(order("BBB", "SELL", 400)).action is RiskAction.APPROVE  # 120,000
    e = priced_engine(risk)
    hold(e, "AAA", 800)
    assert_outside(e, order("BBB", "SELL", 401), mode, "gross_leverage", 400)


def test_gross_leverage_allows_unwinding_through_zero_up_to_the_cap():
    e = priced_engine(caps(instrument_exposure={"limit": 1.0}, gross_leverage={"limit": 1.2}))
    hold(e, "AAA", 800)
    hold(e, "BBB", 300)  # gross 110,000
    # Selling 300 BBB frees 30,000; the cap leaves 10,000 + 30,000 beyond zero.
    d = e.risk.check(order("BBB", "SELL", 800))
    assert (d.action, d.quantity) == (RiskAction.SCALE, 700)


@pytest.mark.parametrize("mode", ["scale", "reject"])
def test_net_exposure_cap(mode):
    risk = caps(instrument_exposure={"limit": 1.0}, net_exposure={"limit": 1.0,
                                                                  "on_breach": mode})
    e = priced_engine(risk)
    hold(e, "AAA", 600)
    assert e.risk.check(order("BBB", "BUY", 400)).action is RiskAction.APPROVE  # net 100,000
    e = priced_engine(risk)
    hold(e, "AAA", 600)
    assert_outside(e, order("BBB", "BUY", 401), mode, "net_exposure", 400)
    # A short elsewhere makes room: net is signed.
    e = priced_engine(risk)
    hold(e, "AAA", 600)
    hold(e, "BBB", -200)
    assert e.risk.check(order("EUR", "BUY", 60_000)).action is RiskAction.APPROVE


@pytest.mark.parametrize("mode", ["scale", "reject"])
def test_max_order_notional(mode):
    risk = {"max_order_notional": {"limit": 10_000, "on_breach": mode}}
    assert priced_engine(risk).risk.check(order("AAA", "BUY", 100)).action is RiskAction.APPROVE
    assert_outside(priced_engine(risk), order("AAA", "BUY", 101), mode, "max_order_notional",
                   100)


def test_scaled_order_below_instrument_minimum_is_rejected():
    e = priced_engine({"max_order_notional": {"limit": 5}})  # BTC minimum notional is 10
    d = e.risk.check(order("BTC", "BUY", 0.01))
    assert (d.action, d.reason) == (RiskAction.REJECT, "max_order_notional")
    assert "scaled quantity" in d.detail


def test_price_band():
    e = priced_engine({"price": {"band": 0.10}})
    assert e.risk.check(order("AAA", "BUY", 1, limit=110.0)).action is RiskAction.APPROVE
    assert e.risk.check(order("AAA", "SELL", 2, limit=90.0)).action is RiskAction.APPROVE
    assert e.risk.check(order("AAA", "BUY", 3, stop=110.0)).action is RiskAction.APPROVE
    for req in (order("AAA", "BUY", 4, limit=110.01), order("AAA", "SELL", 5, limit=89.99),
                order("AAA", "BUY", 6, stop=110.01)):
        d = e.risk.check(req)
        assert (d.action, d.reason) == (RiskAction.REJECT, "price_band")


def test_stale_price():
    e = priced_engine({"price": {"stale_bars": 3}})  # 1-minute bars at T0
    assert e.risk.check(order("AAA", "BUY", 1, ts=T0 + 180 * NS)).action is RiskAction.APPROVE
    d = e.risk.check(order("AAA", "BUY", 2, ts=T0 + 180 * NS + 1))
    assert (d.action, d.reason) == (RiskAction.REJECT, "stale_price")


def test_no_price_yet():
    e = priced_engine(prices={"AAA": 100.0})
    d = e.risk.check(order("BBB", "BUY", 1))
    assert (d.action, d.reason) == (RiskAction.REJECT, "no_price")


def test_unknown_instrument():
    d = priced_engine().risk.check(order("ZZZ", "BUY", 1))
    assert (d.action, d.reason) == (RiskAction.REJECT, "unknown_instrument")


@pytest.mark.parametrize(("req", "ok"), [
    (order("AAA", "BUY", 2), True),
    (order("AAA", "BUY", 2.5), False),              # lot step 1
    (order("AAA", "BUY", 1, limit=100.01), True),
    (order("AAA", "BUY", 1, limit=100.005), False),  # tick 0.01
    (order("BTC", "BUY", 0.001), True),              # notional 10 = minimum
    (order("BTC", "BUY", 0.0005), False),            # below min quantity and lot
    (order("EUR", "BUY", 1000), True),
    (order("EUR", "BUY", 999), False),
])
def test_instrument_constraints(req, ok):
    d = priced_engine().risk.check(req)
    if ok:
        assert d.action is RiskAction.APPROVE
    else:
        assert (d.action, d.reason) == (RiskAction.REJECT, "instrument_constraint")


def test_min_notional_just_outside():
    e = priced_engine(prices={"BTC": 9_999.0})
    d = e.risk.check(order("BTC", "BUY", 0.001))  # 9.999 < 10
    assert (d.action, d.reason) == (RiskAction.REJECT, "instrument_constraint")
    assert "notional" in d.detail


def test_order_rate_per_second_and_per_gateway():
    e = priced_engine({"order_rate": {"per_second": 3, "per_minute": None}})
    for q in (1, 2, 3):
        assert e.risk.check(order("AAA", "BUY", q)).action is RiskAction.APPROVE
    d = e.risk.check(order("AAA", "BUY", 4))
    assert (d.action, d.reason) == (RiskAction.REJECT, "order_rate")
    assert e.risk.check(order("AAA", "BUY", 5, gateway="other")).action is RiskAction.APPROVE
    # The first three leave the one-second window.
    assert e.risk.check(order("AAA", "BUY", 6, ts=T0 + NS)).action is RiskAction.APPROVE


def test_order_rate_per_minute():
    e = priced_engine({"order_rate": {"per_second": None, "per_minute": 5}})
    for k in range(5):
        req = order("AAA", "BUY", k + 1, ts=T0 + k * 10 * NS)
        assert e.risk.check(req).action is RiskAction.APPROVE
    d = e.risk.check(order("AAA", "BUY", 9, ts=T0 + 59 * NS))
    assert (d.action, d.reason) == (RiskAction.REJECT, "order_rate")
    assert e.risk.check(order("AAA", "BUY", 9, ts=T0 + 60 * NS)).action is RiskAction.APPROVE


def test_duplicate_guard():
    e = priced_engine({"duplicate": {"window_seconds": 1.0}})
    assert e.risk.check(order("AAA", "BUY", 10)).action is RiskAction.APPROVE
    assert e.risk.check(order("AAA", "SELL", 10)).action is RiskAction.APPROVE  # other side
    assert e.risk.check(order("AAA", "BUY", 11)).action is RiskAction.APPROVE  # other quantity
    d = e.risk.check(order("AAA", "BUY", 10, ts=T0 + NS))
    assert (d.action, d.reason) == (RiskAction.REJECT, "duplicate_order")
    assert e.risk.check(order("AAA", "BUY", 10, ts=T0 + NS + 1)).action is RiskAction.APPROVE


def test_rejected_orders_do_not_count_toward_rate_or_duplicates():
    e = priced_engine({"order_rate": {"per_second": 1}, "max_order_notional":
                       {"limit": 500, "on_breach": "reject"}})
    assert e.risk.check(order("AAA", "BUY", 10)).reason == "max_order_notional"
    assert e.risk.check(order("AAA", "BUY", 1)).action is RiskAction.APPROVE
    assert e.risk.check(order("AAA", "BUY", 2)).reason == "order_rate"


def test_kill_switch_rejects_until_released():
    e = priced_engine()
    e.risk.kill_switch.engage("test")
    d = e.risk.check(order("AAA", "BUY", 1))
    assert (d.action, d.reason) == (RiskAction.REJECT, "kill_switch")
    assert "test" in d.detail
    e.risk.kill_switch.release("done")
    assert e.risk.check(order("AAA", "BUY", 1)).action is RiskAction.APPROVE


def test_trading_states():
    e = priced_engine()
    hold(e, "AAA", 100)
    e.risk.reduce_only("operator asked")
    assert e.risk.state is TradingState.REDUCING
    d = e.risk.check(order("AAA", "BUY", 1))
    assert (d.action, d.reason) == (RiskAction.REJECT, "reducing_only")
    assert e.risk.check(order("AAA", "SELL", 50)).action is RiskAction.APPROVE
    assert e.risk.check(order("AAA", "SELL", 101)).reason == "reducing_only"  # would flip
    e.risk.resume("ok")
    assert e.risk.check(order("AAA", "BUY", 2)).action is RiskAction.APPROVE


def test_halt_cancels_flattens_and_engages_the_kill_switch():
    e = priced_engine()
    hold(e, "AAA", 100)
    working = e.router.submit(order("BBB", "BUY", 5))
    e.risk.halt("test_halt", "by hand")
    assert e.risk.state is TradingState.HALTED
    assert working.status.value == "CANCELED"
    flatten = [o.request for o in e.router.active.values()]
    assert [(r.instrument_id, r.side.value, r.quantity, r.reduce_only) for r in flatten] == [
        ("AAA", "SELL", 100, True)]
    assert e.risk.kill_switch.engaged
    d = e.risk.check(order("AAA", "SELL", 10, reduce_only=True))
    assert (d.action, d.reason) == (RiskAction.REJECT, "kill_switch")


def test_halted_state_rejects_even_reducing_orders():
    e = priced_engine()
    hold(e, "AAA", 100)
    e.risk.states.change(TradingState.HALTED, T0, "test")
    d = e.risk.check(order("AAA", "SELL", 10, reduce_only=True))
    assert (d.action, d.reason) == (RiskAction.REJECT, "trading_halted")
    e.risk.resume("checked")
    assert e.risk.check(order("AAA", "SELL", 10, reduce_only=True)).action is RiskAction.APPROVE


def test_every_non_approval_is_published_and_counted():
    e = priced_engine({"max_order_notional": {"limit": 10_000}})
    seen = []
    e.kernel.bus.subscribe(OrderRiskEvent, seen.append)
    e.risk.check(order("AAA", "BUY", 200))
    e.risk.check(order("ZZZ", "BUY", 1))
    e.risk.check(order("AAA", "BUY", 1))
    assert [(s.action, s.reason) for s in seen] == [("scale", "max_order_notional"),
                                                   ("reject", "unknown_instrument")]
    assert e.risk.counts == {"max_order_notional": 1, "unknown_instrument": 1}
    assert e.risk.actions == {"scale": 1, "reject": 1}
    assert e.risk.events == seen


def test_disabled_engine_approves_everything():
    e = priced_engine({"enabled": False})
    assert e.risk.check(order("ZZZ", "BUY", 1.5)).action is RiskAction.APPROVE


def test_working_reductions_free_no_room_until_filled():
    # The sell of BBB may fill after the buy of AAA (or be canceled): until it has
    # filled, BBB still counts in full toward gross leverage.
    e = priced_engine(caps(instrument_exposure={"limit": 1.0}, gross_leverage={"limit": 1.2}))
    hold(e, "BBB", 1000)  # 100,000
    e.router.submit(order("BBB", "SELL", 500))
    d = e.risk.check(order("AAA", "BUY", 400))
    assert (d.action, d.quantity, d.reason) == (RiskAction.SCALE, 200, "gross_leverage")


def test_working_increase_counts_before_it_fills():
    e = priced_engine(caps(instrument_exposure={"limit": 1.0}, net_exposure={"limit": 1.0}))
    e.router.submit(order("BBB", "BUY", 700))
    d = e.risk.check(order("AAA", "BUY", 400))
    assert (d.action, d.quantity, d.reason) == (RiskAction.SCALE, 300, "net_exposure")
