"""``trader db ...``: schema migrations from the command line."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.console import Console

from trader.cli.deployment import CONFIG_OPTION, DATA_DIR_OPTION, resolve

db_app = typer.Typer(add_completion=False, no_args_is_help=True,
                     help="The state database (SQLite by default, PostgreSQL by URL).")
console = Console(soft_wrap=True)  # a database URL or path must stay one copyable line

def _url(config: Path | None, data_dir: Path | None) -> str:
    return resolve(config, data_dir).database_url()


def _engine(url: str) -> Any:
    from trader.core.redaction import redact_url
    from trader.store.db import StoreError, make_engine

    try:
        return make_engine(url)
    except StoreError:
        raise
    except Exception as exc:
        raise StoreError(f"{redact_url(url)}: cannot open the database: "
                         f"{str(exc).splitlines()[0]}") from None


@db_app.command("upgrade")
def upgrade_cmd(config: Path = CONFIG_OPTION, data_dir: Path = DATA_DIR_OPTION) -> None:
    """Bring the schema to the newest revision (the daemon also does this on start)."""
    from trader.core.redaction import redact_url
    from trader.store.migrate import upgrade

    url = _url(config, data_dir)
    engine = _engine(url)
    try:
        before, after = _database_call(url, lambda: upgrade(engine))
    finally:
        engine.dispose()
    if before == after:
        console.print(f"{redact_url(url)}: already at {after}")
    else:
        console.print(f"{redact_url(url)}: upgraded {before or '(empty)'} -> {after}")


@db_app.command("current")
def current_cmd(config: Path = CONFIG_OPTION, data_dir: Path = DATA_DIR_OPTION) -> None:
    """Show the schema revision of the database and the newest one this version ships."""
    from trader.core.redaction import redact_url
    from trader.store.migrate import current_revision, head_revision

    url = _url(config, data_dir)
    engine = _engine(url)
    try:
        cur = _database_call(url, lambda: current_revision(engine))
    finally:
        engine.dispose()
    console.print(f"{redact_url(url)}: at {cur or '(empty)'}, head is {head_revision()}")


def _database_call(url: str, call: Any) -> Any:
    """Run ``call``; a database that cannot be reached is one line naming it, not a traceback."""
    from sqlalchemy.exc import SQLAlchemyError

    from trader.core.redaction import redact_url
    from trader.store.db import StoreError, db_error_text

    try:
        return call()
    except SQLAlchemyError as exc:
        raise StoreError(f"{redact_url(url)}: cannot reach the database: {db_error_text(exc)}"
                         ) from None
