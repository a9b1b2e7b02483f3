"""The router writes ahead through the store; broker events apply once, in a legal order."""

from __future__ import annotations

from typing import Any

import pytest
from structlog.testing import capture_logs

from gateways.base import AccountReport, OrderReport
from trader.core.clock import ReplayClock
from trader.core.events import Fill, OrderRequest, OrderStatus, OrderUpdate, Side
from trader.engine.router import Router
from trader.store import Store
from trader.store.tables import EVENTS, FILLS, ORDERS

S = OrderStatus


class WitnessGateway:
    """A gateway stand-in that, on each submit, looks the order up in the store."""

    name = "sim"

    def __init__(self, store: Store) -> None:
        self.store = store
        self.seen_in_store: list[dict[str, Any] | None] = []
        self.submitted: list[str] = []

    def bind(self, sink: Any) -> None:
        self.sink = sink

    def submit(self, order: OrderRequest) -> None:
        # A separate connection: sees only what was committed.
        self.seen_in_store.append(self.store.order_row(order.client_order_id))
        self.submitted.append(order.client_order_id)

    def cancel(self, client_order_id: str) -> None:
        return None

    async def open_orders(self) -> list[OrderReport]:
        return []

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        return None

    async def fills_since(self, ts: int) -> list[Fill]:
        return []

    async def account(self) -> AccountReport:
        return AccountReport()


def _router(store: Store, clock: ReplayClock, gw: WitnessGateway, mode: str = "paper"):
    session = store.begin_session(mode, "test", clock.now())
    journal = store.journal(session)
    router = Router({"sim": gw}, clock, id_prefix=session.prefix, start_seq=session.start_seq,
                    journal=journal)
    return router, journal, session


def _request(router: Router, ts: int, qty: float = 10.0, side: Side = Side.BUY) -> OrderRequest:
    return OrderRequest(ts, router.next_client_order_id(), "AAA", side, qty)


def _fill(coid: str, trade: str, qty: float, ts: int, price: float = 100.0) -> Fill:
    return Fill(ts, coid, trade, "AAA", Side.BUY, qty, price, 0.1, "B1")


def test_order_is_committed_pending_submit_before_the_gateway_sees_it(store: Store) -> None:
    clock = ReplayClock(1_000)
    gw = WitnessGateway(store)
    router, _, _ = _router(store, clock, gw)
    order = router.submit(_request(router, 1_000))
    assert order is not None
    seen = gw.seen_in_store[0]
    assert seen is not None, "the gateway got an order the store did not have"
    events = store.order_events(order.client_order_id)
    assert [e["to_status"] for e in events] == ["PENDING_SUBMIT", "SUBMITTED"]
    assert events[0]["from_status"] is None and events[1]["from_status"] == "PENDING_SUBMIT"
    assert store.order_row(order.client_order_id)["status"] == "SUBMITTED"


def test_every_status_change_is_an_event_and_repeats_change_nothing(store: Store) -> None:
    clock = ReplayClock(1_000)
    router, _, _ = _router(store, clock, WitnessGateway(store))
    coid = router.submit(_request(router, 1_000)).client_order_id
    router.on_update(OrderUpdate(2_000, coid, S.ACCEPTED, "", "B1"))
    router.on_update(OrderUpdate(2_001, coid, S.ACCEPTED, "", "B1"))  # duplicate
    router.on_fill(_fill(coid, "t1", 4, 3_000))
    router.on_fill(_fill(coid, "t1", 4, 3_000))  # duplicate execution
    router.on_fill(_fill(coid, "t2", 6, 4_000, 101.0))
    router.on_fill(_fill(coid, "t2", 6, 4_000, 101.0))
    router.on_update(OrderUpdate(4_500, coid, S.FILLED))  # the status after its fills: a repeat
    assert [e["to_status"] for e in store.order_events(coid)] == [
        "PENDING_SUBMIT", "SUBMITTED", "ACCEPTED", "PARTIALLY_FILLED", "FILLED"]
    assert [e["ts"] for e in store.order_events(coid)] == [1_000, 1_000, 2_000, 3_000, 4_000]
    assert store.count(FILLS) == 2
    row = store.order_row(coid)
    assert row["status"] == "FILLED" and row["broker_order_id"] == "B1"
    assert row["filled_quantity"] == pytest.approx(10)
    assert row["avg_fill_price"] == pytest.approx((4 * 100 + 6 * 101) / 10)


