"""The store's reconciliation (``trader.live.reconcile``) run against the ccxt gateway.

A daemon life places a limit order and dies; the venue fills part of it while
nobody listens; the next life restores the order from the store (SQLite), asks
the gateway by client order id and for fills since, and ends consistent with
the venue: the missed fill adopted once, position and cash equal.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from gateways.ccxt import CcxtGateway
from gateways.testing.harness import CcxtHarness, wait_until
from trader.core.clock import ReplayClock
from trader.core.events import Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router
from trader.live.reconcile import ReconcilePolicy, reconcile
from trader.store import Store

CASH = 100_000.0


class Life:
    """One run of the daemon over the shared store, with the venue's clock as its clock."""

    def __init__(self, store: Store, gw: CcxtGateway, ts: int) -> None:
        self.clock = ReplayClock(ts)
        session = store.begin_session("paper", "ccxt", ts)
        self.journal = store.journal(session)
        self.router = Router({gw.name: gw}, self.clock, id_prefix=session.prefix,
                             journal=self.journal)
        self.portfolio = Portfolio(gw.instruments, CASH)
        self.router.fill_listeners.append(self.portfolio.on_fill)
        for fill in store.fills(gateway=gw.name):
            self.portfolio.on_fill(fill)
        gw.bind(self.sink)

    def sink(self, event: Any) -> None:
        if isinstance(event, Fill):
            self.router.on_fill(event)
        elif isinstance(event, OrderUpdate):
            self.router.on_update(event)


async def test_restart_reconciles_open_order_and_missed_fill(
    harness: CcxtHarness, tmp_path: Path
) -> None:
    h = harness
    quote = "USDT" if h.venue == "binance" else "USD"
    h.standin.balances[quote] = CASH
    store = Store.open(f"sqlite:///{tmp_path / 'trader.db'}")
    try:
        gw1 = h.gateway(lambda _e: None)
        await gw1.connect()
        life1 = Life(store, gw1, h.standin.now_ms() * 1_000_000)
        coid = life1.router.next_client_order_id()
        order = life1.router.submit(OrderRequest(
            life1.clock.now(), coid, h.instrument_id, Side.BUY, 0.02, OrderType.LIMIT,
            45_000.0, gateway=gw1.name))
        assert order is not None
        await wait_until(lambda: order.status is OrderStatus.ACCEPTED, what="ack")
        store.flush()
        await gw1.close()  # the daemon dies
        time.sleep(0.002)
        missed = await h.standin.fill(coid, 0.01, 45_000.0)  # while nobody listens

        gw2 = h.gateway(lambda _e: None)
        await gw2.connect(stream=False)
        life2 = Life(store, gw2, h.standin.now_ms() * 1_000_000)
        report = await reconcile(store, gw2, life2.router, life2.portfolio,
                                 ReconcilePolicy("refuse", currency=quote))
        assert report.consistent, report.text()
        assert report.restored_orders == [coid]
        assert report.adopted_fills == [missed.trade_id]
        restored = life2.router.order(coid)
        assert restored is not None and restored.status is OrderStatus.PARTIALLY_FILLED
        assert restored.filled_quantity == pytest.approx(0.01)
        assert life2.portfolio.position(h.instrument_id) == pytest.approx(0.01)
        # a second reconciliation finds nothing new: the fill is stored once
        again = await reconcile(store, gw2, life2.router, life2.portfolio,
                                ReconcilePolicy("refuse", currency=quote))
        assert again.adopted_fills == [] and again.consistent
    finally:
        store.close()
