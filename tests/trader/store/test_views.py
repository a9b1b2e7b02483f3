"""What ``trader status`` reads of the store: the plain-SQL views, on both backends, and
on a bare ``sqlite3`` or psycopg connection the same as through the ``Store``."""

from __future__ import annotations

import subprocess
import sys

import pytest
from pg_server import pg_schema_url  # tests/harness

from risk.killswitch import KillSwitchRecord
from trader.core.events import Fill, OrderRequest, OrderStatus, Side
from trader.engine.orders import Order
from trader.store import Store
from trader.store.lifecycle import Lifecycle
from trader.store.views import (
    mode_positions,
    open_orders,
    postgres_query,
    postgres_uri,
    pyformat,
    resolve_url,
    sqlite_file,
    sqlite_query,
    store_status,
)


def _fill_in(store: Store, mode: str, inst: str, trade: str, side: Side, qty: float, *,
             gateway: str = "sim", fee: float = 0.0, open_order: bool = False) -> str:
    session = store.begin_session(mode, "t", 0)
    journal = store.journal(session, fill_scope="@x" if mode == "replay" else "")
    coid = f"{session.prefix}-1"
    order = Order(OrderRequest(1, coid, inst, side, qty * (2 if open_order else 1),
                               gateway=gateway))
    journal.order_created(order)
    journal.fill_received(order, Fill(2, coid, trade, inst, side, qty, 10.0, 0.0, "",
                                      fee_asset="X" if fee else "", fee_quantity=fee,
                                      fee_in_instrument=bool(fee)))
    order.filled_quantity = qty
    order.status = OrderStatus.PARTIALLY_FILLED if open_order else OrderStatus.FILLED
    journal.order_changed(order, 3)
    return coid


def _populate(store: Store) -> str:
    """Fills of every mode, an adopted fill, a fee in kind, an open order, a kill switch,
    stages: everything the status view distinguishes."""
    _fill_in(store, "replay", "BTCUSD", "r-1", Side.BUY, 5.0)
    _fill_in(store, "paper", "SPY", "p-1", Side.BUY, 3.0)
    _fill_in(store, "paper", "SPY", "p-2", Side.SELL, 1.0)
    _fill_in(store, "live", "BTCUSDT", "l-1", Side.BUY, 2.0, gateway="binance", fee=0.002)
    coid = _fill_in(store, "paper", "QQQ", "p-3", Side.SELL, 4.0, open_order=True)
    store.journal(store.begin_session("live", "t", 0), default_gateway="binance").fill_received(
        None, Fill(4, "manual-1", "b-2", "ETHUSDT", Side.BUY, 1.5, 10.0, 0.0, ""))
    store.save_kill_switch(KillSwitchRecord(True, "drawdown", 5, "ops"))
    lifecycle = Lifecycle(store)
    for name in ("m_b", "m_a"):
        lifecycle.promote(name, "test", "ops", force=True)
    return coid


def test_the_views_answer_as_the_store_did(store: Store) -> None:
    coid = _populate(store)
    with store.query() as query:
        view = store_status(query, "paper")
        assert mode_positions(query, "live") == pytest.approx({"BTCUSDT": 1.998, "ETHUSDT": 1.5})
    # A fill no session wrote counts for every mode whose gateways include its own: with
    # no gateway named, that is any gateway a fill names.
    assert view["positions"] == {"SPY": 2.0, "QQQ": -4.0, "ETHUSDT": 1.5}
    assert store.positions(mode="paper") == view["positions"]
    assert store.positions(mode="live") == pytest.approx({"BTCUSDT": 1.998, "ETHUSDT": 1.5})
    assert [o["client_order_id"] for o in view["open_orders"]] == [coid]
    assert view["open_orders"][0] == {"client_order_id": coid, "instrument_id": "QQQ",
                                      "side": "SELL", "quantity": 8.0, "filled_quantity": 4.0,
                                      "status": "PARTIALLY_FILLED"}
    assert [r["client_order_id"] for r in store.order_rows(open_only=True)] == [coid]
    assert view["kill_switch"] == {"engaged": True, "reason": "drawdown"}
    rec = store.load_kill_switch()
    assert rec is not None and rec.engaged is True and rec.who == "ops"
    assert view["stages"] == {"m_a": "candidate", "m_b": "candidate"} == Lifecycle(store).stages()
    # A replay's mode holds nothing to restore: the view says so rather than guessing.
    with store.query() as query:
        assert store_status(query, "replay")["positions"] == {}


