"""``trader optimize ...``: run, join, list, show, compare and export studies."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from trader.cli.deployment import UserError

if TYPE_CHECKING:
    import optuna

optimize_app = typer.Typer(add_completion=False, no_args_is_help=True,
                           help="Search parameters over replay backtests (Optuna).")
# Piped or captured output gets room for the parameter columns (rich assumes 80 there).
console = Console(width=None if sys.stdout.isatty() else 200)
STORAGE_OPTION = typer.Option(None, "--storage",
                              help="study storage URL (default $TRADER_OPTIMIZE_STORAGE, else "
                                   "sqlite:///runs/optimize/studies.db)")


def _storage(url: str | None) -> str:
    from trader.optimize.experiment import DEFAULT_STORAGE, STORAGE_ENV

    return url or os.environ.get(STORAGE_ENV) or DEFAULT_STORAGE


def _fail(exc: Exception) -> None:
    raise UserError(str(exc)) from None


def _quiet() -> None:
    import optuna

    from trader.core.logging import StderrProxy, configure_logging

    configure_logging("error", StderrProxy())
    optuna.logging.set_verbosity(optuna.logging.ERROR)


@optimize_app.command("run")
def run_cmd(
    experiment: Path = typer.Argument(..., help="experiment YAML (see config/experiments/)"),
    workers: int = typer.Option(os.cpu_count() or 1, "--workers", "-w", min=1,
                                help="worker processes (default: the core count)"),
    storage: str = STORAGE_OPTION,
    progress: bool = typer.Option(True, "--progress/--no-progress"),
    speed: bool = typer.Option(True, "--speed/--no-speed",
                               help="time one backtest of the base config and compare"),
) -> None:
    """Create (or resume) the experiment's study and run its trials."""
    from trader.core.redaction import redact_url
    from trader.optimize.experiment import ExperimentError, load_experiment
    from trader.optimize.study import StudyError, graceful_sigint

    _quiet()
    graceful_sigint()
    try:
        exp = load_experiment(experiment)
    except ExperimentError as exc:
        _fail(exc)
    url = exp.storage_url(storage)
    console.print(f"study {exp.spec.name}: {exp.spec.method}, "
                  f"{exp.spec.n_trials()} trials, {workers} worker(s), storage {redact_url(url)}")
    try:
        outcome = _run(exp, url, workers, progress and console.is_terminal)
    except StudyError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        console.print(f"interrupted: `trader optimize run {experiment}` resumes the study")
        raise typer.Exit(130) from None
    if exp.spec.walk_forward is None:
        _print_top(outcome.study, 5)
    else:
        _print_walk_forward(outcome.study, outcome.study.user_attrs["experiment"])
    rate = outcome.trials_run / outcome.seconds if outcome.seconds > 0 else 0.0
    console.print(f"{outcome.trials_run} trials in {outcome.seconds:.1f} s: {rate:.2f} trials/s "
                  f"with {workers} worker(s)")
    if speed and outcome.trials_run:
        single = _single_backtest_seconds(exp)
        console.print(f"one backtest of {exp.config_path} (data read, replay): {single:.3f} s; "
                      f"{workers} x that is {workers / single:.2f}/s, so the study ran at "
                      f"{rate * single / workers:.0%} of it")
    if outcome.parent_run_id:
        console.print(f"tracked as MLflow run {outcome.parent_run_id}")
    console.print(f"report: {outcome.report}")


def _run(exp: Any, url: str, workers: int, show: bool) -> Any:
    from trader.optimize.run import run_experiment

    if not show:
        return run_experiment(exp, url, workers)
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from trader.optimize.results import rows

    total = exp.spec.n_trials() * max(1, len(exp.spec.walk_forward.windows())
                                      if exp.spec.walk_forward else 1)
    with Progress(TextColumn("{task.description}"), BarColumn(),
                  TextColumn("{task.completed}/{task.total}"), TimeElapsedColumn(),
                  TextColumn("{task.fields[best]}"), console=console, transient=True) as bar:
        task = bar.add_task(exp.spec.name, total=total, best="")
        done: dict[str, int] = {}

        def poll(study: optuna.Study) -> None:
            done[study.study_name] = len(study.get_trials(deepcopy=False))
            top = rows(study)[:1]
            metric = exp.spec.objective[0].metric
            best = f"best {metric} {top[0].values[0]:.4f} (#{top[0].number})" if top else ""
            bar.update(task, completed=sum(done.values()), best=best)

        return run_experiment(exp, url, workers, poll=poll)


