"""``trader models ...``: list, promote, demote and show the history of models."""

from __future__ import annotations

import getpass
import os
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from trader.cli.deployment import (
    CONFIG_OPTION,
    DATA_DIR_OPTION,
    Deployment,
    UserError,
    resolve,
)
from trader.cli.train import train_cmd
from trader.core.events import ns_to_iso

if TYPE_CHECKING:
    from models.lifecycle import Evidence
    from trader.store.lifecycle import Lifecycle

models_app = typer.Typer(add_completion=False, no_args_is_help=True,
                         help="Models: lifecycle (research, candidate, paper, live); new.")
console = Console()
# Training's heavy imports (xgboost, the kernel) load inside the command.
models_app.command("train")(train_cmd)

def _lifecycle(config: Path | None, data_dir: Path | None) -> tuple[Lifecycle, Deployment]:
    from models.lifecycle import LifecycleConfig
    from trader.store.lifecycle import Lifecycle

    dep = resolve(config, data_dir)
    gates = dep.cfg.lifecycle if dep.cfg is not None else LifecycleConfig()
    return Lifecycle(dep.open_store(), gates), dep


@models_app.command("list")
def list_cmd(config: Path = CONFIG_OPTION, data_dir: Path = DATA_DIR_OPTION) -> None:
    """Every registered model and its stage (a config's unregistered models show as such)."""
    lc, dep = _lifecycle(config, data_dir)
    rows = {r["name"]: r for r in lc.models()}
    if dep.cfg is not None:
        for mc in dep.cfg.models:
            rows.setdefault(mc.name, {"name": mc.name, "stage": "research (not registered)",
                                      "since_ts": None})
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
    config: Path = typer.Option(..., "--config", "-c",
                                help="YAML config of the deployment that runs the model"),
    data_dir: Path = DATA_DIR_OPTION,
    evidence: str = typer.Option(
        None, "--evidence", help="gate on this instead of the stored backtests: an MLflow run "
        "id (a tracked backtest of the model) or study:NAME (a walk-forward study's "
        "out-of-sample result); recorded in the history"),
    storage: str = typer.Option(None, "--storage",
                                help="storage of the study named by --evidence study:NAME"),
) -> None:
    """Move a model one stage up if it passes the gate (or with --force, on record)."""
    from models.lifecycle import LifecycleError

    proof = _evidence(evidence, storage, config) if evidence else None
    lc, dep = _lifecycle(config, data_dir)
    assert dep.cfg is not None
    names = [m.name for m in dep.cfg.models]
    if name not in names:
        lc.store.close()
        raise UserError(f"model {name!r} is not in {config} (its models: {', '.join(names)}); "
                        "only a model a deployment runs can be promoted in its registry")
    try:
        row = lc.promote(name, reason, operator, confirm=confirm, force=force, evidence=proof)
    except LifecycleError as exc:
        raise UserError(str(exc)) from None
    finally:
        lc.store.close()
    forced = " (FORCED: gate failed)" if row["forced"] else ""
    console.print(f"{name}: {row['from_stage']} -> {row['to_stage']}{forced}")
    if row["gate_report"]:
        console.print(row["gate_report"], highlight=False, markup=False)


def _evidence(spec: str, storage: str | None, config: Path) -> Evidence:
    """The results ``--evidence`` names: ``study:NAME`` or an MLflow run id."""
    from trader.engine.config import load_config

    if spec.startswith("study:"):
        from trader.optimize.experiment import DEFAULT_STORAGE, STORAGE_ENV
        from trader.optimize.results import study_evidence
        from trader.optimize.study import StudyError, load

        url = storage or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE
        try:
            return study_evidence(load(spec.removeprefix("study:"), url))
        except StudyError as exc:
            raise UserError(f"--evidence {spec}: {exc}") from None
    from trader.tracking import TrackingError, run_evidence, tracking_uri

    uri = tracking_uri(load_config(config).tracking.uri)
    if uri is None:
        raise UserError(f"--evidence {spec}: an MLflow run id needs tracking.uri in {config} or "
                        "$MLFLOW_TRACKING_URI (or use study:NAME)")
    try:
        return run_evidence(uri, spec)
    except TrackingError as exc:
        raise UserError(f"--evidence {spec}: {exc}") from None


