"""``trader db ...``: schema migrations from the command line."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.console import Console

db_app = typer.Typer(add_completion=False, no_args_is_help=True,
                     help="The state database (SQLite by default, PostgreSQL by URL).")
console = Console()

CONFIG_OPT = typer.Option(None, "--config", help="YAML config whose store section to use")


def store_config(config: Path | None) -> object | None:
    """The ``store`` section of a config file, or None for the defaults and environment."""
    if config is None:
        return None
    from trader.engine.config import load_config

    return load_config(config).store


@db_app.command("upgrade")
def upgrade_cmd(config: Path = CONFIG_OPT) -> None:
    """Bring the schema to the newest revision (the daemon also does this on start)."""
    from trader.store.db import make_engine, redact, resolve_url
    from trader.store.migrate import upgrade

    cfg = store_config(config)
    url = resolve_url(getattr(cfg, "database_url", None), getattr(cfg, "data_dir", None))
    engine = make_engine(url)
    try:
        before, after = upgrade(engine)
    finally:
        engine.dispose()
    if before == after:
        console.print(f"{redact(url)}: already at {after}")
    else:
        console.print(f"{redact(url)}: upgraded {before or '(empty)'} -> {after}")


@db_app.command("current")
def current_cmd(config: Path = CONFIG_OPT) -> None:
    """Show the schema revision of the database and the newest one this version ships."""
    from trader.store.db import make_engine, redact, resolve_url
    from trader.store.migrate import current_revision, head_revision

    cfg = store_config(config)
    url = resolve_url(getattr(cfg, "database_url", None), getattr(cfg, "data_dir", None))
    engine = make_engine(url)
    try:
        cur = current_revision(engine)
    finally:
        engine.dispose()
    console.print(f"{redact(url)}: at {cur or '(empty)'}, head is {head_revision()}")
