"""The model lifecycle: research -> candidate -> paper -> live, gated and on record.

The rules live here: the stages, the gates (small pure functions of numbers the
store holds: backtest runs, paper fills, each tested on its own) and the mode
filter.  The registry that keeps each model's stage and every change in the
database is ``trader.store.lifecycle.Lifecycle``.

The mode filter decides which models a session may load: replay runs whatever
its config names, paper runs candidate and paper models, live only live ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

STAGES: tuple[str, ...] = ("research", "candidate", "paper", "live")
MODE_STAGES: dict[str, frozenset[str] | None] = {
    "replay": None,  # a replay runs any model its config names
    "paper": frozenset({"candidate", "paper"}),
    "live": frozenset({"live"}),
}
DAY_NS = 86_400 * 1_000_000_000



class LifecycleConfig(BaseModel):
    """Gates a model must pass to move up the stages research -> candidate -> paper -> live."""

    model_config = ConfigDict(extra="forbid")

    candidate_min_sharpe: float = 1.0
    candidate_max_drawdown: float = Field(0.20, ge=0, le=1)
    candidate_min_cagr: float = 0.10
    candidate_min_trades: int = Field(10, ge=0)
    live_min_paper_days: float = Field(30.0, ge=0)
    live_min_paper_trades: int = Field(10, ge=0)
    live_max_mean_slippage_bps: float = Field(10.0, ge=0)


class LifecycleError(Exception):
    """A stage change that cannot be made (unknown stage, gate failed, missing confirmation)."""


class StageRefused(LifecycleError):
    """A model loaded in a mode its stage does not allow."""


@dataclass(frozen=True, slots=True)
class Check:
    """One condition of a gate, with the number it was decided on."""

    name: str
    passed: bool
    detail: str


@dataclass(frozen=True, slots=True)
class GateResult:
    """Whether a model may move to ``to_stage``, condition by condition."""

    model: str
    to_stage: str
    checks: tuple[Check, ...] = field(default_factory=tuple)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    def report(self) -> str:
        lines = [f"gate to {self.to_stage} for {self.model}: {'PASS' if self.passed else 'FAIL'}"]
        lines += [f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in self.checks]
        return "\n".join(lines)


# -- gates as pure functions ------------------------------------------------------
def _num(metrics: Mapping[str, Any], key: str) -> float:
    v = metrics.get(key)
    return float(v) if isinstance(v, int | float) and math.isfinite(v) else math.nan


def backtest_checks(metrics: Mapping[str, Any], gates: LifecycleConfig) -> tuple[Check, ...]:
    """The candidate gate applied to one backtest's metrics."""
    sharpe, dd = _num(metrics, "sharpe"), _num(metrics, "max_drawdown")
    cagr, trades = _num(metrics, "cagr"), _num(metrics, "trades")
    return (
        Check("sharpe", sharpe >= gates.candidate_min_sharpe,
              f"{sharpe:.3f} (need >= {gates.candidate_min_sharpe})"),
        Check("max_drawdown", dd <= gates.candidate_max_drawdown,
              f"{dd:.2%} (need <= {gates.candidate_max_drawdown:.0%})"),
        Check("cagr", cagr >= gates.candidate_min_cagr,
              f"{cagr:.2%} (need >= {gates.candidate_min_cagr:.0%})"),
        Check("trades", trades >= gates.candidate_min_trades,
              f"{trades:.0f} (need >= {gates.candidate_min_trades})"),
    )


def model_metrics(run: Mapping[str, Any], model: str) -> Mapping[str, Any] | None:
    """The metrics of ``model`` in a run: its own entry, or the run's when it ran alone."""
    per_model = (run.get("metrics") or {}).get("per_model") or {}
    if model in per_model:
        return per_model[model]
    if list(run.get("models") or []) == [model]:
        return run.get("metrics") or {}
    return None


