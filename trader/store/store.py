"""The store: the daemon's memory of orders, fills, state, lifecycle and runs.

``Store`` owns the engine and the connection (open, read, write, batch commits);
what it can say and keep is grouped by concept in the modules it mixes in:
``sessions`` (process starts), ``orders`` (the write-ahead order log and its
journals), ``snapshots`` (account snapshots and restored start states),
``risk_state`` (trading state, risk events and state), ``runs`` (run records) and
``baselines`` (what each account held before the daemon).
Table objects live in ``tables``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text
from sqlalchemy.exc import DBAPIError

from trader.core.redaction import redact_url
from trader.store.baselines import BaselineQueries
from trader.store.db import StoreError, db_error_text, logger, make_engine
from trader.store.migrate import upgrade
from trader.store.orders import OrderQueries
from trader.store.risk_state import RiskStateQueries
from trader.store.runs import RunQueries
from trader.store.sessions import SessionQueries
from trader.store.snapshots import SnapshotQueries
from trader.store.views import Query, resolve_url


class Store(SessionQueries, OrderQueries, SnapshotQueries, RiskStateQueries, RunQueries,
            BaselineQueries):
    """A database holding the daemon's state; SQLite by default, PostgreSQL by URL.

    One ``Store`` belongs to one thread (the kernel's); another thread or process
    (a kill switch watcher, the CLI) opens its own on the same URL.
    """

    def __init__(self, engine: Engine, url: str, *, batch_size: int = 0) -> None:
        self.engine = engine
        self.url = url
        self.batch_size = batch_size
        self._conn: Connection | None = None
        self._pending = 0

    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        data_dir: str | Path | None = None,
        *,
        migrate: bool = True,
        sqlite_synchronous: str = "FULL",
        batch_size: int = 0,
    ) -> Store:
        """Connect, bring the schema to head (unless ``migrate=False``) and return the store.

        ``batch_size`` > 0 commits only every that many writes (replay); 0 commits each one.
        """
        url = resolve_url(database_url, data_dir)
        engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        try:
            if migrate:
                before, after = upgrade(engine)
                if before != after:
                    logger(__name__).info("store_migrated", database=redact_url(url), before=before,
                                          after=after)
        except DBAPIError as exc:
            engine.dispose()
            raise StoreError(
                f"database {redact_url(url)}: cannot open: {db_error_text(exc)}"
            ) from None
        return cls(engine, url, batch_size=batch_size)

    @property
    def safe_url(self) -> str:
        """The database URL with any password masked."""
        return redact_url(self.url)

    @property
    def dialect(self) -> str:
        """The SQLAlchemy dialect name: "sqlite" or "postgresql"."""
        return self.engine.dialect.name

    def close(self) -> None:
        """Commit what a batch holds and release the connection and engine."""
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection to write on; committed on exit (durable) or every ``batch_size`` writes."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.connect()
        try:
            yield conn
            self._pending += 1
            if self._pending >= self.batch_size:
                conn.commit()
                self._pending = 0
        except BaseException:
            # Start the next write on a fresh connection: this one may be broken (a
            # restarted server), and its transaction is void either way.
            self._conn = None
            self._pending = 0
            try:
                conn.rollback()
                conn.close()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                logger(__name__).warning("store_connection_discarded", database=self.safe_url)
            raise

    def flush(self) -> None:
        """Commit writes a batch is still holding."""
        if self._conn is not None and self._pending:
            self._conn.commit()
            self._pending = 0

    def read(self) -> Connection:
        """A connection for queries (sees the store's own batched writes)."""
        self.flush()
        return self.engine.connect()

    @contextmanager
    def query(self) -> Iterator[Query]:
        """A ``trader.store.views`` query function on a read connection."""
        with self.read() as conn:
            yield lambda sql, params: conn.execute(text(sql), dict(params)).all()

    def insert_ignore(self, table: Any) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING for this dialect."""
        # The dialect's module is imported here, not at the top: a SQLite store (every
        # `trader status`) need not load PostgreSQL's.
        if self.dialect == "postgresql":
            from sqlalchemy.dialects.postgresql import insert as pg_insert

            return pg_insert(table).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            from sqlalchemy.dialects.sqlite import insert as sqlite_insert

            return sqlite_insert(table).on_conflict_do_nothing()
        raise StoreError(f"unsupported dialect {self.dialect}")

    def count(self, table: Any) -> int:
        """Rows in ``table``."""
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def open_store(cfg: Any = None, data_dir: str | Path | None = None, *, migrate: bool = True,
               batch_size: int = 0) -> Store:
    """Open the store of a deployment: ``cfg`` is its ``StoreConfig`` (None: defaults and
    environment), ``data_dir`` its data directory (SQLite ``trader.db`` lives there)."""
    if cfg is None:
        return Store.open(None, data_dir, migrate=migrate, batch_size=batch_size)
    return Store.open(cfg.database_url, data_dir, migrate=migrate,
                      sqlite_synchronous=cfg.sqlite_synchronous, batch_size=batch_size)
