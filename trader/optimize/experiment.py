"""An experiment file: which config to vary, over what space, toward which objectives.

Validated at the boundary (pydantic): every problem is an ``ExperimentError`` naming
the experiment file, the key and what is wrong, so ``trader optimize`` prints one
paragraph and exits 2. Example (``config/experiments/sma_grid.yaml``)::

    name: sma-grid
    config: ../sma_qqq.yaml            # relative to this file
    method: grid                       # grid | random | evolutionary | tpe | cmaes
    objective: bps                     # a metrics.json key, or a list (Pareto front)
    constraints: {max_drawdown: {max: 0.20}, trades: {min: 10}}
    params:
      models.qqq_sma.params.fast: [5, 10, 20]
      models.qqq_sma.params.slow: {type: int, low: 50, high: 150, step: 50}
"""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from trader.engine.config import (
    AppConfig,
    ConfigError,
    format_validation_error,
    load_config,
    load_yaml,
)
from trader.optimize.space import SpaceError, apply_params, validate_variant
from trader.replay.metrics import compute_metrics

METHODS = ("grid", "random", "evolutionary", "tpe", "cmaes")
# Metrics where less is better; every other metric of metrics.json is maximised by default.
LOWER_IS_BETTER = frozenset({"max_drawdown", "annual_volatility"})
STORAGE_ENV = "TRADER_OPTIMIZE_STORAGE"
DEFAULT_STORAGE = "sqlite:///runs/optimize/studies.db"


class ExperimentError(Exception):
    """An experiment file that cannot be used; the message names the file and the key."""


def metric_names() -> tuple[str, ...]:
    """The scalar metrics of ``metrics.json`` an objective or constraint may name."""
    sample = compute_metrics([0, 1], [1.0, 1.0], trades=0, wins=0, losses=0, gross_profit=0.0,
                             gross_loss=0.0, exposure=0.0)
    return tuple(sorted({*sample, "bars", "orders"}))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Param(_Strict):
    """One dimension of the space: an int or float range, or categorical choices.

    ``when`` makes it conditional: it is sampled only in trials where each named
    parameter took the given value (e.g. a short-side setting only when shorting).
    """

    type: Literal["int", "float", "categorical"]
    low: float | None = None
    high: float | None = None
    step: float | None = None
    log: bool = False
    choices: list[Any] | None = None
    when: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _shape(self) -> Param:
        if self.type == "categorical":
            if not self.choices:
                raise ValueError("a categorical parameter needs a non-empty 'choices' list")
            return self
        if self.low is None or self.high is None:
            raise ValueError(f"an {self.type} parameter needs 'low' and 'high'")
        if self.low > self.high:
            raise ValueError(f"low ({self.low:g}) is above high ({self.high:g})")
        if self.log and self.low <= 0:
            raise ValueError("a log range needs low > 0")
        if self.log and self.step is not None:
            raise ValueError("'log' and 'step' cannot be combined")
        if self.type == "int" and any(v is not None and v != int(v)
                                      for v in (self.low, self.high, self.step)):
            raise ValueError("an int parameter needs whole numbers for low, high and step")
        return self

    def grid_values(self) -> list[Any] | None:
        """Every value the parameter takes on a grid; None when it is continuous."""
        if self.type == "categorical":
            return list(self.choices or [])
        step = self.step if self.step is not None else (1 if self.type == "int" else None)
        if step is None or self.log:
            return None
        assert self.low is not None and self.high is not None
        n = int(round((self.high - self.low) / step)) + 1
        vals = [self.low + i * step for i in range(n)]
        return [int(v) for v in vals] if self.type == "int" else [round(v, 12) for v in vals]


class Objective(_Strict):
    """A metric of ``metrics.json`` and whether more or less of it is better."""

    metric: str
    direction: Literal["maximize", "minimize"]


class Bound(_Strict):
    """A feasibility bound on one metric (``min``, ``max`` or both)."""

    min: float | None = None
    max: float | None = None

    @model_validator(mode="after")
    def _one(self) -> Bound:
        if self.min is None and self.max is None:
            raise ValueError("a constraint needs 'min' or 'max'")
        return self


class Pruning(_Strict):
    """Stop hopeless trials on intermediate equity (the running total return).

    The replay reports its return at ``checkpoints`` points; from the
    ``warmup_checkpoints``-th on, Optuna's median pruner stops a trial whose return
    is below the median of earlier trials at the same point, once
    ``startup_trials`` trials have finished.
    """

    enabled: bool = True
    checkpoints: int = Field(10, ge=2, le=1000)
    warmup_checkpoints: int = Field(3, ge=0)
    startup_trials: int = Field(5, ge=0)


