"""Experiment tracking in MLflow (the optional ``[tracking]`` extra).

Tracking is on when ``$MLFLOW_TRACKING_URI`` or a config's ``tracking.uri`` names a
store; then every ``trader backtest``, every optimisation trial (nested under its
study's run) and any caller of :func:`track_run` logs the flattened config as
params, the metrics, tags (git commit, data hash, config hash) and artifacts.
MLflow is imported only here and only when tracking is on: the core never needs it.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
from collections.abc import Iterable, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from trader.core.redaction import redact_url

ENV_URI = "MLFLOW_TRACKING_URI"
DEFAULT_URI = "sqlite:///mlruns/mlflow.db"  # in the project directory (the working dir)
_MAX_PARAM = 6000  # MLflow's limit on a param value's length


class TrackingError(Exception):
    """Tracking is asked for but cannot be done (extra missing, store unreachable)."""


def tracking_uri(configured: str | None = None) -> str | None:
    """The tracking URI in force: ``$MLFLOW_TRACKING_URI``, else the config's; None = off."""
    return os.environ.get(ENV_URI) or configured or None


def _absolute(uri: str) -> str:
    # A relative SQLite path would land wherever a worker runs; pin it to this directory.
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:////"):
        path = Path(uri.removeprefix("sqlite:///")).absolute()
        path.parent.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{path}"
    return uri


def flatten(value: Any, prefix: str = "") -> dict[str, str]:
    """A nested config as ``dotted.key: text`` pairs (list items by name/id or index)."""
    out: dict[str, str] = {}
    if isinstance(value, Mapping):
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}{k}."))
    elif isinstance(value, list | tuple) and value and all(isinstance(x, Mapping) for x in value):
        for i, v in enumerate(value):
            label = v.get("name") or v.get("id") or i
            out.update(flatten(v, f"{prefix}{label}."))
    else:
        out[prefix.rstrip(".")] = str(value)[:_MAX_PARAM]
    return out


def numeric_metrics(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """Every finite number in a (nested) metrics dict, keyed by its dotted path."""
    import math

    out: dict[str, float] = {}
    for k, v in metrics.items():
        key = re.sub(r"[^\w\-./ ]", "_", f"{prefix}{k}")
        if isinstance(v, Mapping):
            out.update(numeric_metrics(v, f"{key}."))
        elif isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v):
            out[key] = float(v)
    return out


@lru_cache(maxsize=1)
def git_commit() -> str | None:
    """The checked-out commit of the working directory's repository, if any."""
    try:
        res = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True,
                             timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return res.stdout.strip() or None if res.returncode == 0 else None


@lru_cache(maxsize=64)
def _file_digest(path: str, size: int, mtime: float) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def data_hash(cfg: Any) -> str:
    """One digest of every data file a config replays (content, not names)."""
    h = hashlib.sha256()
    for inst in sorted(cfg.instruments, key=lambda i: i.id):
        if inst.data is None or not Path(inst.data.path).exists():
            continue
        st = Path(inst.data.path).stat()
        h.update(f"{inst.id}:{_file_digest(str(inst.data.path), st.st_size, st.st_mtime)};"
                 .encode())
    return h.hexdigest()


def run_tags(cfg: Any = None, config_path: Path | None = None) -> dict[str, str]:
    """Tags every tracked run carries: git commit, data hash, config hash, models."""
    from trader.store.runs import config_hash

    tags = {"git_commit": git_commit() or "unknown"}
    if cfg is not None:
        tags["config_hash"] = config_hash(cfg)
        tags["data_hash"] = data_hash(cfg)
        tags["models"] = ",".join(m.name for m in cfg.models)
    if config_path is not None:
        tags["config_path"] = str(config_path)
    return tags


