"""Store benchmark: durable order-event writes/s (SQLite, PostgreSQL) and replay cost of --store.

Run: ``.venv/bin/python bench/store_writes.py [--orders N] [--pg URL]`` (``--pg`` defaults
to ``$TRADER_TEST_PG_URL``, the tests' server; without either, PostgreSQL is skipped).

* writes: each order goes PENDING_SUBMIT -> SUBMITTED -> ACCEPTED -> FILLED through
  the router with its fill, every journal call a committed transaction (the
  daemon's durable mode).  Reported as order-event writes per second.
* buffered: the same through replay's ``BufferedJournal`` (bulk writes).
* replay: the same backtest without a store and with ``--store``, in this
  process, reported as bars/s and as a ratio of run times.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402

from trader.core.clock import ReplayClock  # noqa: E402
from trader.core.events import Fill, OrderRequest, OrderStatus, OrderUpdate, Side  # noqa: E402
from trader.engine.config import AppConfig  # noqa: E402
from trader.engine.router import Router  # noqa: E402
from trader.replay.backtest import run_backtest  # noqa: E402
from trader.store import BufferedJournal, Store  # noqa: E402
from trader.store.tables import EVENTS  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# The variable the tests read their PostgreSQL server from (tests/harness/pg_server.py).
PG_URL_ENV = "TRADER_TEST_PG_URL"


class NullGateway:
    """Accepts orders and does nothing: the benchmark measures the store, not a broker."""

    name = "sim"

    def bind(self, sink: object) -> None:
        return None

    def submit(self, order: OrderRequest) -> None:
        return None


def order_events(url: str, n: int, buffered: bool = False,
                 **open_kw: object) -> tuple[float, int]:
    """Seconds to drive ``n`` orders through their life; and the event rows written."""
    store = Store.open(url, **open_kw)
    clock = ReplayClock(1)
    session = store.begin_session("paper", "bench", 1)
    journal = (BufferedJournal(store, session, clock=clock) if buffered
               else store.journal(session, clock=clock))
    router = Router({"sim": NullGateway()}, clock, id_prefix=session.prefix, journal=journal)
    t0 = time.perf_counter()
    for i in range(n):
        ts = 1 + i
        req = OrderRequest(ts, router.next_client_order_id(), "AAA", Side.BUY, 1.0)
        router.submit(req)
        router.on_update(OrderUpdate(ts, req.client_order_id, OrderStatus.ACCEPTED))
        router.on_fill(Fill(ts, req.client_order_id, f"t{i}", "AAA", Side.BUY, 1.0, 100.0))
    if buffered:
        journal.flush()
    store.flush()
    elapsed = time.perf_counter() - t0
    events = store.count(EVENTS)
    store.close()
    return elapsed, events


def report_writes(label: str, url: str, n: int, **kw: object) -> None:
    secs, events = order_events(url, n, **kw)
    # Journal calls: created, SUBMITTED, ACCEPTED, fill, FILLED = 5 per order (durable: a
    # commit each).
    print(f"{label:<34} {events / secs:>10,.0f} order events/s  "
          f"{5 * n / secs:>10,.0f} journal calls/s  ({n} orders, {secs:.2f}s)")


@contextmanager
def pg_schema(admin_url: str | None) -> Iterator[str | None]:
    """A URL of the PostgreSQL database ``admin_url`` whose search_path is a fresh schema,
    dropped on exit; None (and a line saying so) without a URL or a reachable server."""
    if admin_url is None:
        print(f"PostgreSQL: no URL (--pg or ${PG_URL_ENV}): skipped")
        yield None
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except OperationalError as exc:
        print(f"PostgreSQL unavailable ({str(exc.orig).splitlines()[0]}): skipped")
        admin.dispose()
        yield None
        return
    try:
        yield f"{admin_url}{'&' if '?' in admin_url else '?'}options=-csearch_path%3D{schema}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


def replay_cfg() -> AppConfig:
    return AppConfig.model_validate({
        "name": "bench-replay",
        "instruments": [
            {"id": "BTCUSD", "symbol": "BTC/USD", "venue": "X", "asset_class": "crypto",
             "tick_size": 0.01, "lot_step": 0.0001, "min_quantity": 0.0001,
             "data": {"path": str(ROOT / "data" / "btcusd_1h.parquet"), "timeframe": "1h"}},
            {"id": "QQQ", "symbol": "QQQ", "venue": "X", "asset_class": "equity",
             "data": {"path": str(ROOT / "data" / "qqq_1d.parquet"), "timeframe": "1d"}},
        ],
        "models": [
            {"name": "btc_fast", "model": "SmaCross", "budget": 0.4, "instruments": ["BTCUSD"],
             "timeframe": "1h", "params": {"fast": 5, "slow": 20}},
            {"name": "qqq_fast", "model": "SmaCross", "budget": 0.4, "instruments": ["QQQ"],
             "timeframe": "1d", "params": {"fast": 3, "slow": 10}},
        ],
    })


def report_replay(tmp: Path, repeats: int) -> None:
    cfg = replay_cfg()

    def timed(store: Store | None) -> tuple[float, dict]:
        t0 = time.perf_counter()
        res = run_backtest(cfg, store=store, persist=store is not None)
        return time.perf_counter() - t0, res.metrics

    timed(None)  # warm caches (file reads, imports)
    plain = min(timed(None)[0] for _ in range(repeats))
    best = None
    for r in range(repeats):
        st = Store.open(f"sqlite:///{tmp / f'replay{r}.db'}", batch_size=5000)
        secs, m = timed(st)
        st.close()
        best = secs if best is None else min(best, secs)
    bars = m["bars"]
    print(f"replay without store   {bars / plain:>10,.0f} bars/s  ({bars} bars, "
          f"{m['orders']} orders, {plain:.2f}s)")
    print(f"replay with --store    {bars / best:>10,.0f} bars/s  ({best:.2f}s)  "
          f"ratio store/plain time = {best / plain:.2f}x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--orders", type=int, default=2000)
    ap.add_argument("--pg", metavar="URL", default=os.environ.get(PG_URL_ENV),
                    help=f"the PostgreSQL database to measure (default: ${PG_URL_ENV})")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        print("durable order-event writes through the store (one commit per journal call)")
        report_writes("SQLite WAL synchronous=FULL", f"sqlite:///{tmp / 'full.db'}", args.orders)
        report_writes("SQLite WAL synchronous=NORMAL", f"sqlite:///{tmp / 'normal.db'}",
                      args.orders, sqlite_synchronous="NORMAL")
        with pg_schema(args.pg) as url:
            if url is not None:
                report_writes("PostgreSQL", url, args.orders)
        print("replay's buffered journal (bulk writes, durable only at flush)")
        report_writes("SQLite buffered", f"sqlite:///{tmp / 'buffered.db'}", args.orders,
                      buffered=True)
        with pg_schema(args.pg) as url:
            if url is not None:
                report_writes("PostgreSQL buffered", url, args.orders, buffered=True)
        print()
        report_replay(tmp, args.repeats)


if __name__ == "__main__":
    main()
