"""Financing of the simulated account: borrow on shorts and interest on negative cash,
charged once per UTC day for the days elapsed, to the books that caused them."""

from __future__ import annotations

import pytest

from trader.core.events import Bar
from trader.engine.build import build_engine
from trader.engine.config import AppConfig
from trader.engine.financing import daily_rate

DAY_NS = 86_400 * 1_000_000_000


def flat_bar(day: int, p: float = 100.0) -> Bar:
    return Bar((day + 1) * DAY_NS, "X", 86_400, day * DAY_NS, p, p, p, p, 1e9)


def engine_for(weight: float, quantity: float, execution: dict, cash: float = 100_000.0):
    from test_exits import Scripted

    cfg = AppConfig.model_validate({
        "portfolio": {"initial_cash": cash},
        "risk": {"enabled": False},  # leverage on purpose: the test borrows cash
        "execution": {"slippage_bps": 0, "commission_bps": 0, **execution},
        "instruments": [{"id": "X", "symbol": "X", "venue": "V", "asset_class": "equity",
                         "data": {"path": "x.csv", "timeframe": "1d"}}],
        "models": [{"name": "m", "model": "SmaCross", "budget": 1.0, "instruments": ["X"],
                    "timeframe": "1d",
                    "orders": {"sizing": {"by": "quantity", "quantity": quantity}}}],
    })
    model = type("S", (Scripted,), {"script": {0: weight}})("m", ["X"], "1d")
    return build_engine(cfg, models=[model])


def test_borrow_on_a_short_is_charged_per_day_including_skipped_days() -> None:
    eng = engine_for(-1.0, 10, {"borrow_bps_per_year": 365})  # 0.01% a day
    # bar days 0, 1 (short filled at its open), 2, then 5 (a gap of three days)
    eng.kernel.run([flat_bar(0), flat_bar(1), flat_bar(2), flat_bar(5)])
    per_day = 10 * 100.0 * daily_rate(365)
    assert per_day == pytest.approx(0.1)
    # day 1 -> 2: one day held; day 2 -> 5: three days
    assert eng.financing.total == pytest.approx(4 * per_day)
    pf = eng.portfolio
    assert pf.account.cash == pytest.approx(100_000 + 1_000 - 4 * per_day)
    assert pf.model_pnl()["m"] == pytest.approx(pf.pnl())


def test_margin_interest_on_negative_cash_and_nothing_when_not_configured() -> None:
    eng = engine_for(1.0, 1_500, {"margin_bps_per_year": 730}, cash=100_000)  # 150k long
    eng.kernel.run([flat_bar(0), flat_bar(1), flat_bar(2), flat_bar(3)])
    # borrowed 50 000 from day 1 on: two day changes (1->2, 2->3) at 0.02% a day; the
    # second day's interest is on the first day's interest too (it was borrowed as well)
    r = daily_rate(730)
    assert eng.financing.total == pytest.approx(50_000 * r + 50_000 * (1 + r) * r)
    assert eng.portfolio.nav == pytest.approx(100_000 - eng.financing.total)
    plain = engine_for(1.0, 1_500, {})
    plain.kernel.run([flat_bar(0), flat_bar(1), flat_bar(2), flat_bar(3)])
    assert plain.financing is None and plain.portfolio.nav == pytest.approx(100_000)


def test_a_hard_to_borrow_instrument_has_its_own_rate() -> None:
    eng = engine_for(-1.0, 10, {"borrow_bps_per_year": 365,
                                "instruments": {"X": {"borrow_bps_per_year": 3650}}})
    eng.kernel.run([flat_bar(0), flat_bar(1), flat_bar(2)])
    assert eng.financing.total == pytest.approx(10 * 100.0 * daily_rate(3650))
