"""Schema migrations: Alembic scripts shipped inside the package, applied on open.

Every open checks the database's revision; only a database that is not at this
version's head loads Alembic (about a tenth of a second of imports and script
parsing that ``trader status``, ``trader backtest`` and the daemon's start would
otherwise pay each time).  The check reads Alembic's own ``alembic_version``
table, and ``HEAD_REVISION`` names the newest script (a test holds it to what
Alembic computes from ``migrations/versions``), so a database at any other
revision, older or newer, still goes through Alembic and its errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import Connection, Engine, inspect, text

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
# The newest script in migrations/versions (its ``revision``): update it with each new one.
HEAD_REVISION = "0003"
VERSION_TABLE = "alembic_version"  # Alembic's default, which ``alembic_config`` keeps


def alembic_config(connection: Connection | None = None) -> Config:
    """Alembic's configuration for the shipped scripts (no alembic.ini), on ``connection``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def head_revision() -> str:
    """The newest revision this version of the package ships."""
    return HEAD_REVISION


def scripted_head() -> str:
    """The head as Alembic computes it from the scripts (what ``HEAD_REVISION`` must equal)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the package ships no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision; None for a database no migration has touched."""
    with engine.connect() as conn:
        return _revision(conn)


def _revision(conn: Connection) -> str | None:
    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    rows: list[Any] = list(conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")))
    if len(rows) > 1:
        # Branches this package never creates: let Alembic say what it makes of them.
        from alembic.runtime.migration import MigrationContext

        return MigrationContext.configure(conn).get_current_revision()
    return str(rows[0][0]) if rows else None


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str]:
    """Bring the schema to ``revision``; return (before, after).  At head nothing is written."""
    before = current_revision(engine)
    target = head_revision() if revision == "head" else revision
    if before == target:
        return before, target
    from alembic import command

    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)
    return before, current_revision(engine) or ""
