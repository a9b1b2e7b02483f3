"""Store fixtures: every store test runs on SQLite and on PostgreSQL.

PostgreSQL tests get a schema of their own (dropped afterwards) in the ``test``
database on 127.0.0.1:5432.  If the server is down they skip locally and fail
in CI (``CI=true``), so a missing service can never pass as green.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pg_server import pg_schema_url  # tests/harness: shared with the optimize tests


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """A fresh, empty database URL for each backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'state' / 'trader.db'}"
    else:
        yield from pg_schema_url()


@pytest.fixture
def store(db_url: str):
    """An open, migrated store on each backend."""
    from trader.store import Store

    st = Store.open(db_url)
    yield st
    st.close()