class WalkForward(_Strict):
    """Rolling windows: optimise on ``in_sample_days``, test on the next ``out_of_sample_days``.

    Windows start at ``start`` (default: the config's ``data.start``) and move by
    ``step_days`` (default: the out-of-sample length) while they end before ``end``.
    """

    in_sample_days: int = Field(gt=0)
    out_of_sample_days: int = Field(gt=0)
    step_days: int | None = Field(None, gt=0)
    start: str
    end: str
    trials: int | None = Field(None, gt=0)  # per window; default the experiment's trials

    @field_validator("start", "end")
    @classmethod
    def _iso(cls, v: str) -> str:
        try:
            dt.date.fromisoformat(v[:10])
        except ValueError:
            raise ValueError(f"not an ISO date (got {v!r})") from None
        return v[:10]

    @model_validator(mode="after")
    def _fits(self) -> WalkForward:
        if not self.windows():
            raise ValueError(f"no window of {self.in_sample_days} + {self.out_of_sample_days} "
                             f"days fits between {self.start} and {self.end}")
        return self

    def windows(self) -> list[tuple[str, str, str]]:
        """(in-sample start, split, out-of-sample end) of every window, as ISO dates."""
        start, end = dt.date.fromisoformat(self.start), dt.date.fromisoformat(self.end)
        step = dt.timedelta(days=self.step_days or self.out_of_sample_days)
        ins = dt.timedelta(days=self.in_sample_days)
        oos = dt.timedelta(days=self.out_of_sample_days)
        out = []
        s = start
        while s + ins + oos <= end:
            out.append((s.isoformat(), (s + ins).isoformat(), (s + ins + oos).isoformat()))
            s += step
        return out


