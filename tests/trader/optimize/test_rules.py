"""Small rules: constraint violations, and the candidate gate on evidence."""

from __future__ import annotations

import math

from models.lifecycle import Evidence, LifecycleConfig, evidence_checks
from trader.optimize.experiment import Bound
from trader.optimize.objective import feasible, violations


def test_violations_measure_how_far_each_bound_is_missed() -> None:
    bounds = {"max_drawdown": Bound(max=0.2), "trades": Bound(min=10), "sharpe": Bound(min=0,
                                                                                      max=3)}
    out = violations({"max_drawdown": 0.25, "trades": 12, "sharpe": 1.0}, bounds)
    assert out[0] == 0.25 - 0.2 and out[1] == 10 - 12 and out[2] == -1.0
    assert not feasible(out) and feasible(out[1:]) and feasible([])
    assert violations({"trades": float("nan")}, {"trades": Bound(min=1)}) == [math.inf]


def test_evidence_gates_the_named_model_alone() -> None:
    good = {"sharpe": 1.5, "max_drawdown": 0.1, "cagr": 0.2, "trades": 30}
    checks = evidence_checks("m", Evidence("mlflow run abc", good, ["m"]), LifecycleConfig())
    assert checks[0].detail == "mlflow run abc" and all(c.passed for c in checks)
    other = evidence_checks("m", Evidence("mlflow run abc", good, ["m", "n"]), LifecycleConfig())
    assert [c.passed for c in other] == [False] and "not m alone" in other[0].detail
    weak = evidence_checks("m", Evidence("s", {**good, "trades": 3}, ["m"]), LifecycleConfig())
    assert [c.name for c in weak if not c.passed] == ["trades"]
