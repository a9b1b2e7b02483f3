"""Reconciliation against the SimulatedGateway's broker-side record."""

from __future__ import annotations

from typing import Any

import pytest

from gateways.sim import SimulatedGateway
from trader.core.clock import ReplayClock
from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderUpdate, Side
from trader.core.instruments import Instrument
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router
from trader.live.reconcile import (
    NEVER_SENT,
    ReconcilePolicy,
    ReconciliationError,
    positions_equal,
    reconcile,
)
from trader.store import Store
from trader.store.tables import FILLS

S = OrderStatus
INSTRUMENTS = {
    "AAA": Instrument(id="AAA", symbol="AAA", venue="X", asset_class="equity"),
    "BBB": Instrument(id="BBB", symbol="BBB", venue="X", asset_class="equity"),
}
CASH = 100_000.0
MIN = 60 * 1_000_000_000


def bar(inst: str, i: int, px: float = 100.0) -> Bar:
    return Bar((i + 1) * MIN, inst, 60, i * MIN, px, px + 1, px - 1, px, 1000.0)


class Process:
    """One life of the daemon: its own router, journal and portfolio over the shared store."""

    def __init__(self, store: Store, gw: SimulatedGateway, ts: int) -> None:
        self.clock = ReplayClock(ts)
        self.store = store
        session = store.begin_session("paper", "t", ts)
        self.journal = store.journal(session, clock=self.clock)
        self.router = Router({"sim": gw}, self.clock, id_prefix=session.prefix,
                             journal=self.journal)
        self.portfolio = Portfolio(INSTRUMENTS, CASH)
        self.router.fill_listeners.append(self.portfolio.on_fill)
        for fill in store.fills(gateway="sim"):
            self.portfolio.on_fill(fill)
        self.gw = gw
        gw.bind(self.sink)

    def sink(self, event: Any) -> None:
        if isinstance(event, Fill):
            self.router.on_fill(event)
        elif isinstance(event, OrderUpdate):
            self.router.on_update(event)

    def buy(self, inst: str, qty: float, side: Side = Side.BUY) -> str:
        req = OrderRequest(self.clock.now(), self.router.next_client_order_id(), inst, side, qty)
        self.router.submit(req)
        return req.client_order_id

    def crash(self) -> None:
        """The process dies: events the broker sends from now on reach nobody."""
        self.gw.bind(lambda _e: None)


def _gw() -> SimulatedGateway:
    return SimulatedGateway(INSTRUMENTS, initial_cash=CASH, history_limit=None)


async def test_fills_missed_while_down_are_adopted_once(store: Store) -> None:
    gw = _gw()
    p1 = Process(store, gw, 0)
    gw.on_bar(bar("AAA", 0))
    a = p1.buy("AAA", 10)
    gw.on_bar(bar("AAA", 1))            # a fills while p1 is alive
    b = p1.buy("AAA", 5)
    c = p1.buy("BBB", 3, Side.SELL)
    p1.crash()
    gw.on_bar(bar("AAA", 2, 101.0))     # b fills while the daemon is down
    gw.on_bar(bar("BBB", 2, 50.0))      # c too
    assert store.count(FILLS) == 1

    p2 = Process(store, gw, 3 * MIN)
    assert p2.portfolio.position("AAA") == 10  # restored from the store
    report = await reconcile(store, gw, p2.router, p2.portfolio, ReconcilePolicy("refuse"))
    assert sorted(report.restored_orders) == sorted([b, c])
    assert sorted(report.adopted_fills) == ["sim-2", "sim-3"]
    assert report.consistent, report.text()
    assert store.count(FILLS) == 3
    assert positions_equal(store.positions(), gw.positions)
    assert positions_equal({i: p2.portfolio.position(i) for i in INSTRUMENTS}, gw.positions)
    assert p2.portfolio.account.cash == pytest.approx(gw.cash["USD"])
    assert store.order_row(b)["status"] == "FILLED" and store.order_row(c)["status"] == "FILLED"
    assert store.order_row(a)["status"] == "FILLED"
    assert not p2.router.active

    # A second reconciliation (another restart) finds nothing new and writes no fill twice.
    p3 = Process(store, gw, 4 * MIN)
    again = await reconcile(store, gw, p3.router, p3.portfolio, ReconcilePolicy("refuse"))
    assert again.adopted_fills == [] and again.restored_orders == [] and again.consistent
    assert store.count(FILLS) == 3
    assert list(gw.submitted) == [a, b, c]