def _single_backtest_seconds(exp: Any) -> float:
    import time

    from trader.replay.backtest import run_backtest

    run_backtest(exp.base, None)  # imports and caches warm, as in a worker
    t0 = time.perf_counter()
    run_backtest(exp.base, None)
    return time.perf_counter() - t0


def _load(name: str, storage: str | None) -> optuna.Study:
    from trader.optimize.study import StudyError, load

    try:
        return load(name, _storage(storage))
    except StudyError as exc:
        _fail(exc)
        raise


@optimize_app.command("worker")
def worker_cmd(
    study: str = typer.Option(..., "--study", help="name of the study to join"),
    storage: str = typer.Option(..., "--storage", help="the study's storage URL (shared)"),
    seed: int = typer.Option(None, "--seed", help="sampler seed of this worker"),
) -> None:
    """Join a study from any host and run its trials until its budget is spent."""
    from trader.optimize.study import StudyError, graceful_sigint, worker_main

    _quiet()
    graceful_sigint()
    _load(study, storage)  # a clear error for a wrong name, before any work
    try:
        worker_main(study, storage, seed)
    except StudyError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
    console.print(f"worker done: study {study}")


@optimize_app.command("list")
def list_cmd(storage: str = STORAGE_OPTION) -> None:
    """Every study in the storage: method, trials, best value."""
    import optuna

    from trader.optimize.study import StudyError, storage_for

    _quiet()
    try:
        summaries = optuna.get_all_study_summaries(storage_for(_storage(storage)))
    except StudyError as exc:
        _fail(exc)
    table = Table(title="Studies")
    for col in ("study", "method", "objective", "trials", "best"):
        table.add_column(col)
    for s in sorted(summaries, key=lambda s: s.study_name):
        spec = s.user_attrs.get("experiment", {})
        objective = ",".join(o.get("metric", "?") for o in spec.get("objective", []))
        best = s.best_trial.values if s.best_trial is not None else None
        table.add_row(s.study_name, spec.get("method", "-"), objective, str(s.n_trials),
                      ", ".join(f"{v:.4f}" for v in best) if best else "-")
    console.print(table)


def _print_top(study: optuna.Study, top: int) -> None:
    from trader.optimize.results import rows

    spec = study.user_attrs["experiment"]
    metrics = [o["metric"] for o in spec["objective"]]
    extra = [m for m in ("sharpe", "max_drawdown", "trades") if m not in metrics]
    table = Table(title=f"Study {study.study_name}: top {top}")
    for col in ("rank", "trial", *metrics, *extra, "feasible", "params"):
        table.add_column(col)
    for i, r in enumerate(rows(study)[:top], 1):
        table.add_row(str(i), str(r.number), *(_num(v) for v in r.values),
                      *(_num(r.metrics.get(m, float("nan"))) for m in extra),
                      "yes" if r.feasible else "no",
                      params_text(r.params))
    console.print(table)


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:.4f}"


def params_text(params: dict[str, Any]) -> str:
    """``fast=10, slow=50``: the last part of each config path (the whole path if ambiguous)."""
    short = [k.rsplit(".", 1)[-1] for k in params]
    names = short if len(set(short)) == len(short) else list(params)
    return ", ".join(f"{n}={v}" for n, v in zip(names, params.values(), strict=True))


@optimize_app.command("show")
def show_cmd(name: str = typer.Argument(..., help="study name"),
             top: int = typer.Option(10, "--top", min=1),
             storage: str = STORAGE_OPTION) -> None:
    """Top trials, parameter importances, overfitting odds and walk-forward windows."""
    from trader.optimize.results import importances, overfitting

    _quiet()
    study = _load(name, storage)
    spec = study.user_attrs.get("experiment", {})
    _print_top(study, top)
    imps = importances(study)
    if imps:
        table = Table(title="Parameter importances")
        table.add_column("parameter")
        table.add_column("importance", justify="right")
        for k, v in imps.items():
            table.add_row(k, f"{v:.3f}")
        console.print(table)
    of = overfitting(study, spec.get("overfit_blocks", 10))
    ds, pbo = of["deflated_sharpe"], of["pbo"]
    console.print(f"deflated Sharpe of the best trial: {'-' if ds is None else f'{ds:.3f}'}; "
                  f"probability of backtest overfitting (CSCV): "
                  f"{'-' if pbo is None else f'{pbo:.3f}'} over {int(of['trials'] or 0)} trials")
    _print_walk_forward(study, spec)