@dataclass(frozen=True, slots=True)
class Evidence:
    """Results a promotion names instead of the stored backtests: a tracked run, or a
    study's out-of-sample result. ``source`` (e.g. ``mlflow run 3f2a...``) goes into the
    gate report, so the audit trail says which run the decision was taken on."""

    source: str
    metrics: Mapping[str, Any]
    models: Sequence[str]


def evidence_checks(name: str, evidence: Evidence,
                    gates: LifecycleConfig) -> tuple[Check, ...]:
    """The candidate gate applied to the evidence's metrics for ``name``."""
    metrics = model_metrics({"metrics": evidence.metrics, "models": list(evidence.models)}, name)
    if metrics is None:
        return (Check("evidence", False,
                      f"{evidence.source} ran models {list(evidence.models)}, not {name} alone"),)
    return (Check("evidence", True, evidence.source), *backtest_checks(metrics, gates))


def live_checks(days_in_paper: float, paper_trades: int, mean_slippage_bps: float | None,
                gates: LifecycleConfig) -> tuple[Check, ...]:
    """The live gate: long enough in paper, enough paper trades, slippage within bound."""
    slip_ok = (mean_slippage_bps is not None
               and mean_slippage_bps <= gates.live_max_mean_slippage_bps)
    slip_text = ("no paper fills with a reference price" if mean_slippage_bps is None
                 else f"{mean_slippage_bps:.2f} bps")
    return (
        Check("days_in_paper", days_in_paper >= gates.live_min_paper_days,
              f"{days_in_paper:.1f} days (need >= {gates.live_min_paper_days:g})"),
        Check("paper_trades", paper_trades >= gates.live_min_paper_trades,
              f"{paper_trades} (need >= {gates.live_min_paper_trades})"),
        Check("mean_slippage", slip_ok,
              f"{slip_text} (need <= {gates.live_max_mean_slippage_bps:g} bps)"),
    )


def slippage_bps(side: str, price: float, ref_price: float) -> float:
    """Cost of a fill against the mark at decision time, in bps (positive = worse)."""
    sign = 1.0 if side == "BUY" else -1.0
    return sign * (price - ref_price) / ref_price * 10_000.0


def require_text(value: str, what: str, limit: int = 200) -> None:
    if not value or not value.strip():
        raise LifecycleError(f"a stage change needs {what}")
    if len(value) > limit:
        raise LifecycleError(f"{what} is limited to {limit} characters (got {len(value)})")


# -- mode filter ---------------------------------------------------------------------
def allowed_stages(mode: str) -> frozenset[str] | None:
    try:
        return MODE_STAGES[mode]
    except KeyError:
        raise LifecycleError(f"unknown mode {mode!r}; known: {sorted(MODE_STAGES)}") from None


def refused_models(mode: str, stages: Mapping[str, str], names: Iterable[str],
                   fix: str = "") -> list[str]:
    """Why each model in ``names`` may not run in ``mode`` (empty = all may).

    ``stages`` are the registry's; a model missing from it is not registered,
    whatever a config file says. ``fix``: the options naming the deployment, for
    the command in the message that fixes it.
    """
    allowed = allowed_stages(mode)
    if allowed is None:
        return []
    need = min(allowed, key=STAGES.index)
    runs = "/".join(s for s in STAGES if s in allowed)
    out = []
    for name in names:
        stage = stages.get(name)
        if stage in allowed:
            continue
        where = ("is not registered in the lifecycle registry" if stage is None
                 else f"is at stage {stage} in the lifecycle registry")
        command = " ".join(x for x in ("trader models promote", name, fix) if x)
        out.append(f"model {name!r} {where}; --mode {mode} runs only {runs} models "
                   f"(promote it to {need}: `{command} --reason ...`)")
    return out


def check_mode(mode: str, stages: Mapping[str, str], names: Sequence[str],
               fix: str = "") -> None:
    """Raise ``StageRefused`` naming each model (and its stage) that ``mode`` may not load."""
    problems = refused_models(mode, stages, names, fix)
    if problems:
        raise StageRefused("\n".join(problems))
