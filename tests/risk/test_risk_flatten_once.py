"""A halt flattens once: one reduce-only order per held instrument, never cancelled and re-sent.

In-process replay through ``build_engine`` (the one composition root) on a crafted
path: a model holds two instruments, both fall until drawdown control halts. One
instrument then stops printing bars, so its flatten order keeps working over many
bars of the other and over a second stop (a halt after the drawdown halt, or
after the operator's kill switch). Each of those is a moment where the old code
cancelled the working flatten and sent an identical one again.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from risk_fixtures import MIN, T0, Scripted, bar, make_config

from risk.events import RiskDirective
from risk.state import TradingState
from trader.core.events import Bar, OrderStatus, OrderUpdate
from trader.engine.build import build_engine

RISK = {
    "instrument_exposure": {"limit": 1.0},
    "gross_leverage": {"limit": 2.0},
    "drawdown": {"trigger": 0.15, "halt": 0.20, "derisk_factor": 1.0},
}


def _hold_both(bar: Bar, n: int) -> dict[str, float]:  # noqa: ARG001
    return {bar.instrument_id: 1.0}


@pytest.mark.parametrize("operator_first", [False, True],
                         ids=["drawdown_halt_then_halt", "kill_switch_then_halt"])
def test_a_halt_sends_one_flatten_per_instrument_and_never_resends_it(operator_first):
    cfg = make_config(RISK, models=[
        {"name": "a", "model": "SmaCross", "budget": 0.45, "instruments": ["AAA"],
         "timeframe": "1m"},
        {"name": "b", "model": "SmaCross", "budget": 0.45, "instruments": ["BBB"],
         "timeframe": "1m"}])
    models = [Scripted("a", ["AAA"], "1m", _hold_both), Scripted("b", ["BBB"], "1m", _hold_both)]
    engine = build_engine(cfg, models=models)
    bus = engine.kernel.bus
    updates: list[OrderUpdate] = []
    directives: list[RiskDirective] = []
    bus.subscribe(OrderUpdate, updates.append)
    bus.subscribe(RiskDirective, directives.append)
    held_at_stop: dict[str, float] = {}
    working_seen: list[bool] = []
    switch = engine.risk.kill_switch

    def bars() -> Iterator[Bar]:
        k, price = 0, 100.0
        stopped = False
        while not stopped:  # both instruments print, falling 4% a minute after minute 3
            if k > 3:
                price *= 0.96
            for inst in ("AAA", "BBB"):
                if operator_first and k == 6 and inst == "AAA":
                    # The operator stops first (flatten on); a halt follows.
                    held_at_stop.update({i: engine.portfolio.position(i) for i in ("AAA", "BBB")})
                    switch.engage("operator: stop", who="test")
                    stopped = True
                yield bar(inst, T0 + k * MIN, price)
                if engine.risk.state is TradingState.HALTED:
                    stopped = True
                if stopped:
                    break
            k += 1
        if not held_at_stop:
            held_at_stop.update({i: engine.portfolio.position(i) for i in ("AAA", "BBB")})
        # BBB goes quiet: its flatten order keeps working over AAA's bars.
        for j in range(8):
            price *= 0.96
            yield bar("AAA", T0 + (k + j) * MIN, price)
            working_seen.append(any(o.request.instrument_id == "BBB" and o.request.reduce_only
                                    for o in engine.router.active.values()))
            if j == 3:
                engine.risk.halt("operator_halt", "a second stop")  # cancel + flatten again
        yield bar("BBB", T0 + (k + 8) * MIN, price)
        for j in range(9, 12):
            for inst in ("AAA", "BBB"):
                yield bar(inst, T0 + (k + j) * MIN, price)

    engine.kernel.run(bars())

    assert engine.risk.state is TradingState.HALTED and switch.engaged
    assert all(q > 0 for q in held_at_stop.values()), held_at_stop  # both were held
    assert working_seen and all(working_seen)  # BBB's flatten was working throughout
    assert sum(1 for d in directives if d.flatten) >= 2  # two stops: two chances to resend
    flattens = [o for o in engine.orders if o.reduce_only]
    assert sorted(o.instrument_id for o in flattens) == ["AAA", "BBB"]
    for o in flattens:
        assert o.quantity == pytest.approx(held_at_stop[o.instrument_id])
    flatten_ids = {o.client_order_id for o in flattens}
    assert not [u for u in updates
                if u.client_order_id in flatten_ids and u.status is OrderStatus.CANCELED]
    assert engine.portfolio.position("AAA") == 0 and engine.portfolio.position("BBB") == 0
    # Nothing but the flattening was sent after the stop.
    first_flatten = min(o.ts for o in flattens)
    assert [o for o in engine.orders if o.ts >= first_flatten and not o.reduce_only] == []
