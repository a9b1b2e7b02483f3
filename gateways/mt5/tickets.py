"""The gateway's own record of client order id <-> order ticket <-> deal tickets (SQLite).

MT5 carries our client order id only in the order ``comment``, which brokers
truncate or rewrite.  So the gateway writes each order here *before* sending
it, adds the ticket when the server answers and every deal ticket it sees;
reconciliation after a restart reads tickets from here and never depends on
the comment.  A gateway-owned file (``state_file``, kept in the daemon's data
directory) rather than the daemon's store: gateways may not import the store,
and this map is the gateway's own bookkeeping of one MT5 account.
"""

from __future__ import annotations

import sqlite3
import threading
from dataclasses import dataclass
from pathlib import Path

_SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
    client_order_id TEXT PRIMARY KEY,
    instrument_id TEXT NOT NULL,
    symbol TEXT NOT NULL,
    side TEXT NOT NULL,
    quantity REAL NOT NULL,
    sent_ns INTEGER NOT NULL,
    ticket INTEGER,
    done INTEGER NOT NULL DEFAULT 0
);
CREATE UNIQUE INDEX IF NOT EXISTS orders_ticket ON orders (ticket);
CREATE TABLE IF NOT EXISTS deals (
    deal INTEGER PRIMARY KEY,
    client_order_id TEXT NOT NULL,
    ticket INTEGER NOT NULL
);
"""


@dataclass(frozen=True, slots=True)
class BookedOrder:
    """One order as the book knows it."""

    client_order_id: str
    instrument_id: str
    symbol: str
    side: str
    quantity: float
    sent_ns: int
    ticket: int | None
    done: bool


class TicketBook:
    """The persisted map; every write is committed before the call returns."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), check_same_thread=False,
                                   isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.executescript(_SCHEMA)
        self._lock = threading.Lock()

    def close(self) -> None:
        """Close the file."""
        self._db.close()

    def record_submit(self, coid: str, instrument_id: str, symbol: str, side: str,
                      quantity: float, sent_ns: int) -> None:
        """Write an order about to be sent (raises if the client order id was used)."""
        with self._lock:
            self._db.execute("INSERT INTO orders (client_order_id, instrument_id, symbol, side, "
                             "quantity, sent_ns) VALUES (?, ?, ?, ?, ?, ?)",
                             (coid, instrument_id, symbol, side, quantity, sent_ns))

    def record_ticket(self, coid: str, ticket: int) -> None:
        """The server's order ticket of ``coid``."""
        with self._lock:
            self._db.execute("UPDATE orders SET ticket = ? WHERE client_order_id = ?",
                             (ticket, coid))

    def record_deal(self, deal: int, coid: str, ticket: int) -> None:
        """A deal (execution) of ``coid``'s order."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO deals (deal, client_order_id, ticket) "
                             "VALUES (?, ?, ?)", (deal, coid, ticket))

    def mark_done(self, coid: str) -> None:
        """The order reached a terminal state: nothing left to adopt after a restart."""
        with self._lock:
            self._db.execute("UPDATE orders SET done = 1 WHERE client_order_id = ?", (coid,))

    def get(self, coid: str) -> BookedOrder | None:
        """The booked order of ``coid``, or None."""
        with self._lock:
            row = self._db.execute("SELECT * FROM orders WHERE client_order_id = ?",
                                   (coid,)).fetchone()
        return _booked(row) if row else None

    def coid_of_ticket(self, ticket: int) -> str | None:
        """Our client order id of an order ticket, or None."""
        with self._lock:
            row = self._db.execute("SELECT client_order_id FROM orders WHERE ticket = ?",
                                   (ticket,)).fetchone()
        return row[0] if row else None

    def open_orders(self) -> list[BookedOrder]:
        """Orders not known to be finished (adopted at start-up)."""
        with self._lock:
            rows = self._db.execute("SELECT * FROM orders WHERE done = 0").fetchall()
        return [_booked(r) for r in rows]

    def deals(self) -> dict[int, str]:
        """Every deal ticket seen, with its client order id."""
        with self._lock:
            return dict(self._db.execute("SELECT deal, client_order_id FROM deals").fetchall())

    def tickets(self) -> dict[int, str]:
        """Every known order ticket, with its client order id."""
        with self._lock:
            rows = self._db.execute("SELECT ticket, client_order_id FROM orders "
                                    "WHERE ticket IS NOT NULL").fetchall()
        return dict(rows)


def _booked(row: tuple) -> BookedOrder:
    coid, inst, symbol, side, qty, sent, ticket, done = row
    return BookedOrder(coid, inst, symbol, side, float(qty), int(sent), ticket, bool(done))