async def test_order_written_ahead_but_never_sent_is_closed_not_resent(store: Store) -> None:
    gw = _gw()
    p1 = Process(store, gw, 0)
    gw.on_bar(bar("AAA", 0))
    # Crash between the write-ahead and the gateway call: simulate by journaling only.
    from trader.engine.orders import Order

    req = OrderRequest(0, p1.router.next_client_order_id(), "AAA", Side.BUY, 7)
    p1.journal.order_created(Order(req))
    p1.crash()
    p2 = Process(store, gw, MIN)
    report = await reconcile(store, gw, p2.router, p2.portfolio)
    assert report.vanished_orders == [req.client_order_id]
    row = store.order_row(req.client_order_id)
    assert row["status"] == "REJECTED" and row["reason"] == NEVER_SENT
    assert list(gw.submitted) == []  # never sent, then and now
    assert report.consistent


async def test_broker_status_is_applied_to_restored_orders(store: Store) -> None:
    gw = _gw()
    p1 = Process(store, gw, 0)
    gw.on_bar(bar("AAA", 0))
    p1.crash()  # the ACCEPTED the broker sends is lost...
    coid = p1.buy("AAA", 4)
    assert store.order_row(coid)["status"] == "SUBMITTED"
    p2 = Process(store, gw, MIN)
    report = await reconcile(store, gw, p2.router, p2.portfolio)
    assert report.status_changes == [(coid, "SUBMITTED", "ACCEPTED")]
    assert coid in p2.router.active  # still working at the broker: the router owns it again
    assert p2.router.open_quantity("AAA") == 4
    p2.gw.on_bar(bar("AAA", 1))      # and its fill reaches the new process normally
    assert store.order_row(coid)["status"] == "FILLED"
    assert p2.portfolio.position("AAA") == 4


async def test_differences_refuse_to_start_with_a_clear_report(store: Store) -> None:
    gw = _gw()
    p1 = Process(store, gw, 0)
    gw.on_bar(bar("AAA", 0))
    p1.buy("AAA", 10)
    gw.on_bar(bar("AAA", 1))
    # Someone trades the account by hand: a position and an open order we never wrote.
    gw.bind(lambda _e: None)
    gw.submit(OrderRequest(MIN, "manual-1", "BBB", Side.BUY, 2))
    gw.on_bar(bar("BBB", 2, 50.0))
    gw.submit(OrderRequest(3 * MIN, "manual-2", "AAA", Side.SELL, 1, limit_price=500.0,
                           order_type="LIMIT"))
    p2 = Process(store, gw, 3 * MIN)
    with pytest.raises(ReconciliationError) as err:
        await reconcile(store, gw, p2.router, p2.portfolio, ReconcilePolicy("refuse"))
    text = str(err.value)
    assert "position BBB: ours 0, broker 2" in text
    assert "broker has open order manual-2 that the store does not know" in text
    assert "broker reports fill sim-2 of an order the store does not know" in text
    assert "refusing to start" in text
    assert store.count(FILLS) == 1  # the stranger's fill was not taken as ours
    assert store.risk_events("reconcile_refused")
    assert err.value.report.unknown_order_fills == ["sim-2"]


async def test_policy_adopt_takes_the_brokers_truth(store: Store) -> None:
    gw = _gw()
    p1 = Process(store, gw, 0)
    gw.on_bar(bar("AAA", 0))
    p1.buy("AAA", 10)
    gw.on_bar(bar("AAA", 1))
    p1.crash()
    gw.submit(OrderRequest(MIN, "manual-2", "AAA", Side.SELL, 1, limit_price=500.0,
                           order_type="LIMIT"))
    gw.positions["BBB"] = 2.0  # e.g. a transfer in: no fill exists for it
    p2 = Process(store, gw, 3 * MIN)
    report = await reconcile(store, gw, p2.router, p2.portfolio, ReconcilePolicy("adopt"))
    assert report.adopted_broker_truth
    assert report.position_diffs == {"BBB": (0.0, 2.0)}
    assert p2.portfolio.position("BBB") == 2.0
    assert "manual-2" in p2.router.active
    assert store.order_row("manual-2")["status"] == "ACCEPTED"
    events = store.risk_events("reconcile_adopted")
    assert events and events[0]["detail"]["position_diffs"] == {"BBB": [0.0, 2.0]}
    snap = store.latest_snapshot("sim")
    assert snap["positions"] == {"AAA": 10.0, "BBB": 2.0}


