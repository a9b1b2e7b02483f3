"""Studies on Optuna storage: create or resume one, and run trials in worker processes.

The storage is a URL: ``memory`` (one process), SQLite (the default, a file under
``runs/optimize/``) or PostgreSQL for many hosts. Every worker, local or on another
host (``trader optimize worker``), loads the study from the storage and asks it for
trials; Optuna's RDB storage hands out trial numbers, and a grid sampler gives trial
*n* grid point *n*, so no point runs twice. The experiment (its file and its base
config, as parsed) is kept in the study's attributes, so a worker needs only the
study's name, the storage URL and the same data files.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.core.redaction import redact_url
from trader.optimize.experiment import Experiment, ExperimentError, LoadedExperiment

if TYPE_CHECKING:
    import optuna

MEMORY = ("memory", ":memory:")
_STOP = threading.Event()  # set by the first Ctrl-C: no new trial starts


def graceful_sigint() -> None:
    """First Ctrl-C: let the running trial finish, start no other, stop (the study resumes
    from there). A second Ctrl-C stops at once (the running trial is marked failed)."""

    def handler(signum: int, frame: Any) -> None:
        if _STOP.is_set():
            raise KeyboardInterrupt
        _STOP.set()

    signal.signal(signal.SIGINT, handler)


class StudyError(Exception):
    """A study that cannot be created, found or joined; the message hides passwords."""


def storage_for(url: str) -> Any:
    """Optuna storage for a URL (``postgresql://`` uses the installed psycopg 3 driver)."""
    import optuna
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from trader.store.db import with_psycopg

    if url in MEMORY:
        return optuna.storages.InMemoryStorage()
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise StudyError(f"storage {redact_url(url)!r} is not a database URL (use memory, "
                         "sqlite:///path or postgresql://<host>/<db>)") from None
    kwargs: dict[str, Any] = {}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database:
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        # Several local workers write one file: wait for its lock rather than fail.
        kwargs = {"connect_args": {"timeout": 60}}
    elif parsed.get_backend_name() == "postgresql":
        url = with_psycopg(url, parsed)
        kwargs = {"pool_pre_ping": True}
    else:
        raise StudyError(f"storage {redact_url(url)!r}: unsupported backend "
                         f"{parsed.get_backend_name()!r} (use sqlite or postgresql)")
    try:
        with warnings.catch_warnings():  # heartbeats are "experimental" in Optuna's words
            warnings.simplefilter("ignore")
            # A heartbeat lets a trial whose worker died (kill -9, a lost host) be failed and
            # its parameters queued again, instead of staying RUNNING for ever.
            storage = optuna.storages.RDBStorage(
                url, engine_kwargs=kwargs, heartbeat_interval=30, grace_period=120,
                heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                    max_retry=2))
    except Exception as exc:  # driver errors carry the URL; say it without the password
        text = " ".join(str(getattr(exc, "orig", None) or exc).split())[:300]
        raise StudyError(f"storage {redact_url(url)}: cannot open it: {text}") from None
    if parsed.get_backend_name() == "sqlite":
        _sqlite_wal(storage.engine)
    return storage


def _sqlite_wal(engine: Any) -> None:
    """WAL and synchronous=NORMAL: a trial's few writes no longer wait for an fsync each
    (a power cut may lose the last trials; a crash of a worker loses nothing)."""
    from sqlalchemy import event

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    engine.dispose()  # connections made before the listener get it on reconnect


def sampler_for(spec: Experiment, seed: int | None) -> optuna.samplers.BaseSampler:
    """The Optuna sampler of ``spec.method``."""
    import optuna

    from trader.optimize.objective import constraints_func

    cons = constraints_func if spec.constraints else None
    if spec.method == "grid":
        # Grid point n is the n-th of a shuffled grid: every worker must shuffle it alike,
        # so the grid takes the experiment's seed, never a worker's own.
        return optuna.samplers.GridSampler(spec.grid(), seed=spec.seed or 0)
    if spec.method == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if spec.method == "evolutionary":
        return optuna.samplers.NSGAIISampler(population_size=spec.population, seed=seed,
                                             constraints_func=cons)
    if spec.method == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed, warn_independent_sampling=False)
    return optuna.samplers.TPESampler(seed=seed, constraints_func=cons, multivariate=True,
                                      group=any(p.when for p in spec.params.values()))