def test_out_of_order_and_illegal_transitions_are_refused_and_logged(store: Store) -> None:
    clock = ReplayClock(1_000)
    router, journal, _ = _router(store, clock, WitnessGateway(store))
    coid = router.submit(_request(router, 1_000)).client_order_id
    router.on_fill(_fill(coid, "t1", 10, 2_000))  # the fill overtakes its ACCEPTED
    events_before = store.count(EVENTS)
    with capture_logs() as logs:
        router.on_update(OrderUpdate(2_500, coid, S.ACCEPTED))  # late: FILLED -> ACCEPTED
        router.on_update(OrderUpdate(2_600, coid, S.CANCELED))  # FILLED -> CANCELED
    assert store.count(EVENTS) == events_before
    assert store.order_row(coid)["status"] == "FILLED"
    assert router.illegal_transitions == 2
    refused = [e for e in logs if e["event"] == "illegal_order_transition"]
    assert [e["transition"] for e in refused] == ["FILLED -> ACCEPTED", "FILLED -> CANCELED"]
    assert all(e["log_level"] == "error" and e["client_order_id"] == coid for e in refused)


def test_the_store_refuses_an_illegal_change_even_when_a_router_would_apply_it(
    store: Store,
) -> None:
    clock = ReplayClock(1_000)
    router, journal, _ = _router(store, clock, WitnessGateway(store))
    order = router.submit(_request(router, 1_000))
    router.on_update(OrderUpdate(2_000, order.client_order_id, S.CANCELED))
    # A second process (or a restarted router) holding a stale copy of the order:
    stale = store.load_order(order.client_order_id)
    stale.status = S.ACCEPTED
    fresh = store.journal(store.begin_session("paper", "other", 3_000))
    with capture_logs() as logs:
        fresh.order_changed(stale, 3_000)
    assert fresh.refused == 1
    assert store.order_row(order.client_order_id)["status"] == "CANCELED"
    assert any(e["event"] == "illegal_order_transition_refused_by_store" for e in logs)


def test_fills_are_idempotent_on_gateway_and_trade_id_across_restarts(store: Store) -> None:
    clock = ReplayClock(1_000)
    router, journal, _ = _router(store, clock, WitnessGateway(store))
    coid = router.submit(_request(router, 1_000)).client_order_id
    fill = _fill(coid, "t1", 5, 2_000)
    assert journal.fill_received(router.order(coid), fill) is True
    assert journal.fill_received(router.order(coid), fill) is False
    # A restarted process has a fresh router with no memory of trade ids: the store decides.
    router2, journal2, _ = _router(store, clock, WitnessGateway(store))
    got: list[Fill] = []
    router2.fill_listeners.append(got.append)
    router2.on_fill(fill)
    assert got == [] and store.count(FILLS) == 1
    # The same trade id from another gateway is another execution.
    other = store.journal(store.begin_session("paper", "x", 1), default_gateway="kraken")
    assert other.fill_received(None, Fill(2_000, "ext-1", "t1", "AAA", Side.BUY, 1, 1)) is True
    assert store.count(FILLS) == 2


def test_client_order_ids_are_unique_and_sequence_persisted_across_restarts(store: Store) -> None:
    clock = ReplayClock(1_000)
    ids = []
    prefixes = []
    for _restart in range(3):
        gw = WitnessGateway(store)
        router, _, session = _router(store, clock, gw)
        prefixes.append(session.prefix)
        for _ in range(4):
            ids.append(router.submit(_request(router, clock.now())).client_order_id)
        assert store.session(session.id)["last_seq"] == 4
    assert len(set(ids)) == len(ids) == 12
    assert len(set(prefixes)) == 3
    assert all(i.startswith(p + "-") for i, p in zip(ids, [p for p in prefixes for _ in range(4)],
                                                        strict=True))
    assert store.count(ORDERS) == 12
    # Ids are stable: what was written ahead is what the broker got.
    assert {r["client_order_id"] for r in store.order_rows()} == set(ids)