def test_policy_comes_from_the_config() -> None:
    from trader.engine.config import AppConfig

    cfg = AppConfig.model_validate({
        "instruments": [{"id": "AAA", "symbol": "AAA", "venue": "X", "asset_class": "equity"}],
        "portfolio": {"currency": "EUR"}, "store": {"reconcile_policy": "adopt"}})
    policy = ReconcilePolicy.from_config(cfg)
    assert (policy.mode, policy.currency) == ("adopt", "EUR")
    assert ReconcilePolicy.from_config(AppConfig.model_validate(
        {"instruments": cfg.model_dump()["instruments"]})).mode == "refuse"


async def test_policy_adopt_stores_a_strangers_fills_once(store: Store) -> None:
    gw = _gw()
    p1 = Process(store, gw, 0)
    gw.on_bar(bar("AAA", 0))
    p1.buy("AAA", 10)
    gw.on_bar(bar("AAA", 1))
    p1.crash()
    gw.submit(OrderRequest(MIN, "manual-1", "BBB", Side.BUY, 2))  # traded by hand
    gw.on_bar(bar("BBB", 2, 50.0))
    p2 = Process(store, gw, 3 * MIN)
    report = await reconcile(store, gw, p2.router, p2.portfolio, ReconcilePolicy("adopt"))
    assert report.unknown_order_fills == ["sim-2"] and report.adopted_broker_truth
    assert report.position_diffs == {}  # the adopted fill explains the position
    assert p2.portfolio.position("BBB") == 2 and store.count(FILLS) == 2
    assert store.positions("sim") == {"AAA": 10.0, "BBB": 2.0}
    p3 = Process(store, gw, 4 * MIN)
    again = await reconcile(store, gw, p3.router, p3.portfolio, ReconcilePolicy("refuse"))
    assert again.consistent and store.count(FILLS) == 2


async def test_replays_in_the_same_database_never_leak_into_a_trading_account(
    store: Store,
) -> None:
    from trader.store import BufferedJournal

    # A stored replay: one filled order (execution "sim-1") and one left open at the end.
    replay_gw = _gw()
    session = store.begin_session("replay", "bt", 0)
    journal = BufferedJournal(store, session, fill_scope=f"@{session.prefix}")
    replay = Router({"sim": replay_gw}, ReplayClock(0), id_prefix=session.prefix,
                    journal=journal)
    replay_gw.bind(lambda e: replay.on_fill(e) if isinstance(e, Fill) else replay.on_update(e))
    replay_gw.on_bar(bar("AAA", 0))
    replay.submit(OrderRequest(0, replay.next_client_order_id(), "AAA", Side.BUY, 50))
    replay_gw.on_bar(bar("AAA", 1))
    left_open = replay.next_client_order_id()
    replay.submit(OrderRequest(MIN, left_open, "AAA", Side.BUY, 5))
    journal.flush()
    assert store.fills()[0].trade_id == "sim-1"

    # A paper session on its own simulator: its first execution is also "sim-1".
    gw = _gw()
    p1 = Process(store, gw, 0)
    assert p1.portfolio.position("AAA") == 0  # the replay's 50 are not ours
    gw.on_bar(bar("AAA", 0))
    p1.buy("AAA", 10)
    p1.crash()
    gw.on_bar(bar("AAA", 1))
    p2 = Process(store, gw, 2 * MIN)
    report = await reconcile(store, gw, p2.router, p2.portfolio, ReconcilePolicy("refuse"))
    assert report.adopted_fills == ["sim-1"] and report.consistent
    assert left_open not in report.restored_orders and left_open not in p2.router.active
    assert store.order_row(left_open)["status"] == "ACCEPTED"  # replay history untouched
    assert store.positions("sim") == {"AAA": 10.0}
    assert p2.portfolio.position("AAA") == 10