def pruner_for(spec: Experiment) -> optuna.pruners.BasePruner:
    import optuna

    p = spec.pruning
    if p is None or not p.enabled:
        return optuna.pruners.NopPruner()
    return optuna.pruners.MedianPruner(n_startup_trials=p.startup_trials,
                                       n_warmup_steps=p.warmup_checkpoints)


def _attrs(exp: LoadedExperiment) -> dict[str, Any]:
    return {"experiment": exp.spec.model_dump(mode="json"), "config_raw": exp.base_raw,
            "config_path": str(exp.config_path), "experiment_path": str(exp.path)}


def experiment_of(study: optuna.Study) -> LoadedExperiment:
    """The experiment a study was created from, rebuilt from its stored attributes."""
    from trader.engine.config import ConfigError
    from trader.optimize.space import validate_variant

    attrs = study.user_attrs
    if "experiment" not in attrs:
        raise StudyError(f"study {study.study_name!r} was not created by trader optimize")
    spec = Experiment.model_validate(attrs["experiment"])
    cfg_path = Path(attrs["config_path"])
    try:
        base = validate_variant(attrs["config_raw"], cfg_path)
    except ConfigError as exc:
        raise StudyError(f"study {study.study_name!r}: its config no longer loads here "
                         f"(same data files needed on every worker): {exc}") from None
    return LoadedExperiment(Path(attrs["experiment_path"]), spec, cfg_path,
                            attrs["config_raw"], base)


def create_study(exp: LoadedExperiment, storage: Any, name: str | None = None,
                 seed: int | None = None) -> optuna.Study:
    """Create the study, or load it to resume; a different experiment under its name is
    refused (resuming must not mix two searches)."""
    import optuna

    study_name = name or exp.spec.name
    study = optuna.create_study(study_name=study_name, storage=storage,
                                directions=exp.spec.directions, load_if_exists=True,
                                sampler=sampler_for(exp.spec, seed), pruner=pruner_for(exp.spec))
    mine = _attrs(exp)
    old = study.user_attrs.get("experiment")
    if old is None:
        for k, v in mine.items():
            study.set_user_attr(k, v)
    elif old != mine["experiment"] or study.user_attrs.get("config_raw") != mine["config_raw"]:
        raise StudyError(f"study {study_name!r} already exists with another experiment or "
                         "config; give this one another name (or another --storage)")
    if exp.spec.method == "grid":
        _requeue_interrupted(study)
    return study


def _requeue_interrupted(study: optuna.Study) -> None:
    """Grid points whose only trials failed (a Ctrl-C mid-trial) are queued again."""
    from optuna.trial import TrialState

    done: set[tuple] = set()
    failed: dict[tuple, dict[str, Any]] = {}
    for t in study.get_trials(deepcopy=False):
        key = tuple(sorted(t.params.items()))
        if t.state == TrialState.FAIL and t.params:
            failed[key] = t.params
        elif t.state != TrialState.FAIL and key:
            done.add(key)
    for key, params in failed.items():
        if key not in done:
            study.enqueue_trial(params, skip_if_exists=True)


def finished(study: optuna.Study, *, running: bool = False) -> int:
    """Trials that count toward the budget: completed and pruned (and running ones)."""
    from optuna.trial import TrialState

    states = (TrialState.COMPLETE, TrialState.PRUNED, *((TrialState.RUNNING,) if running else ()))
    return len(study.get_trials(deepcopy=False, states=states))


def work(exp: LoadedExperiment, study: optuna.Study, n_trials: int, *,
         window: tuple[str, str] | None = None, tracker: Any = None,
         parent_run_id: str | None = None,
         on_trial: Callable[[optuna.Study, Any], None] | None = None) -> None:
    """Run trials of ``study`` in this process until it has ``n_trials`` finished ones."""
    import optuna

    from trader.optimize.objective import InvalidVariant, TrialRunner

    def budget(st: optuna.Study, trial: Any) -> None:
        if on_trial is not None:
            on_trial(st, trial)
        # Trials other workers are running count too: starting one more would overshoot
        # (and, on a grid, find no point left).
        if _STOP.is_set() or finished(st, running=True) >= n_trials:
            st.stop()

    if _STOP.is_set():
        raise KeyboardInterrupt
    if finished(study) >= n_trials:
        return
    runner = TrialRunner(exp, window=window, tracker=tracker, parent_run_id=parent_run_id)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    study.optimize(runner, callbacks=[budget], catch=(InvalidVariant,), gc_after_trial=False)
    if _STOP.is_set():
        raise KeyboardInterrupt


