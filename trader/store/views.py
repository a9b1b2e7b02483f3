"""What ``trader status`` reads of the store, written once in plain SQL.

Importing SQLAlchemy and the sqlmodel tables takes about as long as the whole
half second ``trader status`` may take.  So the few facts it shows from the store
(a trading mode's positions, the open orders, the kill switch row, the models'
stages) are queried here, in SQL that SQLite and PostgreSQL both run, through a
``Query``: a function taking SQL with ``:name`` parameters and returning rows.
The ``Store`` answers the same questions by calling these functions on its own
connection (``Store.query``), so there is one query for each; ``trader status``
calls them on a plain read-only ``sqlite3`` connection when the store is a SQLite
file (``sqlite_query``), on a read-only psycopg connection when it is PostgreSQL
(``postgres_query``), and on a ``Store`` otherwise.

Nothing here imports SQLAlchemy.
"""

from __future__ import annotations

import os
import re
import sqlite3
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from trader.core.events import Fill, OrderStatus, Side

# A function running one statement (``:name`` parameters) and returning its rows.
Query = Callable[[str, Mapping[str, Any]], Sequence[Sequence[Any]]]

ENV_URL = "TRADER_DATABASE_URL"
ENV_DATA_DIR = "TRADER_DATA_DIR"
DB_FILE = "trader.db"

OPEN_STATUSES = tuple(st.value for st in OrderStatus if not st.is_terminal)
# Session modes whose orders reach a broker (or a paper account standing in for one);
# a replay's orders and fills are history, never state to restore.
TRADING_MODES = ("paper", "live")

FILL_COLUMNS = ("ts", "client_order_id", "trade_id", "instrument_id", "side", "quantity",
                "price", "commission", "broker_order_id", "fee_asset", "fee_quantity",
                "fee_in_instrument", "gateway")
OPEN_ORDER_COLUMNS = ("client_order_id", "instrument_id", "side", "quantity",
                      "filled_quantity", "status")


def resolve_url(database_url: str | None = None, data_dir: str | Path | None = None) -> str:
    """The URL to use: explicit URL, else ``$TRADER_DATABASE_URL``, else SQLite in the data dir."""
    url = database_url or os.environ.get(ENV_URL)
    if url:
        return url
    base = Path(data_dir or os.environ.get(ENV_DATA_DIR) or "var")
    return f"sqlite:///{base / DB_FILE}"


def sqlite_file(url: str) -> Path | None:
    """The file of a plain SQLite URL (``sqlite:///path``), else None (other databases,
    drivers or options, and in-memory databases are opened through SQLAlchemy)."""
    prefix = "sqlite:///"
    if not url.startswith(prefix) or "?" in url:
        return None
    path = url[len(prefix):]
    return Path(path) if path and path != ":memory:" else None


@contextmanager
def sqlite_query(path: Path) -> Iterator[Query]:
    """A read-only ``Query`` on the SQLite file ``path`` (never created when missing)."""
    if not path.is_file():
        raise FileNotFoundError(f"database {path} does not exist (has a daemon run here?)")
    # ``mode=ro``: a status can never write, nor create a file; the timeout waits out
    # a daemon's write as the store's own busy_timeout does.
    conn = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True, timeout=10)
    try:
        yield lambda sql, params: conn.execute(sql, dict(params)).fetchall()
    finally:
        conn.close()


def postgres_uri(url: str) -> str | None:
    """The libpq URI of a PostgreSQL URL as the store takes it (``postgresql+psycopg://``
    or ``postgresql://``), for psycopg without SQLAlchemy; None for any other URL.

    Both read the same URL the same way: user, password, host, port and database, and
    the query's parameters as libpq connection options (``options``, ``sslmode``, ...).
    """
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("postgresql", "postgresql+psycopg"):
        return None
    return f"postgresql://{rest}"


@contextmanager
def postgres_query(uri: str) -> Iterator[Query]:
    """A read-only ``Query`` on the PostgreSQL database at the libpq ``uri``."""
    import psycopg  # here: SQLite users of status never pay for its import

    # An unreachable server must not hang a status: 10 s unless the URL sets its own.
    timeout = {} if "connect_timeout=" in uri else {"connect_timeout": 10}
    with psycopg.connect(uri, **timeout) as conn:
        conn.read_only = True  # the session's transactions refuse any write
        yield lambda sql, params: conn.execute(pyformat(sql), dict(params)).fetchall()


_NAMED = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")


def pyformat(sql: str) -> str:
    """SQL with ``:name`` parameters in psycopg's style, ``%(name)s`` (a ``%`` doubled)."""
    return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))


