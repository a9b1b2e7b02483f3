"""``trader models ...``: list, promote, demote and show the history of models."""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from trader.core.events import ns_to_iso

if TYPE_CHECKING:
    from models.lifecycle import Lifecycle

models_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="The model lifecycle: research -> candidate -> paper -> live.")
console = Console()

CONFIG_OPT = typer.Option(None, "--config", help="YAML config (store and lifecycle gates)")


def _lifecycle(config: Path | None) -> Lifecycle:
    from models.lifecycle import Lifecycle
    from trader.engine.config import LifecycleConfig, load_config
    from trader.store import open_store

    if config is None:
        return Lifecycle(open_store(None), LifecycleConfig())
    cfg = load_config(config)
    return Lifecycle(open_store(cfg.store), cfg.lifecycle)


def _fail(exc: Exception) -> None:
    from trader.cli import UserError

    raise UserError(str(exc)) from None


@models_app.command("list")
def list_cmd(config: Path = CONFIG_OPT) -> None:
    """Every registered model and its stage (a config's unregistered models show as research)."""
    lc = _lifecycle(config)
    rows = {r["name"]: r for r in lc.models()}
    if config is not None:
        from trader.engine.config import load_config

        for mc in load_config(config).models:
            rows.setdefault(mc.name, {"name": mc.name, "stage": "research", "since_ts": None})
    table = Table(title="Models")
    for col in ("model", "stage", "since"):
        table.add_column(col)
    for name in sorted(rows):
        r = rows[name]
        table.add_row(name, r["stage"], ns_to_iso(r["since_ts"]) if r["since_ts"] else "-")
    console.print(table)
    lc.store.close()


@models_app.command("promote")
def promote_cmd(
    name: str = typer.Argument(..., help="model name"),
    reason: str = typer.Option(..., "--reason", help="why (stored in the history)"),
    operator: str = typer.Option(..., "--operator", help="who decides"),
    confirm: bool = typer.Option(False, "--confirm", help="required to promote to live"),
    force: bool = typer.Option(False, "--force", help="override a failed gate (recorded)"),
    config: Path = CONFIG_OPT,
) -> None:
    """Move a model one stage up if it passes the gate (or with --force, on record)."""
    from models.lifecycle import LifecycleError

    lc = _lifecycle(config)
    try:
        row = lc.promote(name, reason, operator, confirm=confirm, force=force)
    except LifecycleError as exc:
        _fail(exc)
    finally:
        lc.store.close()
    forced = " (FORCED: gate failed)" if row["forced"] else ""
    console.print(f"{name}: {row['from_stage']} -> {row['to_stage']}{forced}")
    if row["gate_report"]:
        console.print(row["gate_report"], highlight=False)


@models_app.command("demote")
def demote_cmd(
    name: str = typer.Argument(..., help="model name"),
    reason: str = typer.Option(..., "--reason", help="why (stored in the history)"),
    operator: str = typer.Option(None, "--operator", help="who decides (default: login name)"),
    config: Path = CONFIG_OPT,
) -> None:
    """Move a model one stage down."""
    from models.lifecycle import LifecycleError

    lc = _lifecycle(config)
    try:
        row = lc.demote(name, reason, operator or getpass.getuser())
    except LifecycleError as exc:
        _fail(exc)
    finally:
        lc.store.close()
    console.print(f"{name}: {row['from_stage']} -> {row['to_stage']}")


@models_app.command("history")
def history_cmd(name: str = typer.Argument(..., help="model name"),
                config: Path = CONFIG_OPT) -> None:
    """Every stage change of a model: from, to, when, who, why, forced."""
    lc = _lifecycle(config)
    rows = lc.history(name)
    lc.store.close()
    table = Table(title=f"History of {name}")
    for col in ("when", "from", "to", "operator", "reason", "forced"):
        table.add_column(col)
    for r in rows:
        table.add_row(ns_to_iso(r["ts"]), r["from_stage"], r["to_stage"], r["operator"],
                      r["reason"], "yes" if r["forced"] else "")
    console.print(table)
    if not rows:
        console.print(f"{name}: no stage changes recorded (stage research)")
