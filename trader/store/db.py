"""Where the database is and how to connect to it.

SQLite is the default: one file under the data directory, in WAL mode so the
daemon's writes do not block readers (the CLI, the kill switch watcher), with
foreign keys enforced on every connection.  A ``database_url`` (config or the
``TRADER_DATABASE_URL`` environment variable) selects PostgreSQL instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from trader.core.redaction import redact_url

SYNCHRONOUS = ("OFF", "NORMAL", "FULL", "EXTRA")


class StoreError(Exception):
    """The store cannot be opened or used; the message names the database (without secrets)."""


def logger(name: str) -> Any:
    """The store's logger for module ``name``.  structlog is imported when a line is
    logged, not with the store: `trader status` and other readers open a store and
    never log from it, and structlog's import is a large share of theirs."""
    import structlog

    return structlog.get_logger(name)


def db_error_text(exc: BaseException) -> str:
    """A database driver's error in one line, with what to do about the common ones."""
    orig = getattr(exc, "orig", None) or exc
    text = " ".join(str(orig).split()) or type(orig).__name__
    if "database is locked" in text:
        return (f"{text}: another process holds a lock on it (an open sqlite3 shell or "
                "transaction?); end it and start again")
    return text


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def with_psycopg(url: str, parsed: URL) -> str:
    """``url`` (parsed: ``parsed``) as SQLAlchemy needs it here: the installed driver is
    psycopg 3, and a plain ``postgresql://`` would ask for psycopg2.  A URL naming its
    driver is returned as it was written."""
    if parsed.drivername != "postgresql":
        return url
    return parsed.set(drivername="postgresql+psycopg").render_as_string(hide_password=False)


def make_engine(url: str, *, sqlite_synchronous: str = "FULL", echo: bool = False) -> Engine:
    """An engine for ``url``; SQLite files get their directory, WAL and foreign keys."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StoreError(
            f"database_url {redact_url(url)!r} is not a valid SQLAlchemy URL"
        ) from None
    kwargs: dict[str, Any] = {"echo": echo}
    if parsed.get_backend_name() == "sqlite":
        sync = sqlite_synchronous.upper()
        if sync not in SYNCHRONOUS:
            raise StoreError(
                f"sqlite_synchronous: {sqlite_synchronous!r} is not one of {SYNCHRONOUS}"
            )
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, **kwargs)
        _sqlite_pragmas(engine, sync)
        return engine
    if parsed.get_backend_name() == "postgresql":
        kwargs["pool_pre_ping"] = True
        return create_engine(with_psycopg(url, parsed), **kwargs)
    raise StoreError(
        f"database_url {redact_url(url)!r}: unsupported backend {parsed.get_backend_name()!r} "
        "(use sqlite:///path or postgresql+psycopg://...)"
    )


def _sqlite_pragmas(engine: Engine, synchronous: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        # pysqlite opens transactions lazily; let SQLAlchemy's BEGIN be the only one.
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA synchronous={synchronous}")
        cur.execute("PRAGMA busy_timeout=10000")
        cur.close()