def test_order_rebuilt_from_store_recounts_fills(store: Store) -> None:
    clock = ReplayClock(1_000)
    router, journal, _ = _router(store, clock, WitnessGateway(store))
    order = router.submit(_request(router, 1_000, qty=10))
    coid = order.client_order_id
    router.on_update(OrderUpdate(1_500, coid, S.ACCEPTED, "", "B9"))
    # Crash between storing a fill and storing the status it implies:
    journal.fill_received(order, _fill(coid, "t1", 3, 2_000, 99.0))
    restored = store.load_open_orders()
    assert len(restored) == 1
    o = restored[0]
    assert o.client_order_id == coid and o.status is S.ACCEPTED
    assert o.filled_quantity == pytest.approx(3) and o.avg_fill_price == pytest.approx(99.0)
    assert o.trade_ids == {"t1"} and o.broker_order_id == "B9"
    assert o.request.quantity == 10 and o.request.side is Side.BUY


def test_a_failed_write_ahead_sends_nothing_and_leaves_no_phantom_order(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    clock = ReplayClock(1_000)
    gw = WitnessGateway(store)
    router, _, session = _router(store, clock, gw)
    first = router.submit(_request(router, 1_000))
    # A second router that (wrongly) reuses the same ids: the store's primary key stops it.
    twin = Router({"sim": gw}, clock, id_prefix=session.prefix, journal=store.journal(session))
    with pytest.raises(IntegrityError):
        twin.submit(_request(twin, 1_000, qty=99))
    assert gw.submitted == [first.client_order_id]
    assert twin.active == {} and twin.open_quantity("AAA") == 0
    assert store.order_row(first.client_order_id)["quantity"] == 10


def test_buffered_journal_writes_the_same_rows_in_bulk(store: Store) -> None:
    from trader.store import BufferedJournal

    clock = ReplayClock(1_000)
    gw = WitnessGateway(store)
    session = store.begin_session("replay", "bt", 0)
    journal = BufferedJournal(store, session, flush_every=2)
    router = Router({"sim": gw}, clock, id_prefix=session.prefix, journal=journal)
    a = router.submit(_request(router, 1_000)).client_order_id
    assert store.order_row(a) is None  # buffered: nothing written yet
    b = router.submit(_request(router, 1_001)).client_order_id  # second order: flush
    assert store.order_row(a)["status"] == "SUBMITTED"
    router.on_update(OrderUpdate(2_000, a, S.ACCEPTED))
    router.on_fill(_fill(a, "t1", 10, 3_000))
    router.on_fill(_fill(a, "t1", 10, 3_000))
    with capture_logs() as logs:
        router.on_update(OrderUpdate(3_500, a, S.ACCEPTED))
    c = router.submit(_request(router, 4_000)).client_order_id
    router.on_update(OrderUpdate(4_100, c, S.REJECTED, "no"))
    journal.flush()
    assert [e["to_status"] for e in store.order_events(a)] == [
        "PENDING_SUBMIT", "SUBMITTED", "ACCEPTED", "FILLED"]
    assert [e["to_status"] for e in store.order_events(c)] == [
        "PENDING_SUBMIT", "SUBMITTED", "REJECTED"]
    assert store.order_row(a)["filled_quantity"] == 10
    assert store.order_row(c)["status"] == "REJECTED" and store.order_row(c)["reason"] == "no"
    assert store.order_row(b)["status"] == "SUBMITTED"
    assert store.count(FILLS) == 1
    assert store.session(session.id)["last_seq"] == 3
    assert any(e["event"] == "illegal_order_transition" for e in logs)


def test_a_failed_write_does_not_poison_the_next_one(store: Store) -> None:
    from sqlalchemy.exc import IntegrityError

    store.record_risk_event(1, "a")
    with pytest.raises(IntegrityError), store.write() as conn:
        conn.execute(ORDERS.insert(), {"client_order_id": None})
    store.record_risk_event(2, "b")
    assert [e["kind"] for e in store.risk_events()] == ["a", "b"]