class Tracker:
    """An MLflow client on one tracking URI and experiment (created on first use)."""

    def __init__(self, uri: str, experiment: str | None = None) -> None:
        try:
            from mlflow.tracking import MlflowClient
        except ImportError:
            raise TrackingError("tracking is configured (tracking.uri or $MLFLOW_TRACKING_URI) "
                                "but MLflow is not installed: pip install "
                                "'trader-daemon[tracking]'") from None
        import logging

        # MLflow and its migrations log at INFO on stderr; the commands say what matters.
        for name in ("mlflow", "alembic"):
            logging.getLogger(name).setLevel(logging.WARNING)
        self.uri = _absolute(uri)
        self.safe_uri = redact_url(self.uri)
        self.client = MlflowClient(self.uri)
        self.experiment = experiment
        self.experiment_id = ""
        if experiment is not None:
            exp = self.client.get_experiment_by_name(experiment)
            self.experiment_id = (exp.experiment_id if exp is not None
                                  else self._create(experiment))

    def _create(self, name: str) -> str:
        try:
            return self.client.create_experiment(name)
        except Exception:  # another worker created it first
            exp = self.client.get_experiment_by_name(name)
            if exp is None:
                raise
            return exp.experiment_id

    def start_run(self, name: str, *, params: Mapping[str, Any] | None = None,
                  tags: Mapping[str, str] | None = None,
                  parent_run_id: str | None = None) -> str:
        """Open a run (nested when ``parent_run_id``); return its id."""
        all_tags = dict(tags or {})
        if parent_run_id:
            all_tags["mlflow.parentRunId"] = parent_run_id
        run = self.client.create_run(self.experiment_id, run_name=name, tags=all_tags)
        if params:
            self._log_params(run.info.run_id, params)
        return run.info.run_id

    def _log_params(self, run_id: str, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k[:250], str(v)[:_MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), 100):  # MLflow takes at most 100 params per batch
            self.client.log_batch(run_id, params=items[i:i + 100])

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], step: int = 0) -> None:
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in numeric_metrics(metrics).items()]
        for i in range(0, len(items), 1000):
            self.client.log_batch(run_id, metrics=items[i:i + 1000])

    def log_artifacts(self, run_id: str, paths: Iterable[Path]) -> None:
        for p in paths:
            if Path(p).exists():
                self.client.log_artifact(run_id, str(p))

    def end_run(self, run_id: str, status: str = "FINISHED") -> None:
        self.client.set_terminated(run_id, status)

    def log_run(self, name: str, *, cfg: Any = None, config_path: Path | None = None,
                metrics: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
                artifacts: Iterable[Path] = (), tags: Mapping[str, str] | None = None,
                parent_run_id: str | None = None) -> str:
        """One finished run: flattened config and ``params``, metrics, tags, artifacts."""
        all_params = dict(flatten(cfg.model_dump(mode="json", exclude={"store", "tracking"}))
                          if cfg is not None else {})
        all_params.update({k: str(v) for k, v in (params or {}).items()})
        run_id = self.start_run(name, params=all_params,
                                tags={**run_tags(cfg, config_path), **(tags or {})},
                                parent_run_id=parent_run_id)
        try:
            if metrics:
                self.log_metrics(run_id, metrics)
            self.log_artifacts(run_id, artifacts)
        except Exception:
            self.end_run(run_id, "FAILED")
            raise
        self.end_run(run_id)
        return run_id

    def run_data(self, run_id: str) -> dict[str, Any]:
        """A run's metrics, params and tags (for evidence)."""
        run = self.client.get_run(run_id)
        return {"metrics": dict(run.data.metrics), "params": dict(run.data.params),
                "tags": dict(run.data.tags)}


def run_evidence(uri: str, run_id: str) -> Any:
    """A tracked run as promotion evidence: its metrics and the models it ran."""
    from models.lifecycle import Evidence

    tracker = Tracker(uri)
    try:
        data = tracker.run_data(run_id)
    except Exception as exc:  # MLflow says "Run ... not found" in its own exception type
        raise TrackingError(f"no MLflow run {run_id!r} in {tracker.safe_uri}: "
                            f"{str(exc).splitlines()[0][:200]}") from None
    models = [m for m in data["tags"].get("models", "").split(",") if m]
    return Evidence(f"mlflow run {run_id} ({tracker.safe_uri})", data["metrics"], models)


def track_run(name: str, *, kind: str, cfg: Any = None, config_path: Path | None = None,
              metrics: Mapping[str, Any] | None = None, params: Mapping[str, Any] | None = None,
              artifacts: Iterable[Path] = (), tags: Mapping[str, str] | None = None,
              uri: str | None = None, experiment: str | None = None) -> str | None:
    """Log one finished run (a backtest, a training, ...) if tracking is on; its run id.

    ``kind`` (``backtest``, ``train``) becomes the ``trader.kind`` tag. The URI is
    ``$MLFLOW_TRACKING_URI``, else ``uri``, else the config's ``tracking.uri``;
    with none, nothing is logged and None is returned.
    """
    configured = uri or (cfg.tracking.uri if cfg is not None else None)
    where = tracking_uri(configured)
    if where is None:
        return None
    exp = experiment or (cfg.tracking.experiment if cfg is not None else None) or name
    tracker = Tracker(where, exp)
    return tracker.log_run(name, cfg=cfg, config_path=config_path, metrics=metrics,
                           params=params, artifacts=artifacts,
                           tags={"trader.kind": kind, **(tags or {})})