def _in(name: str, values: Sequence[Any]) -> tuple[str, dict[str, Any]]:
    """``IN`` placeholders for ``values``, as ``:name0, :name1, ...`` and their parameters."""
    params = {f"{name}{i}": v for i, v in enumerate(values)}
    return ", ".join(f":{k}" for k in params), params


def fill_from_row(r: Mapping[str, Any]) -> Fill:
    """A stored fill as the kernel's ``Fill`` event."""
    return Fill(r["ts"], r["client_order_id"], r["trade_id"], r["instrument_id"], Side(r["side"]),
                r["quantity"], r["price"], r["commission"], r["broker_order_id"],
                r.get("fee_asset") or "", r.get("fee_quantity") or 0.0,
                bool(r.get("fee_in_instrument")))


def fill_gateways(query: Query) -> list[str]:
    """Every gateway a stored fill names."""
    return [g for (g,) in query("SELECT DISTINCT gateway FROM fills", {})]


def session_fills(query: Query, mode: str, gateways: Sequence[str]) -> list[Fill]:
    """The fills a ``mode`` (paper or live) session restores, oldest first.

    Only fills of orders placed by sessions of that same mode: a backtest's
    (``trader backtest --store``) and the other trading mode's never become this
    account's positions, even in a shared database.  A fill of an order no
    session wrote (one reconciliation adopted from the broker) belongs to the
    gateway that reported it: kept when that is one of ``gateways``.
    """
    if mode not in TRADING_MODES:
        raise ValueError(f"only {TRADING_MODES} sessions restore fills, not {mode!r}")
    cols = ", ".join(f"f.{c}" for c in FILL_COLUMNS)
    rows = query(f"SELECT {cols}, s.mode, o.client_order_id FROM fills f "
                 "LEFT OUTER JOIN orders o ON o.client_order_id = f.client_order_id "
                 "LEFT OUTER JOIN sessions s ON s.id = o.session_id "
                 "ORDER BY f.ts, f.id", {})
    keep = set(gateways)
    out = []
    n = len(FILL_COLUMNS)
    for row in rows:
        r = dict(zip(FILL_COLUMNS, row[:n], strict=True))
        session_mode, order = row[n], row[n + 1]
        if (session_mode == mode) if order is not None else (r["gateway"] in keep):
            out.append(fill_from_row(r))
    return out


def net_positions(fills: Sequence[Fill]) -> dict[str, float]:
    """Net position per instrument the fills add up to, net of fees paid in the instrument
    itself (as the kernel books them); instruments back to zero are left out."""
    out: dict[str, float] = {}
    for f in fills:
        out[f.instrument_id] = out.get(f.instrument_id, 0.0) + f.position_change
    return {k: v for k, v in out.items() if abs(v) > 1e-12}


def mode_positions(query: Query, mode: str, gateway: str | None = None) -> dict[str, float]:
    """What a ``mode`` session holds, as it restores it (of one gateway, or all)."""
    names = [gateway] if gateway is not None else fill_gateways(query)
    return net_positions(session_fills(query, mode, names))


def daemon_positions(query: Query, mode: str) -> dict[str, float]:
    """What a daemon of ``mode`` holds; nothing for a replay (a backtest stored in the same
    database holds no account's positions)."""
    return mode_positions(query, mode) if mode in TRADING_MODES else {}


def open_orders(query: Query) -> list[dict[str, Any]]:
    """The orders not in a terminal status, oldest first: what status lists of each."""
    marks, params = _in("st", OPEN_STATUSES)
    rows = query(f"SELECT {', '.join(OPEN_ORDER_COLUMNS)} FROM orders WHERE status IN ({marks}) "
                 "ORDER BY created_ts, client_order_id", params)
    return [dict(zip(OPEN_ORDER_COLUMNS, r, strict=True)) for r in rows]


def kill_switch_row(query: Query, scope: str = "default") -> tuple[bool, str, str, int] | None:
    """The kill switch row of ``scope``: engaged, reason, who changed it and when."""
    rows = query("SELECT engaged, reason, changed_by, ts FROM kill_switch WHERE scope = :scope",
                 {"scope": scope})
    if not rows:
        return None
    engaged, reason, who, ts = rows[0]
    return bool(engaged), reason, who, ts


def stages(query: Query) -> dict[str, str]:
    """Every registered model's stage, by name."""
    return dict(sorted((name, stage) for name, stage in
                       query("SELECT name, stage FROM model_stages", {})))


def store_status(query: Query, mode: str) -> dict[str, Any]:
    """Positions (of the daemon's mode), open orders, kill switch and stages, for status."""
    engaged, reason, _who, _ts = kill_switch_row(query) or (False, "", "", 0)
    return {"positions": daemon_positions(query, mode),
            "open_orders": open_orders(query),
            "kill_switch": {"engaged": engaged, "reason": reason},
            "stages": stages(query)}
