"""Reconciliation compares amounts relative to their size, and never contradicts stored fills."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.sim import SimulatedGateway
from trader.core.clock import ReplayClock
from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderUpdate, Side
from trader.core.instruments import Instrument
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router
from trader.live.reconcile import ReconcilePolicy, ReconciliationError, agree, reconcile
from trader.store import Store

INSTRUMENTS = {"AAA": Instrument(id="AAA", symbol="AAA", venue="X", asset_class="equity")}
BIG = 2_000_000_000.0  # a fund-sized balance: float rounding alone exceeds a cent here
MIN = 60 * 1_000_000_000


def _bar(i: int, px: float) -> Bar:
    return Bar((i + 1) * MIN, "AAA", 60, i * MIN, px, px, px, px, 1e9)


def _life(store: Store, gw: SimulatedGateway, ts: int) -> tuple[Router, Portfolio]:
    session = store.begin_session("paper", "t", ts)
    router = Router({"sim": gw}, ReplayClock(ts), id_prefix=session.prefix,
                    journal=store.journal(session))
    pf = Portfolio(INSTRUMENTS, BIG)
    router.fill_listeners.append(pf.on_fill)
    for f in store.session_fills("paper", ["sim"]):
        pf.on_fill(f)

    def sink(event: Any) -> None:
        if isinstance(event, Fill):
            router.on_fill(event)
        elif isinstance(event, OrderUpdate):
            router.on_update(event)

    gw.bind(sink)
    return router, pf


def test_agree_is_relative_to_the_larger_amount():
    assert agree(BIG, BIG + 0.5, 0.01, 1e-9)
    assert not agree(100.0, 100.5, 0.01, 1e-9)
    assert not agree(BIG, BIG * 1.001, 0.01, 1e-9)


async def test_large_balances_within_rounding_reconcile(store: Store) -> None:
    gw = SimulatedGateway(INSTRUMENTS, initial_cash=BIG, history_limit=None)
    router, _pf = _life(store, gw, 0)
    gw.on_bar(_bar(0, 123.4567))
    router.submit(OrderRequest(MIN, router.next_client_order_id(), "AAA", Side.BUY, 1_234_567.0))
    gw.on_bar(_bar(1, 123.4571))
    assert gw.positions["AAA"] == 1_234_567.0
    # The broker books cash and quantity with its own rounding: a few cents and a
    # millionth of a share off on a two-billion balance are not a disagreement.
    gw.cash["USD"] += 0.37
    gw.positions["AAA"] += 1e-6
    router2, pf2 = _life(store, gw, 2 * MIN)
    report = await reconcile(store, gw, router2, pf2, ReconcilePolicy("refuse"))
    assert report.consistent, report.text()
    # A real difference is still one.
    gw.cash["USD"] -= 1_000_000.0
    router3, pf3 = _life(store, gw, 3 * MIN)
    with pytest.raises(ReconciliationError, match="cash USD"):
        await reconcile(store, gw, router3, pf3, ReconcilePolicy("refuse"))


@pytest.mark.parametrize("venue_says", [None, OrderStatus.CANCELED])
async def test_an_order_its_stored_fills_cover_ends_filled(store: Store, venue_says) -> None:
    gw = SimulatedGateway(INSTRUMENTS, initial_cash=BIG, history_limit=None)
    router, _pf = _life(store, gw, 0)
    gw.on_bar(_bar(0, 100.0))
    coid = router.next_client_order_id()
    router.submit(OrderRequest(MIN, coid, "AAA", Side.BUY, 10.0))
    # The fill is stored, then the process dies before the FILLED status is written.
    fill = Fill(2 * MIN, coid, "sim-1", "AAA", Side.BUY, 10.0, 100.0, 0.0, "")
    assert router.journal.fill_received(router.order(coid), fill)
    assert store.order_row(coid)["status"] == "ACCEPTED"
    fresh = SimulatedGateway(INSTRUMENTS, initial_cash=BIG, history_limit=None)
    fresh.positions["AAA"] = 10.0
    fresh.cash["USD"] = BIG - 1000.0
    if venue_says is not None:  # the venue knows the order but reports it cancelled
        fresh.on_bar(_bar(1, 100.0))
        fresh.submit(OrderRequest(MIN, coid, "AAA", Side.BUY, 10.0))
        fresh.cancel(coid)
    router2, pf2 = _life(store, fresh, 3 * MIN)
    await reconcile(store, fresh, router2, pf2, ReconcilePolicy("adopt"))
    assert store.order_row(coid)["status"] == "FILLED"
    assert not router2.active