def worker_main(study_name: str, storage_url: str, seed: int | None,
                window: tuple[str, str] | None = None, n_trials: int | None = None) -> None:
    """A worker process: join the study, run trials until its budget is spent."""
    import optuna

    from trader.core.logging import StderrProxy, configure_logging

    configure_logging("error", StderrProxy())
    storage = storage_for(storage_url)
    probe = optuna.load_study(study_name=study_name, storage=storage)
    exp = experiment_of(probe)
    study = optuna.load_study(study_name=study_name, storage=storage,
                              sampler=sampler_for(exp.spec, seed), pruner=pruner_for(exp.spec))
    tracker = None
    parent = probe.user_attrs.get("mlflow_parent_run_id")
    if parent:  # the study is tracked: log each trial nested under its parent run
        from trader.tracking import Tracker

        tracker = Tracker(probe.user_attrs["mlflow_uri"], probe.user_attrs["mlflow_experiment"])
    # A walk-forward window's study carries its dates and budget: a worker that joins it
    # from another host replays the same in-sample window.
    if window is None and "window" in probe.user_attrs:
        start, split, _end = probe.user_attrs["window"]
        window = (start, split)
    n = n_trials or probe.user_attrs.get("n_trials") or exp.spec.n_trials()
    work(exp, study, n, window=window, tracker=tracker, parent_run_id=parent)


def _child(study_name: str, storage_url: str, seed: int | None,
           window: tuple[str, str] | None, n_trials: int | None) -> None:
    # Its own process group: a Ctrl-C in the terminal reaches the parent only, which
    # passes it on once (two would abort the running trials).
    os.setpgrp()
    graceful_sigint()
    try:
        worker_main(study_name, storage_url, seed, window, n_trials)
    except KeyboardInterrupt:
        os._exit(130)


def run_workers(study: optuna.Study, storage_url: str, workers: int, seed: int | None, *,
                window: tuple[str, str] | None = None, n_trials: int | None = None,
                poll: Callable[[], None] | None = None) -> None:
    """Run the study in ``workers`` processes; on Ctrl-C stop them (their running trials
    are marked failed and a grid re-queues them when the study is resumed)."""
    ctx = mp.get_context("spawn")  # a fresh interpreter: no database connection is inherited
    procs = [ctx.Process(target=_child, daemon=False,
                         args=(study.study_name, storage_url,
                               None if seed is None else seed + i, window, n_trials))
             for i in range(workers)]
    for p in procs:
        p.start()
    forwarded = False
    try:
        while any(p.is_alive() for p in procs):
            if _STOP.is_set() and not forwarded:
                forwarded = True
                for p in procs:
                    if p.is_alive() and p.pid:
                        os.kill(p.pid, signal.SIGINT)
            if poll is not None:
                poll()
            time.sleep(0.1)
    except KeyboardInterrupt:  # a second Ctrl-C: the workers stop at once too
        for p in procs:
            if p.is_alive() and p.pid:
                os.kill(p.pid, signal.SIGINT)
        raise
    finally:
        for p in procs:
            p.join()
    if poll is not None:
        poll()
    if _STOP.is_set():
        raise KeyboardInterrupt
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise StudyError(f"{len(failed)} worker process(es) failed (exit codes {failed}); "
                         "see their messages above")


def load(study_name: str, storage_url: str) -> optuna.Study:
    """An existing study, or ``StudyError`` naming the studies the storage has."""
    import optuna

    storage = storage_for(storage_url)
    try:
        return optuna.load_study(study_name=study_name, storage=storage)
    except KeyError:
        names = [s.study_name for s in optuna.get_all_study_summaries(storage)]
        raise StudyError(f"no study {study_name!r} in {redact_url(storage_url)} (studies there: "
                         f"{', '.join(names) or 'none'})") from None


__all__ = ["ExperimentError", "StudyError", "create_study", "load", "run_workers", "work"]