@models_app.command("demote")
def demote_cmd(
    name: str = typer.Argument(..., help="model name"),
    reason: str = typer.Option(..., "--reason", help="why (stored in the history)"),
    operator: str = typer.Option(None, "--operator", help="who decides (default: login name)"),
    config: Path = CONFIG_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Move a model one stage down (a running daemon pauses it at its next reload)."""
    from models.lifecycle import LifecycleError

    lc, _ = _lifecycle(config, data_dir)
    try:
        row = lc.demote(name, reason, operator or getpass.getuser())
    except LifecycleError as exc:
        raise UserError(str(exc)) from None
    finally:
        lc.store.close()
    console.print(f"{name}: {row['from_stage']} -> {row['to_stage']}")


@models_app.command("release")
def release_cmd(
    name: str = typer.Argument(..., help="model name"),
    reason: str = typer.Option(..., "--reason", help="why (stored as a risk event)"),
    operator: str = typer.Option(None, "--operator", help="who decides (default: login name)"),
    config: Path = CONFIG_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Give a model halted or de-risked by its own drawdown overlay its budget back.

    Only while no daemon runs on the data directory (a running one keeps the model's
    state in memory and would write it back); the next session measures the model's
    drawdown afresh from its READY.
    """
    import time

    from trader.engine.overlays import STORE_SCOPE
    from trader.live.lock import DataDirLock, DataDirLocked

    dep = resolve(config, data_dir)
    lock = DataDirLock(dep.data_dir)
    try:
        lock.acquire()  # and no daemon starts while the state is rewritten
    except DataDirLocked as exc:
        raise UserError(f"{exc}; release the model once it is stopped") from None
    store = dep.open_store()
    try:
        state = store.load_risk_state(STORE_SCOPE) or {}
        models = dict(state.get("model_drawdown", {}))
        held = models.get(name)
        if held is None or not (held.get("halted") or held.get("derisked")):
            raise UserError(f"model {name!r} is not halted or de-risked by its drawdown "
                            f"overlay in {dep.data_dir} (nothing to release)")
        del models[name]
        store.save_risk_state({**state, "model_drawdown": models}, scope=STORE_SCOPE)
        who = operator or getpass.getuser()
        store.record_risk_event(time.time_ns(), "model_drawdown_released", reason,
                                {"model": name, "by": who, "was": held})
    finally:
        store.close()
        lock.release()
    level = "halted" if held.get("halted") else "de-risked"
    console.print(f"{name}: released (was {level} by its drawdown overlay, peak "
                  f"{held['peak']:.2f}); its drawdown is measured afresh from the next READY")


@models_app.command("history")
def history_cmd(name: str = typer.Argument(..., help="model name"),
                config: Path = CONFIG_OPTION, data_dir: Path = DATA_DIR_OPTION) -> None:
    """Every stage change of a model: from, to, when, who, why, forced."""
    lc, _ = _lifecycle(config, data_dir)
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


@models_app.command("new")
def new_cmd(
    name: str = typer.Argument(..., help="class name of the new model, e.g. MyTrend"),
    folder: Path = typer.Option(Path("strategies"), "--dir",
                                help="strategies folder to write into (created if missing)"),
) -> None:
    """Write a documented model template and its test into the strategies folder."""
    from models.template import render

    try:
        files = render(name, str(folder))
    except ValueError as exc:
        raise UserError(str(exc)) from None
    existing = [folder / f for f in files if (folder / f).exists()]
    if existing:
        raise UserError(f"{', '.join(map(str, existing))} already exists; not overwritten")
    folder.mkdir(parents=True, exist_ok=True)
    for fname, text in files.items():
        (folder / fname).write_text(text)
        console.print(f"wrote {folder / fname}")
    console.print(f"run its test: python -m pytest {folder}; use it with `strategies: "
                  f"{folder}` and `model: {name}` in a config")
