"""The pure rules under the engine: sizing to a cap, and the trading-state gate."""

from __future__ import annotations

import pytest

from risk.checks import cap_fit, check_stale, gross_fit
from risk.reasons import RiskReason
from risk.state import TradingState, TradingStateMachine, state_breach


@pytest.mark.parametrize(("current", "delta", "cap", "fit"), [
    (0, 30, 40, 30),        # inside
    (0, 40, 40, 40),        # exactly at the cap
    (0, 50, 40, 40),        # scaled to the cap
    (-50, 200, 40, 90),     # through zero up to +cap
    (60, 10, 40, 0),        # already beyond: nothing more
    (60, -10, 40, 10),      # moving back toward the cap always fits
    (60, -200, 40, 100),    # through zero down to -cap
    (0, -50, 40, 40),
])
def test_cap_fit(current, delta, cap, fit):
    assert cap_fit(current, delta, cap) == pytest.approx(fit)


@pytest.mark.parametrize(("gross", "current", "delta", "cap", "fit"), [
    (100, 0, 20, 120, 20),
    (100, 0, 30, 120, 20),
    (100, 50, 30, 120, 20),     # same direction: only the headroom
    (100, 50, -80, 120, 80),    # unwinding 50 frees room for 30 beyond zero
    (110, 50, -200, 120, 110),  # 2*50 + 10 headroom
    (150, 50, -200, 120, 70),   # over the cap: unwind 50, then 20 beyond zero reaches 120
    (200, 50, -200, 120, 50),   # far over the cap: the unwind itself still fits
    (150, 0, 10, 120, 0),
])
def test_gross_fit(gross, current, delta, cap, fit):
    assert gross_fit(gross, current, delta, cap) == pytest.approx(fit)


def test_state_gate():
    assert state_breach(TradingState.ACTIVE, False, False) is None
    assert state_breach(TradingState.REDUCING, False, False) is RiskReason.REDUCING
    assert state_breach(TradingState.REDUCING, True, False) is None
    assert state_breach(TradingState.HALTED, True, False) is RiskReason.HALTED
    assert state_breach(TradingState.HALTED, False, True) is RiskReason.HALTED
    assert state_breach(TradingState.HALTED, True, True) is None


def test_state_machine_events_and_time_in_state():
    sm = TradingStateMachine()
    seen = []
    sm.listeners.append(seen.append)
    sm.start(0)
    assert sm.change(TradingState.REDUCING, 10, "manual")
    assert not sm.change(TradingState.REDUCING, 12, "again")
    assert sm.change(TradingState.HALTED, 15, "drawdown_halt", "20%")
    assert [(e.ts, e.previous, e.state, e.reason) for e in seen] == [
        (10, "ACTIVE", "REDUCING", "manual"), (15, "REDUCING", "HALTED", "drawdown_halt")]
    assert sm.durations(40) == {TradingState.ACTIVE: 10, TradingState.REDUCING: 5,
                                TradingState.HALTED: 25}


def test_stale_boundary():
    ns = 1_000_000_000
    assert check_stale(0, 3 * 60 * ns, 60, 3) is None
    assert check_stale(0, 3 * 60 * ns + 1, 60, 3).reason is RiskReason.STALE_PRICE
    assert check_stale(None, 5, 60, 3).reason is RiskReason.NO_PRICE
