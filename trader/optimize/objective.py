"""One trial: a config variant replayed in-process, scored by its ``metrics.json``.

A worker process reads each distinct data window once and replays every later
trial from that list of bars (the files are not read again). Constraints are
stored with the trial (Optuna's ``constraints`` convention: a value <= 0 is
satisfied) so samplers that understand them (TPE, NSGA-II) and the rankings skip
infeasible trials. Pruning reads the running total return at checkpoints.
"""

from __future__ import annotations

import math
import os
import socket
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.core.events import Bar
from trader.engine.config import AppConfig, ConfigError
from trader.optimize.experiment import Bound, LoadedExperiment
from trader.optimize.space import SpaceError, suggest

if TYPE_CHECKING:
    import optuna

    from trader.tracking import Tracker

_BARS: dict[tuple, list[Bar]] = {}  # per worker process: data window -> its bars
RESULT = "result"  # the trial's user attribute: metrics, daily returns, constraints, worker
WORKER = f"{socket.gethostname()}:{os.getpid()}"  # which host and process ran a trial


# User attribute of a trial a worker opened after the grid was exhausted (pruned at once).
SURPLUS = "surplus"


class InvalidVariant(Exception):
    """A sampled combination the config refuses (e.g. fast >= slow); the trial fails."""


def bars_for(cfg: AppConfig) -> list[Bar]:
    """The bars ``cfg`` replays, read once per process and data window."""
    from trader.data.feed import feed_from_config

    key = (tuple((i.id, str(i.data.path), i.data.timeframe) for i in cfg.instruments if i.data),
           cfg.data.on_bad_row, cfg.data.start, cfg.data.end)
    if key not in _BARS:
        _BARS[key] = list(feed_from_config(cfg))
    return _BARS[key]


def violations(metrics: dict[str, Any], constraints: dict[str, Bound]) -> list[float]:
    """How far each bound is missed (<= 0: satisfied), in the order of ``constraints``."""
    out = []
    for metric, b in constraints.items():
        v = metrics.get(metric)
        x = float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan
        worst = -math.inf
        if b.min is not None:
            worst = max(worst, b.min - x if x == x else math.inf)
        if b.max is not None:
            worst = max(worst, x - b.max if x == x else math.inf)
        out.append(worst)
    return out


def feasible(values: Sequence[float] | None) -> bool:
    return not values or all(v <= 0 for v in values)


def scalar_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """The numeric top-level metrics (finite), as stored with each trial."""
    return {k: float(v) for k, v in metrics.items()
            if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)}


def daily_returns(engine: Any) -> list[float]:
    """The run's returns between daily NAV samples (what Sharpe is computed on)."""
    from trader.replay.metrics import returns

    return [round(r, 10) for r in returns([p.nav for p in engine.recorder.equity])]


def constraints_func(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
    """For TPE and NSGA-II: the violations stored by the trial (none yet: feasible)."""
    return trial.user_attrs.get(RESULT, {}).get("constraints", [])


class TrialRunner:
    """The objective Optuna calls: sample, build the variant, replay, score, record."""

    def __init__(self, exp: LoadedExperiment, *, window: tuple[str, str] | None = None,
                 tracker: Tracker | None = None, parent_run_id: str | None = None) -> None:
        self.exp = exp
        self.spec = exp.spec
        self.window = window
        self.tracker = tracker
        self.parent_run_id = parent_run_id

    def __call__(self, trial: optuna.Trial) -> float | tuple[float, ...]:
        import optuna

        if self.spec.method == "grid" and trial.number >= self.spec.grid_size():
            attrs = trial.study._storage.get_trial_system_attrs(trial._trial_id)
            # Queued again (an interrupted point, a dead worker's) is fine; anything else
            # means another worker took the last point between our check and this trial.
            if not {"fixed_params", "failed_trial"} & attrs.keys():
                trial.set_user_attr(SURPLUS, True)  # not a trial run: counts never show it
                raise optuna.TrialPruned("grid exhausted by other workers")
        values = suggest(trial, self.spec.params)
        cfg = self.variant(values)
        result = self.replay(cfg, trial)
        metrics = scalar_metrics(result.metrics)
        bad = violations(result.metrics, self.spec.constraints)
        # One attribute, one write to the storage per trial.
        trial.set_user_attr(RESULT, {"metrics": metrics, "returns": daily_returns(result.engine),
                                     "constraints": bad, "feasible": feasible(bad),
                                     "worker": WORKER})
        scores = tuple(metrics.get(o.metric, math.nan) for o in self.spec.objective)
        return scores if self.spec.multi else scores[0]

    def variant(self, values: dict[str, Any]) -> AppConfig:
        data = {"start": self.window[0], "end": self.window[1]} if self.window else {}
        try:
            return self.exp.variant(values, **data)
        except (ConfigError, SpaceError) as exc:
            detail = " ".join(str(exc).split("\n", 1)[-1].split())
            raise InvalidVariant(f"{values}: {detail}") from None

    def replay(self, cfg: AppConfig, trial: optuna.Trial) -> Any:
        from trader.replay.backtest import run_backtest

        bars = bars_for(cfg)
        pruning = self.spec.pruning
        engine_box: list[Any] = []
        feed: Any = bars
        if pruning is not None and pruning.enabled:
            feed = _checkpointed(bars, engine_box, trial, pruning.checkpoints,
                                 pruning.warmup_checkpoints)
        if self.tracker is None:
            return run_backtest(cfg, None, feed=feed, on_engine=engine_box.append)
        with tempfile.TemporaryDirectory(prefix="trial-") as tmp:
            out = Path(tmp)
            result = run_backtest(cfg, out, feed=feed, on_engine=engine_box.append)
            run_id = self.tracker.log_run(
                f"{self.spec.name}-{trial.number}", cfg=cfg, config_path=self.exp.config_path,
                metrics=result.metrics, params={"trial": trial.number, **trial.params},
                artifacts=[out / n for n in ("metrics.json", "trades.csv", "equity.csv")],
                parent_run_id=self.parent_run_id, tags={"optuna.study": self.spec.name})
            trial.set_user_attr("mlflow_run_id", run_id)
            return result


def _checkpointed(bars: list[Bar], engine_box: list[Any], trial: optuna.Trial,
                  checkpoints: int, warmup: int) -> Iterator[Bar]:
    """The bars, reporting the running total return ``checkpoints`` times to the pruner."""
    import optuna

    every = max(1, len(bars) // checkpoints)
    for i, bar in enumerate(bars, 1):
        yield bar
        if i % every == 0 and engine_box:
            pf = engine_box[0].portfolio
            step = i // every
            trial.report(pf.nav / pf.initial_cash - 1.0, step)
            if step >= warmup and trial.should_prune():
                raise optuna.TrialPruned(f"return {pf.nav / pf.initial_cash - 1.0:.2%} at "
                                         f"checkpoint {step} below the median")