class Experiment(_Strict):
    """A whole experiment file, validated; ``base`` is the config it varies."""

    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9_.-]+$")
    config: Path
    method: Literal["grid", "random", "evolutionary", "tpe", "cmaes"] = "tpe"
    trials: int | None = Field(None, gt=0)
    seed: int | None = 0
    objective: list[Objective] = Field(default_factory=lambda: [Objective(
        metric="bps", direction="maximize")])
    constraints: dict[str, Bound] = Field(default_factory=dict)
    params: dict[str, Param] = Field(min_length=1)
    pruning: Pruning | None = None
    walk_forward: WalkForward | None = None
    storage: str | None = None
    population: int = Field(20, ge=2)  # evolutionary: individuals per generation
    overfit_blocks: int = Field(10, ge=2, le=20)  # CSCV: blocks of the return matrix (even)

    @field_validator("params", mode="before")
    @classmethod
    def _shorthand(cls, v: Any) -> Any:
        # ``path: [a, b, c]`` is the short form of a categorical parameter.
        if isinstance(v, dict):
            return {k: {"type": "categorical", "choices": x} if isinstance(x, list) else x
                    for k, x in v.items()}
        return v

    @field_validator("objective", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> Any:
        items = v if isinstance(v, list) else [v]
        out = []
        for x in items:
            if isinstance(x, str):
                metric = x.removeprefix("-")
                out.append({"metric": metric, "direction": "minimize"
                            if x.startswith("-") or metric in LOWER_IS_BETTER else "maximize"})
            else:
                out.append(x)
        return out

    @field_validator("overfit_blocks")
    @classmethod
    def _even(cls, v: int) -> int:
        if v % 2:
            raise ValueError("must be even (CSCV splits the blocks in halves)")
        return v

    @model_validator(mode="after")
    def _cross(self) -> Experiment:
        known = metric_names()
        for i, o in enumerate(self.objective):
            if o.metric not in known:
                raise ValueError(f"objective.{i}: unknown metric {o.metric!r}; metrics.json "
                                 f"has {', '.join(known)}")
        for m in self.constraints:
            if m not in known:
                raise ValueError(f"constraints.{m}: unknown metric {m!r}; metrics.json has "
                                 f"{', '.join(known)}")
        for path, p in self.params.items():
            for other in p.when or {}:
                if other not in self.params or list(self.params).index(other) >= \
                        list(self.params).index(path):
                    raise ValueError(f"params.{path}.when: {other!r} must be a parameter "
                                     "listed before it")
        if self.method == "grid":
            for path, p in self.params.items():
                if p.grid_values() is None:
                    raise ValueError(f"params.{path}: a grid needs discrete values (choices, or "
                                     "an int/float range with a step, not log)")
                if p.when:
                    raise ValueError(f"params.{path}.when: conditional parameters need a "
                                     "sampling method (random, tpe, evolutionary), not grid")
        elif self.trials is None:
            raise ValueError(f"trials: required for method {self.method!r} (how many trials)")
        if self.method == "cmaes" and any(p.type == "categorical" for p in self.params.values()):
            # CMA-ES samples numbers; Optuna would fall back to random for the rest.
            raise ValueError("params: method cmaes searches int/float ranges only; use tpe or "
                             "evolutionary for categorical parameters")
        if self.pruning is not None and self.pruning.enabled and len(self.objective) > 1:
            raise ValueError("pruning: works with one objective only (Optuna prunes on one "
                             "intermediate value)")
        return self

    @property
    def directions(self) -> list[str]:
        return [o.direction for o in self.objective]

    @property
    def multi(self) -> bool:
        return len(self.objective) > 1

    def grid(self) -> dict[str, list[Any]]:
        """The grid of a ``grid`` experiment: every parameter's values."""
        return {k: p.grid_values() or [] for k, p in self.params.items()}

    def grid_size(self) -> int:
        n = 1
        for vals in self.grid().values():
            n *= len(vals)
        return n

    def n_trials(self) -> int:
        return self.grid_size() if self.method == "grid" else int(self.trials or 0)


class LoadedExperiment:
    """An experiment with its file, the base config's path and the base config itself."""

    def __init__(self, path: Path, spec: Experiment, config_path: Path,
                 base_raw: dict[str, Any], base: AppConfig) -> None:
        self.path = path
        self.spec = spec
        self.config_path = config_path
        self.base_raw = base_raw
        self.base = base

    def variant(self, values: dict[str, Any], **data: Any) -> AppConfig:
        """The base config with ``values`` set at their config paths (and ``data.*`` keys)."""
        raw = apply_params(self.base_raw, values)
        if data:
            raw = apply_params(raw, {f"data.{k}": v for k, v in data.items()})
        return validate_variant(raw, self.config_path)

    def storage_url(self, override: str | None = None) -> str:
        """``--storage``, else ``$TRADER_OPTIMIZE_STORAGE``, else the file's, else SQLite."""
        return override or os.environ.get(STORAGE_ENV) or self.spec.storage or DEFAULT_STORAGE


def _refuse_password(url: str | None, where: str) -> None:
    if url and "://" in url:
        netloc = url.split("://", 1)[1].split("/", 1)[0]
        if "@" in netloc and ":" in netloc.split("@", 1)[0]:
            raise ExperimentError(f"{where}: storage URL contains a password; put the URL in "
                                  f"${STORAGE_ENV} (or use a .pgpass file) instead")


def load_experiment(path: str | Path) -> LoadedExperiment:
    """Read and check an experiment file and its base config; ``ExperimentError`` if bad."""
    p = Path(path)
    try:
        raw = load_yaml(p)
    except ConfigError as exc:
        raise ExperimentError(str(exc)) from None
    try:
        spec = Experiment.model_validate(raw)
    except ValidationError as err:
        text = format_validation_error(str(p), err).replace("invalid configuration",
                                                             "invalid experiment")
        raise ExperimentError(text) from None
    _refuse_password(spec.storage, f"{p}: storage")
    cfg_path = spec.config if spec.config.is_absolute() else (p.parent / spec.config)
    if not cfg_path.exists():
        raise ExperimentError(f"{p}: config: file {spec.config} not found (looked at {cfg_path}; "
                              "a relative path is read from the experiment file's folder)")
    try:
        base = load_config(cfg_path)
        base_raw = load_yaml(cfg_path)
    except ConfigError as exc:
        raise ExperimentError(f"{p}: config: {exc}") from None
    exp = LoadedExperiment(p, spec, cfg_path, base_raw, base)
    # Every path must name a place the config has (or a known key), now, not in trial 37.
    # Values are tried one at a time against the base, so only "unknown" problems count
    # here: a combination the model refuses (fast >= slow) fails its own trial, on record.
    for key, param in spec.params.items():
        value = param.choices[0] if param.choices else param.low
        if param.type == "int" and value is not None:
            value = int(value)
        try:
            exp.variant({key: value})
        except SpaceError as exc:
            raise ExperimentError(f"{p}: params.{key}: {exc}") from None
        except ConfigError as exc:
            detail = str(exc).split("\n", 1)[-1].strip()
            if "unknown" in detail:
                raise ExperimentError(f"{p}: params.{key}: not a key {cfg_path} accepts: "
                                      f"{detail}") from None
    return exp
