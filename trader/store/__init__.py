"""Persistence: orders, fills, state, lifecycle and runs in SQLite or PostgreSQL."""

from trader.store.db import StoreError, redact, resolve_url
from trader.store.store import Journal, SessionInfo, Store, open_store

__all__ = ["Journal", "SessionInfo", "Store", "StoreError", "open_store", "redact", "resolve_url"]
