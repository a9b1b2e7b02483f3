"""Running an experiment end to end: the study (or walk-forward), tracking, the report."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.optimize.experiment import LoadedExperiment
from trader.optimize.study import MEMORY, StudyError, create_study, run_workers, storage_for, work

if TYPE_CHECKING:
    import optuna

REPORTS = Path("runs") / "optimize"


@dataclass
class Outcome:
    """What a run of an experiment did: its study, trials run now, time, report."""

    study: optuna.Study
    trials_run: int
    seconds: float
    report: Path | None
    parent_run_id: str | None


def _count(study: optuna.Study) -> int:
    """Trials run: a surplus trial (opened by a worker racing for the last grid point and
    pruned before it sampled anything) ran nothing."""
    from trader.optimize.objective import SURPLUS

    return sum(1 for t in study.get_trials(deepcopy=False) if not t.user_attrs.get(SURPLUS))


def run_experiment(exp: LoadedExperiment, storage_url: str, workers: int, *,
                   report_dir: Path | None = None, tracking_uri: str | None = None,
                   poll: Callable[[optuna.Study], None] | None = None) -> Outcome:
    """Create or resume the study and run it with ``workers`` processes (1: in this one)."""
    from trader.optimize.report import write_report

    if storage_url in MEMORY and workers > 1:
        raise StudyError("storage: an in-memory study lives in one process; use --workers 1, or "
                         "a sqlite:/// or postgresql:// storage for several workers")
    storage = storage_for(storage_url)
    study = create_study(exp, storage, seed=exp.spec.seed)
    tracker, parent = _track_study(exp, study, tracking_uri)
    ran = {"n": 0}
    started = time.perf_counter()

    def run_one(st: optuna.Study, window: tuple[str, str] | None, n: int) -> None:
        before = _count(st)
        try:
            _run_one(st, window, n)
        finally:
            ran["n"] += _count(st) - before

    def _run_one(st: optuna.Study, window: tuple[str, str] | None, n: int) -> None:
        if workers == 1 or storage_url in MEMORY:
            seen = {"n": -1}

            def on_trial(s: optuna.Study, _t: Any) -> None:
                if poll is not None and len(s.trials) != seen["n"]:
                    seen["n"] = len(s.trials)
                    poll(s)

            work(exp, st, n, window=window, tracker=tracker, parent_run_id=parent,
                 on_trial=on_trial)
        else:
            run_workers(st, storage_url, workers, exp.spec.seed, window=window, n_trials=n,
                        poll=(lambda: poll(st)) if poll is not None else None)

    try:
        if exp.spec.walk_forward is None:
            run_one(study, None, exp.spec.n_trials())
        else:
            from trader.optimize.walkforward import walk_forward

            walk_forward(exp, storage, storage_url, study,
                         lambda st, window, n: run_one(st, window, n))
    finally:
        seconds = time.perf_counter() - started
        if tracker is not None and parent is not None:
            from trader.optimize.results import best

            chosen = best(study)
            metrics = dict(chosen[0].metrics) if chosen else {}
            metrics.update({f"oos.{k}": v for k, v in
                            (study.user_attrs.get("oos_metrics") or {}).items()})
            tracker.log_metrics(parent, metrics)
    report = write_report(study, (report_dir or REPORTS / study.study_name) / "report.html")
    if tracker is not None and parent is not None:
        tracker.log_artifacts(parent, [report])
        tracker.end_run(parent)
    return Outcome(study, ran["n"], seconds, report, parent)


def _track_study(exp: LoadedExperiment, study: optuna.Study,
                 uri: str | None) -> tuple[Any, str | None]:
    """The study's parent MLflow run (made once, found again on resume), if tracking is on."""
    from trader.tracking import Tracker, tracking_uri

    where = tracking_uri(uri or exp.base.tracking.uri)
    if where is None:
        return None, None
    name = exp.base.tracking.experiment or exp.spec.name
    tracker = Tracker(where, name)
    parent = study.user_attrs.get("mlflow_parent_run_id")
    if parent is None:
        parent = tracker.start_run(
            f"study {study.study_name}", tags={"trader.kind": "study",
                                              "optuna.study": study.study_name},
            params={"method": exp.spec.method, "objective": ",".join(
                o.metric for o in exp.spec.objective), "trials": exp.spec.n_trials(),
                **{f"space.{k}": v.model_dump_json(exclude_none=True)
                   for k, v in exp.spec.params.items()}})
        study.set_user_attr("mlflow_parent_run_id", parent)
        study.set_user_attr("mlflow_uri", tracker.uri)
        study.set_user_attr("mlflow_experiment", name)
    return tracker, parent