def _print_walk_forward(study: optuna.Study, spec: dict[str, Any]) -> None:
    wf = study.user_attrs.get("walk_forward")
    if not wf:
        return
    metric = spec["objective"][0]["metric"]
    table = Table(title=f"Walk-forward: in-sample vs out-of-sample {metric}")
    for col in ("window", "in-sample", "out-of-sample", f"IS {metric}", f"OOS {metric}",
                "OOS trades", "params"):
        table.add_column(col)
    for w in wf:
        table.add_row(f"w{w['window']}", "..".join(w["in_sample"]),
                      "..".join(w["out_of_sample"]),
                      f"{w['in_sample_metrics'].get(metric, float('nan')):.4f}",
                      f"{w['out_of_sample_metrics'].get(metric, float('nan')):.4f}",
                      str(int(w["out_of_sample_metrics"].get("trades", 0))),
                      params_text(w["params"]))
    console.print(table)
    oos = study.user_attrs.get("oos_metrics") or {}
    if oos:
        console.print("out-of-sample, windows chained: " + ", ".join(
            f"{k} {v:.4f}" for k, v in oos.items()))


@optimize_app.command("compare")
def compare_cmd(names: list[str] = typer.Argument(..., help="two or more study names"),
                storage: str = STORAGE_OPTION) -> None:
    """Side by side: each study's method, trials and best trial's metrics."""
    from trader.optimize.results import best, overfitting

    _quiet()
    studies = [_load(n, storage) for n in names]
    keys = ("bps", "sharpe", "cagr", "max_drawdown", "trades")
    table = Table(title="Studies compared (best feasible trial)")
    for col in ("study", "method", "trials", "best trial", *keys, "PBO", "params"):
        table.add_column(col)
    for st in studies:
        spec = st.user_attrs.get("experiment", {})
        chosen = best(st)
        pbo = overfitting(st, spec.get("overfit_blocks", 10))["pbo"]
        if not chosen:
            table.add_row(st.study_name, spec.get("method", "-"), str(len(st.trials)), "-",
                          *("-" for _ in keys), "-", "-")
            continue
        r = chosen[0]
        table.add_row(st.study_name, spec.get("method", "-"), str(len(st.trials)),
                      str(r.number), *(_num(r.metrics.get(k, float("nan"))) for k in keys),
                      "-" if pbo is None else f"{pbo:.3f}",
                      params_text(r.params))
    console.print(table)


@optimize_app.command("export")
def export_cmd(name: str = typer.Argument(..., help="study name"),
               best_: bool = typer.Option(False, "--best", help="the best feasible trial"),
               trial: int = typer.Option(None, "--trial", help="a trial by number"),
               out: Path = typer.Option(None, "--out", "-o",
                                        help="file to write (default runs/optimize/NAME/"
                                             "best.yaml)"),
               storage: str = STORAGE_OPTION) -> None:
    """Write the base config with a trial's parameters set: a config `trader backtest` runs."""
    import yaml

    from trader.optimize.results import best, rows
    from trader.optimize.space import apply_params

    _quiet()
    if best_ == (trial is not None):
        raise UserError("export needs exactly one of --best or --trial N")
    study = _load(name, storage)
    if best_:
        chosen = best(study)
        if not chosen:
            raise UserError(f"study {name!r} has no completed feasible trial to export")
        row = chosen[0]
    else:
        found = [r for r in rows(study) if r.number == trial]
        if not found:
            raise UserError(f"study {name!r} has no completed trial #{trial}")
        row = found[0]
    raw = apply_params(study.user_attrs["config_raw"], row.params)
    raw["name"] = f"{raw.get('name', 'run')}-{name}-t{row.number}"
    path = out or Path("runs") / "optimize" / name / "best.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    # Data paths stay as written in the base config: resolved next to it, so say where.
    header = (f"# study {name}, trial {row.number}: "
              + ", ".join(f"{k}={v}" for k, v in row.params.items())
              + f"\n# base config: {study.user_attrs['config_path']}\n")
    path.write_text(header + yaml.safe_dump(_absolute_data(raw, study), sort_keys=False))
    console.print(f"wrote {path} (trial {row.number})")


def _absolute_data(raw: dict[str, Any], study: optuna.Study) -> dict[str, Any]:
    """Data paths made absolute, so the exported file runs from wherever it is put."""
    from trader.engine.config import resolve_data_path

    cfg_path = Path(study.user_attrs["config_path"])
    for inst in raw.get("instruments", []):
        data = inst.get("data") if isinstance(inst, dict) else None
        if data and "path" in data:
            data["path"] = str(resolve_data_path(Path(data["path"]), cfg_path))
    return raw
