"""One deployment, one data directory, one store: how every command finds them.

``trader run``, ``status``, ``kill``, ``models``, ``db`` and ``backtest`` take
the same ``--config`` and ``--data-dir`` options and resolve them here, so an
operator's command and the daemon always open the same store and flag file.
The data directory is ``--data-dir``, else ``$TRADER_DATA_DIR``, else the
config's ``daemon.data_dir`` (default ``var``); the store is SQLite
``<data_dir>/trader.db`` unless ``store.database_url`` or
``$TRADER_DATABASE_URL`` names a database.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

if TYPE_CHECKING:
    from trader.engine.config import AppConfig
    from trader.store import Store

CONFIG_OPTION = typer.Option(None, "--config", "-c",
                             help="YAML config of the deployment (its data dir, store, risk)")
DATA_DIR_OPTION = typer.Option(None, "--data-dir",
                               help="the deployment's data directory (overrides "
                                    "$TRADER_DATA_DIR and daemon.data_dir)")


class UserError(Exception):
    """An error the operator can fix; printed without a traceback (exit 2)."""


@dataclass
class Deployment:
    """Where a deployment keeps its state, as resolved from ``--config``/``--data-dir``."""

    config_path: Path | None
    cfg: AppConfig | None
    data_dir: Path

    @property
    def used(self) -> bool:
        """Whether a daemon has ever run on the data directory (it leaves its status file)."""
        from trader.live.status import STATUS_FILE

        return (self.data_dir / STATUS_FILE).exists()

    def database_url(self) -> str:
        """The store's URL: the config's, else ``$TRADER_DATABASE_URL``, else the data dir's."""
        from trader.store.views import resolve_url

        return resolve_url(self.cfg.store.database_url if self.cfg is not None else None,
                           self.data_dir)

    def open_store(self, *, migrate: bool = True, batch_size: int = 0) -> Store:
        from trader.store import open_store

        return open_store(self.cfg.store if self.cfg is not None else None, self.data_dir,
                          migrate=migrate, batch_size=batch_size)

    def flag_path(self) -> Path:
        """The kill switch flag file the deployment's daemon watches."""
        from risk.killswitch import flag_path

        configured = self.cfg.risk.kill_switch.path if self.cfg is not None else None
        return flag_path(self.data_dir, configured)

    def hint(self) -> str:
        """The options that name this deployment, for messages that suggest a command."""
        if self.config_path is not None:
            return f"--config {self.config_path}"
        return f"--data-dir {self.data_dir}"


def resolve(config: Path | None, data_dir: Path | None, *, must_exist: bool = True) -> Deployment:
    """The deployment named by the options; ``must_exist``: its data directory must exist."""
    from trader.engine.config import load_config, resolve_data_dir

    cfg = load_config(config) if config is not None else None
    d = resolve_data_dir(cfg, data_dir)
    if must_exist and not d.is_dir():
        where = f" (from {config})" if config is not None and data_dir is None else ""
        rel = "" if d.is_absolute() else f" (relative to the working directory: {d.absolute()})"
        raise UserError(f"data directory {d}{where} does not exist{rel}: no daemon or command has "
                        "used it; check --config/--data-dir (a first `trader run ... "
                        "--create-data-dir` creates it)")
    return Deployment(config, cfg, d)


def store_error_text(exc: Any) -> str:
    """A store failure in one line (the store's own errors already are)."""
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__
