"""What a study found: ranked trials, the best (feasible) ones, importances, overfit odds."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from trader.optimize import overfit
from trader.optimize.experiment import Experiment

if TYPE_CHECKING:
    import optuna


@dataclass(frozen=True)
class Row:
    """One finished trial as the tables show it."""

    number: int
    values: tuple[float, ...]
    params: dict[str, Any]
    metrics: dict[str, float]
    feasible: bool


def rows(study: optuna.Study) -> list[Row]:
    """Completed trials, best first by the first objective (infeasible ones last)."""
    from optuna.trial import TrialState

    spec = Experiment.model_validate(study.user_attrs["experiment"])
    out = [Row(t.number, tuple(t.values), dict(t.params), dict(_result(t).get("metrics", {})),
               bool(_result(t).get("feasible", True)))
           for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
           if t.values and all(math.isfinite(v) for v in t.values)]
    sign = -1.0 if spec.directions[0] == "maximize" else 1.0
    # Ties keep trial order, so the ranking is the same whoever ran which trial.
    return sorted(out, key=lambda r: (not r.feasible, sign * r.values[0], r.number))


def _result(trial: Any) -> dict[str, Any]:
    from trader.optimize.objective import RESULT

    return trial.user_attrs.get(RESULT) or {}


def best(study: optuna.Study) -> list[Row]:
    """The best feasible trial (one objective) or the feasible Pareto front (several)."""
    ranked = [r for r in rows(study) if r.feasible]
    if len(study.directions) == 1:
        return ranked[:1]
    front = {t.number for t in study.best_trials}
    return [r for r in ranked if r.number in front]


def importances(study: optuna.Study) -> dict[str, float]:
    """Parameter importances of the first objective; {} when too few trials to say."""
    import optuna

    try:
        return dict(optuna.importance.get_param_importances(
            study, target=(lambda t: t.values[0]) if len(study.directions) > 1 else None))
    except (RuntimeError, ValueError, ZeroDivisionError):
        return {}


def overfitting(study: optuna.Study, blocks: int = 10) -> dict[str, float | None]:
    """Deflated Sharpe of the chosen trial and PBO over all completed trials."""
    from optuna.trial import TrialState

    trials = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if _result(t).get("returns")]
    chosen = best(study)
    out: dict[str, float | None] = {"trials": float(len(trials)), "deflated_sharpe": None,
                                    "pbo": None}
    if len(trials) < 2 or not chosen:
        return out
    by_number = {t.number: _result(t)["returns"] for t in trials}
    sharpes = [overfit.sharpe(r) for r in by_number.values()]
    if chosen[0].number in by_number:
        out["deflated_sharpe"] = overfit.deflated_sharpe(by_number[chosen[0].number], sharpes)
    length = min(len(r) for r in by_number.values())
    if length >= blocks:
        # Same data, same daily samples: columns line up (trimmed to the shortest).
        matrix = [list(col) for col in zip(*(r[:length] for r in by_number.values()),
                                           strict=True)]
        out["pbo"] = overfit.pbo(matrix, blocks)
    return out


def study_evidence(study: optuna.Study) -> Any:
    """A walk-forward study's chained out-of-sample metrics as promotion evidence."""
    from models.lifecycle import Evidence
    from trader.optimize.study import StudyError

    oos = study.user_attrs.get("oos_metrics")
    if not oos:
        raise StudyError(f"study {study.study_name!r} has no out-of-sample result (only a "
                         "walk_forward experiment has one: in-sample bests are not evidence)")
    models = [m.get("name") for m in study.user_attrs.get("config_raw", {}).get("models", [])]
    return Evidence(f"study {study.study_name} (out-of-sample, "
                    f"{len(study.user_attrs.get('walk_forward', []))} windows)", oos, models)
