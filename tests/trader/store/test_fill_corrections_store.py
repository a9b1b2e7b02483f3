"""A venue's fill correction is written into the stored fill, so a restart restores it."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from trader.core.clock import ReplayClock
from trader.core.events import Fill, FillCorrection, OrderRequest, Side
from trader.core.instruments import AssetClass, Instrument
from trader.engine.orders import Order
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router
from trader.store import Store
from trader.store.orders import BufferedJournal

SPY = Instrument(id="SPY", symbol="SPY", venue="V", asset_class=AssetClass.EQUITY)


def _session(store: Store, gateway: str = "ib") -> tuple[Router, Portfolio, Order]:
    """A paper session's router and portfolio, wired as ``build_engine`` wires them,
    with one order written ahead."""
    session = store.begin_session("paper", "t", 0)
    journal = store.journal(session)
    router = Router({}, ReplayClock(0), id_prefix=session.prefix, journal=journal)
    pf = Portfolio({"SPY": SPY}, 10_000.0)
    router.fill_listeners.append(pf.on_fill)
    router.correction_listeners.append(pf.on_fill_correction)
    order = Order(OrderRequest(1, f"{session.prefix}-1", "SPY", Side.BUY, 10.0, gateway=gateway))
    journal.order_created(order)
    router.adopt(order)
    return router, pf, order


def test_a_corrected_fill_is_restored_as_corrected(store: Store) -> None:
    router, pf, order = _session(store)
    coid = order.client_order_id
    router.on_fill(Fill(2, coid, "e-1", "SPY", Side.BUY, 10.0, 100.0, 0.0))
    router.on_fill(Fill(3, coid, "e-2", "SPY", Side.SELL, 4.0, 101.0, 0.0))
    router.on_fill_correction(FillCorrection(4, "e-1", coid, commission=1.25))
    router.on_fill_correction(FillCorrection(5, "e-2", coid, price=101.5, quantity=4.0))
    rows = {r["trade_id"]: r for r in store.fill_rows()}
    assert (rows["e-1"]["commission"], rows["e-1"]["price"]) == (1.25, 100.0)
    assert (rows["e-2"]["commission"], rows["e-2"]["price"]) == (0.0, 101.5)
    # The next start restores its books from the stored fills: the same books.
    restored = Portfolio({"SPY": SPY}, 10_000.0)
    for fill in store.session_fills("paper", ["ib"]):
        restored.on_fill(fill)
    assert restored.account.cash == pytest.approx(pf.account.cash)
    assert restored.account.cash == pytest.approx(10_000 - 1000 - 1.25 + 4 * 101.5)
    assert restored.account.commission == pytest.approx(1.25)
    assert restored.account.positions["SPY"].realized == pytest.approx(
        pf.account.positions["SPY"].realized)
    assert restored.nav == pytest.approx(pf.nav)


def test_only_the_fill_of_that_gateway_is_corrected(store: Store) -> None:
    router, _pf, order = _session(store)
    coid = order.client_order_id
    router.on_fill(Fill(2, coid, "e-1", "SPY", Side.BUY, 10.0, 100.0, 0.0))
    # The same execution id at another gateway is another fill.
    other = store.journal(store.begin_session("paper", "t", 0), default_gateway="alpaca")
    other.fill_received(None, Fill(2, "manual-1", "e-1", "SPY", Side.BUY, 1.0, 50.0, 0.0))
    router.on_fill_correction(FillCorrection(4, "e-1", coid, commission=2.0))
    rows = {r["gateway"]: r for r in store.fill_rows()}
    assert rows["ib"]["commission"] == 2.0 and rows["alpaca"]["commission"] == 0.0


def test_a_correction_for_an_order_the_router_forgot_finds_its_gateway(store: Store) -> None:
    # After a restart the router holds only open orders; the store knows the order's gateway.
    router, _pf, order = _session(store)
    coid = order.client_order_id
    router.on_fill(Fill(2, coid, "e-1", "SPY", Side.BUY, 10.0, 100.0, 0.0))
    fresh = store.journal(store.begin_session("paper", "t", 5))
    fresh.fill_corrected(None, FillCorrection(6, "e-1", coid, commission=0.75))
    assert store.fill_rows()[0]["commission"] == 0.75


def test_a_correction_of_an_unstored_fill_is_a_warning(store: Store) -> None:
    router, _pf, order = _session(store)
    with capture_logs() as logs:
        router.on_fill_correction(FillCorrection(4, "e-9", order.client_order_id,
                                                 commission=1.0))
    [warning] = [e for e in logs if e["event"] == "fill_correction_for_unstored_fill"]
    assert warning["trade_id"] == "e-9" and warning["gateway"] == "ib"
    assert store.fill_rows() == []


def test_a_buffered_journal_corrects_a_fill_it_has_not_written_yet(store: Store) -> None:
    session = store.begin_session("replay", "t", 0)
    journal = BufferedJournal(store, session, fill_scope=f"@{session.prefix}")
    order = Order(OrderRequest(1, f"{session.prefix}-1", "SPY", Side.BUY, 1.0, gateway="sim"))
    journal.order_created(order)
    journal.fill_received(order, Fill(2, order.client_order_id, "s-1", "SPY", Side.BUY, 1.0,
                                      10.0, 0.0))
    journal.fill_corrected(order, FillCorrection(3, "s-1", order.client_order_id,
                                                 commission=0.5))
    assert [r["commission"] for r in store.fill_rows()] == [0.5]
