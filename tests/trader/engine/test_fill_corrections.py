"""A venue's FillCorrection applied to the portfolio: the account and every model book.

The reference for each rule is the same portfolio fed the fill as corrected from the
start: wherever the correction can be applied exactly, both must agree to the cent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from book_identities import assert_identities
from structlog.testing import capture_logs

from trader.core.events import Bar, Fill, FillCorrection, Side
from trader.core.instruments import AssetClass, Instrument
from trader.engine.build import build_engine
from trader.engine.config import base_timeframes, load_config
from trader.engine.portfolio import UNATTRIBUTED, Book, Portfolio
from trader.replay.observers import RunTrace

ROOT = Path(__file__).resolve().parents[3]

SPY = Instrument(id="SPY", symbol="SPY", venue="V", asset_class=AssetClass.EQUITY,
                 multiplier=2.0)


def portfolio(split: dict[str, float] | None = None) -> Portfolio:
    pf = Portfolio({"SPY": SPY}, 100_000.0)
    if split is not None:
        # the same fraction of every fill to each model (signed like the fill)
        pf.set_attribution(lambda f: {m: w * f.quantity * f.side.sign for m, w in split.items()})
    return pf


def book_state(book: Book) -> dict[str, Any]:
    return {"cash": book.cash, "commission": book.commission,
            "positions": {i: (p.quantity, p.avg_price, p.realized)
                          for i, p in book.positions.items()}}


def state(pf: Portfolio) -> dict[str, Any]:
    return {"account": book_state(pf.account), "nav": pf.nav, "hwm": pf.hwm,
            "drawdown": pf.drawdown, "gross": pf.gross,
            "models": {m: book_state(b) for m, b in pf.models.items()}}


def assert_same(a: Any, b: Any) -> None:
    """Equal up to float rounding (a correction adds a difference; the reference books once)."""
    if isinstance(a, dict):
        assert a.keys() == b.keys()
        for k in a:
            assert_same(a[k], b[k])
    elif isinstance(a, tuple):
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert a == pytest.approx(b, abs=1e-9)


def run(fills: list[Fill], fix: FillCorrection | None, *, after: int,
        split: dict[str, float] | None = None) -> Portfolio:
    """Book ``fills``, the correction after the first ``after`` of them, then a mark."""
    pf = portfolio(split)
    for i, f in enumerate(fills):
        if i == after and fix is not None:
            pf.on_fill_correction(fix)
        pf.on_fill(f)
    if after >= len(fills) and fix is not None:
        pf.on_fill_correction(fix)
    pf.on_bar(Bar(99, "SPY", 86400, 1, 100, 130, 90, 107.0, 1))
    return pf


def fill(n: int, side: Side, qty: float, price: float, fee: float = 0.0, **kw: Any) -> Fill:
    return Fill(n, f"o{n}", f"t{n}", "SPY", side, qty, price, fee, **kw)


SPLIT = {"a": 0.75, "b": 0.25}


def test_commission_correction_is_split_like_the_fill_and_moves_nav() -> None:
    fills = [fill(1, Side.BUY, 10, 100.0, 1.0)]
    marked = run(fills, None, after=1, split=SPLIT)
    nav, hwm = marked.nav, marked.hwm
    marked.on_fill_correction(FillCorrection(5, "t1", "o1", commission=3.0))
    assert marked.nav == pytest.approx(nav - 2.0)
    # The high-water mark was reached; the correction shows as a drawdown from it.
    assert marked.hwm == hwm and marked.drawdown == pytest.approx(1 - marked.nav / hwm)
    pf = run(fills, FillCorrection(5, "t1", "o1", commission=3.0), after=1, split=SPLIT)
    assert pf.account.commission == 3.0
    assert pf.models["a"].commission == pytest.approx(2.25)
    assert pf.models["b"].commission == pytest.approx(0.75)
    assert pf.models["a"].cash == pytest.approx(-7.5 * 100 * 2 - 2.25)
    assert UNATTRIBUTED not in pf.models  # the split covered the whole fill
    reference = run([fill(1, Side.BUY, 10, 100.0, 3.0)], None, after=1, split=SPLIT)
    assert_same(state(pf), state(reference))
    assert_identities(pf)


def test_price_correction_of_an_opening_fill_moves_the_average_price() -> None:
    fills = [fill(1, Side.BUY, 10, 100.0, 1.0), fill(2, Side.BUY, 5, 104.0, 0.5)]
    fix = FillCorrection(3, "t1", "o1", price=101.0, quantity=10.0)
    pf = run(fills, fix, after=2, split=SPLIT)
    pos = pf.account.positions["SPY"]
    assert pos.avg_price == pytest.approx((10 * 101 + 5 * 104) / 15)
    reference = run([fill(1, Side.BUY, 10, 101.0, 1.0), fills[1]], None, after=2, split=SPLIT)
    assert_same(state(pf), state(reference))
    assert_identities(pf)


def test_price_correction_of_a_closing_fill_changes_realized_pnl() -> None:
    fills = [fill(1, Side.BUY, 10, 100.0), fill(2, Side.SELL, 4, 110.0),
             fill(3, Side.BUY, 2, 108.0)]
    fix = FillCorrection(4, "t2", "o2", price=109.0)
    pf = run(fills, fix, after=3, split=SPLIT)
    pos = pf.account.positions["SPY"]
    assert pos.realized == pytest.approx(4 * 9 * 2)
    reference = run([fills[0], fill(2, Side.SELL, 4, 109.0), fills[2]], None, after=3,
                    split=SPLIT)
    assert_same(state(pf), state(reference))
    assert_identities(pf)


def test_price_correction_of_a_fill_through_zero() -> None:
    fills = [fill(1, Side.BUY, 10, 100.0), fill(2, Side.SELL, 15, 110.0, 1.5)]
    fix = FillCorrection(3, "t2", "o2", price=111.0, commission=2.0)
    pf = run(fills, fix, after=2)
    reference = run([fills[0], fill(2, Side.SELL, 15, 111.0, 2.0)], None, after=2)
    assert pf.account.positions["SPY"].avg_price == pytest.approx(111.0)
    assert_same(state(pf), state(reference))
    assert_identities(pf)


def test_price_correction_of_a_lot_closed_since_lands_in_realized_pnl() -> None:
    fills = [fill(1, Side.BUY, 10, 100.0), fill(2, Side.SELL, 10, 105.0),
             fill(3, Side.BUY, 3, 106.0)]  # a new lot: its price must not move
    fix = FillCorrection(4, "t1", "o1", price=99.0)
    pf = run(fills, fix, after=3, split=SPLIT)
    reference = run([fill(1, Side.BUY, 10, 99.0), *fills[1:]], None, after=3, split=SPLIT)
    assert pf.account.positions["SPY"].avg_price == pytest.approx(106.0)
    assert pf.account.positions["SPY"].realized == pytest.approx(10 * 6 * 2)
    assert_same(state(pf), state(reference))
    assert_identities(pf)


def test_price_correction_of_a_lot_partly_closed_since_keeps_the_identities() -> None:
    # Not exact between realized and unrealized (the close used the old average), but
    # cash and NAV are, and the identities hold.
    fills = [fill(1, Side.BUY, 10, 100.0, 1.0), fill(2, Side.SELL, 4, 105.0, 1.0)]
    pf = run(fills, FillCorrection(3, "t1", "o1", price=102.0), after=2, split=SPLIT)
    reference = run([fill(1, Side.BUY, 10, 102.0, 1.0), fills[1]], None, after=2, split=SPLIT)
    assert pf.account.cash == pytest.approx(reference.account.cash)
    assert pf.nav == pytest.approx(reference.nav)
    for m in SPLIT:
        assert pf.models[m].equity(pf.marks) == pytest.approx(
            reference.models[m].equity(reference.marks))
    assert_identities(pf)


def test_price_correction_with_the_fee_taken_in_the_instrument() -> None:
    crypto = {"fee_asset": "BTC", "fee_quantity": 0.01, "fee_in_instrument": True}
    fills = [fill(1, Side.BUY, 1.0, 100.0, 1.0, **crypto)]
    pf = run(fills, FillCorrection(2, "t1", "o1", price=102.0), after=1, split=SPLIT)
    reference = run([fill(1, Side.BUY, 1.0, 102.0, 1.0, **crypto)], None, after=1, split=SPLIT)
    assert_same(state(pf), state(reference))


def test_a_correction_applied_twice_changes_nothing_the_second_time() -> None:
    pf = run([fill(1, Side.BUY, 10, 100.0, 1.0)], None, after=1, split=SPLIT)
    fix = FillCorrection(2, "t1", "o1", commission=2.0, price=100.5)
    pf.on_fill_correction(fix)
    once = state(pf)
    pf.on_fill_correction(fix)
    assert state(pf) == once


def test_unknown_trade_and_quantity_change_are_logged_and_not_applied() -> None:
    pf = run([fill(1, Side.BUY, 10, 100.0, 1.0)], None, after=1, split=SPLIT)
    before = state(pf)
    with capture_logs() as logs:
        pf.on_fill_correction(FillCorrection(2, "t-gone", "o9", commission=5.0))
        pf.on_fill_correction(FillCorrection(3, "t1", "o1", quantity=12.0))
    assert state(pf) == before
    events = {e["event"]: e for e in logs}
    assert events["fill_correction_for_unknown_trade"]["log_level"] == "warning"
    assert events["fill_correction_for_unknown_trade"]["trade_id"] == "t-gone"
    bad = events["fill_quantity_correction_not_applied"]
    assert bad["log_level"] == "error" and (bad["booked"], bad["corrected"]) == (10.0, 12.0)


def test_listeners_hear_what_the_correction_changed() -> None:
    pf = run([fill(1, Side.BUY, 10, 100.0), fill(2, Side.SELL, 10, 110.0, 1.0)], None, after=2)
    heard = []
    pf.correction_listeners.append(lambda fix, applied: heard.append(applied))
    pf.on_fill_correction(FillCorrection(3, "t2", "o2", price=109.0, commission=1.5))
    [applied] = heard
    assert applied.instrument_id == "SPY"
    assert applied.commission == pytest.approx(0.5)
    assert applied.realized == pytest.approx(-10 * 1 * 2)
    assert applied.cash == pytest.approx(-10 * 1 * 2 - 0.5)


def test_memory_is_bounded_to_the_most_recent_fills(monkeypatch: pytest.MonkeyPatch) -> None:
    import trader.engine.portfolio as portfolio_module

    monkeypatch.setattr(portfolio_module, "FILL_MEMORY", 3)
    pf = portfolio()
    for n in range(1, 6):
        pf.on_fill(fill(n, Side.BUY, 1, 100.0))
    cash = pf.account.cash
    pf.on_fill_correction(FillCorrection(9, "t2", "o2", commission=1.0))  # forgotten
    assert pf.account.cash == cash
    pf.on_fill_correction(FillCorrection(9, "t3", "o3", commission=1.0))
    assert pf.account.cash == pytest.approx(cash - 1.0)


def test_the_run_trace_counts_the_corrected_commission() -> None:
    engine = build_engine(load_config(ROOT / "config" / "backtest.yaml"))
    trace = RunTrace(engine, base_timeframes(engine.cfg))
    pf = engine.portfolio
    pf.remember_fills = True  # as behind a venue (the simulated exchange corrects nothing)
    pf.on_fill(Fill(1, "o1", "t1", "SPY", Side.BUY, 10.0, 100.0, 1.0))
    pf.on_fill_correction(FillCorrection(2, "t1", "o1", commission=1.75))
    assert trace.commission["SPY"] == pytest.approx(1.75) == pf.account.commission
    assert trace.contribution()["SPY"]["commission"] == pytest.approx(1.75)


def test_fills_are_remembered_for_corrections_only_behind_a_venue() -> None:
    """The simulated exchange never corrects a fill: a backtest books fills without the
    bookkeeping; a session (or its journal's replay) with a venue's gateway keeps it."""
    from trader.live.session import RecordedGateway

    cfg = load_config(ROOT / "config" / "backtest.yaml")
    sim_only = build_engine(cfg)
    assert not sim_only.portfolio.remember_fills
    sim_only.portfolio.on_fill(Fill(1, "o1", "t1", "SPY", Side.BUY, 10.0, 100.0, 1.0))
    with capture_logs() as logs:
        sim_only.portfolio.on_fill_correction(FillCorrection(2, "t1", "o1", commission=2.0))
    assert sim_only.portfolio.account.commission == 1.0
    assert [e["event"] for e in logs] == ["fill_correction_for_unknown_trade"]
    venue = build_engine(cfg, mode="paper", gateways={"sim": RecordedGateway("sim")})
    assert venue.portfolio.remember_fills