def test_a_bare_sqlite_connection_reads_what_the_store_reads(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'trader.db'}"
    with Store.open(url) as store:
        _populate(store)
        with store.query() as query:
            through_store = store_status(query, "live")
    path = sqlite_file(url)
    assert path == tmp_path / "trader.db"
    with sqlite_query(path) as query:
        assert store_status(query, "live") == through_store
        assert open_orders(query) == through_store["open_orders"]
        # Read-only: a status can never change the store it reports.
        with pytest.raises(Exception, match="readonly"):
            query("DELETE FROM fills", {})


def test_a_missing_sqlite_file_is_named_and_not_created(tmp_path) -> None:
    path = tmp_path / "nowhere" / "trader.db"
    with pytest.raises(FileNotFoundError, match="does not exist"), sqlite_query(path):
        pass
    assert not path.parent.exists()


def test_which_urls_are_read_without_sqlalchemy(tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("TRADER_DATABASE_URL", raising=False)
    assert sqlite_file(resolve_url(None, tmp_path)) == tmp_path / "trader.db"
    assert sqlite_file("sqlite:///:memory:") is None
    assert sqlite_file("sqlite://") is None
    assert sqlite_file("sqlite:///x.db?timeout=3") is None  # options: SQLAlchemy's to apply
    assert sqlite_file("sqlite+pysqlite:///x.db") is None
    assert sqlite_file("postgresql+psycopg://u@127.0.0.1/test") is None


def test_a_bare_psycopg_connection_reads_what_the_store_reads() -> None:
    for url in pg_schema_url():  # a schema of its own, as the URL's search_path option
        with Store.open(url) as store:
            _populate(store)
            with store.query() as query:
                through_store = store_status(query, "live")
        uri = postgres_uri(url)
        assert uri is not None and uri.startswith("postgresql://")
        with postgres_query(uri) as query:
            assert store_status(query, "live") == through_store
            assert through_store["positions"] and through_store["open_orders"]
            # Read-only: a status can never change the store it reports.
            with pytest.raises(Exception, match="read-only transaction"):
                query("DELETE FROM fills WHERE trade_id = :t", {"t": "p-1"})
        with postgres_query(uri) as query:  # nothing was deleted
            assert store_status(query, "live") == through_store


def test_which_postgresql_urls_are_read_without_sqlalchemy() -> None:
    assert postgres_uri("postgresql+psycopg://bob:pw@db:5432/t?options=-csearch_path%3Ds") == (
        "postgresql://bob:pw@db:5432/t?options=-csearch_path%3Ds")
    assert postgres_uri("postgresql://db/t") == "postgresql://db/t"
    # drivers the store does not use, other backends: through the Store as before
    for url in ("postgresql+psycopg2://db/t", "postgres://db/t", "sqlite:///x.db", "memory"):
        assert postgres_uri(url) is None


def test_named_parameters_become_psycopgs() -> None:
    assert pyformat("SELECT a FROM t WHERE s = :scope AND x IN (:st0, :st1)") == (
        "SELECT a FROM t WHERE s = %(scope)s AND x IN (%(st0)s, %(st1)s)")
    # a cast and a literal percent are not parameters
    assert pyformat("SELECT '5%', ts::text FROM t WHERE n = :n") == (
        "SELECT '5%%', ts::text FROM t WHERE n = %(n)s")


def test_the_views_load_no_sqlalchemy() -> None:
    out = subprocess.run([sys.executable, "-c", "import sys, trader.store.views; "
                          "print(sorted(m for m in sys.modules if m.startswith('sqlalchemy')))"],
                         capture_output=True, text=True, check=True, timeout=60).stdout
    assert out.strip() == "[]"
