"""Persistence: orders, fills, state, lifecycle and runs in SQLite or PostgreSQL.

The names below load on first use: ``trader.store.views`` (what ``trader status``
reads) must be importable without SQLAlchemy, which importing this package would
otherwise bring in.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trader.store.db import StoreError
    from trader.store.orders import BufferedJournal, Journal
    from trader.store.sessions import SessionInfo
    from trader.store.store import Store, open_store
    from trader.store.views import resolve_url

_WHERE = {"StoreError": "db", "BufferedJournal": "orders", "Journal": "orders",
          "SessionInfo": "sessions", "Store": "store", "open_store": "store",
          "resolve_url": "views"}

__all__ = ["BufferedJournal", "Journal", "SessionInfo", "Store", "StoreError", "open_store",
           "resolve_url"]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'trader.store' has no attribute {name!r}")
    value = getattr(import_module(f"trader.store.{module}"), name)
    globals()[name] = value
    return value
