"""Persistence: orders, fills, state, lifecycle and runs in SQLite or PostgreSQL."""

from trader.store.db import StoreError, redact, resolve_url
from trader.store.orders import BufferedJournal, Journal
from trader.store.sessions import SessionInfo
from trader.store.store import Store, open_store

__all__ = ["BufferedJournal", "Journal", "SessionInfo", "Store", "StoreError", "open_store",
           "redact", "resolve_url"]
