"""The model lifecycle: research -> candidate -> paper -> live, gated and on record.

The stage of a model lives in the database (``model_stages``), and every change
is a ``model_stage_history`` row saying from, to, when, who, why, and whether a
gate was forced.  The gates are small pure functions of numbers the store
holds (backtest runs, paper fills), so each one is tested on its own.

The mode filter decides which models a session may load: replay runs whatever
its config names, paper runs candidate and paper models, live only live ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert, select, update

from trader.core.clock import Clock, LiveClock
from trader.engine.config import LifecycleConfig
from trader.store import schema as s
from trader.store.store import Store
from trader.store.tables import FILLS, ORDERS, SESSIONS

STAGES: tuple[str, ...] = ("research", "candidate", "paper", "live")
MODE_STAGES: dict[str, frozenset[str] | None] = {
    "replay": None,  # a replay runs any model its config names
    "paper": frozenset({"candidate", "paper"}),
    "live": frozenset({"live"}),
}
DAY_NS = 86_400 * 1_000_000_000

STAGES_T = s.ModelStageRow.__table__
HISTORY_T = s.ModelStageHistoryRow.__table__


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


# -- the registry -------------------------------------------------------------------
class Lifecycle:
    """Stages of models in the store, and the gated commands that change them."""

    def __init__(self, store: Store, gates: LifecycleConfig | None = None,
                 clock: Clock | None = None) -> None:
        self.store = store
        self.gates = gates or LifecycleConfig()
        self.clock = clock or LiveClock()

    def stage(self, name: str) -> str:
        """The stored stage; a model never registered is at ``research``."""
        row = self._row(name)
        return row["stage"] if row else "research"

    def stages(self) -> dict[str, str]:
        """Every registered model's stage."""
        with self.store.read() as conn:
            rows = conn.execute(select(STAGES_T.c.name, STAGES_T.c.stage)).all()
        return dict(sorted((name, stage) for name, stage in rows))

    def models(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            q = select(STAGES_T).order_by(STAGES_T.c.name)
            return [dict(r) for r in conn.execute(q).mappings()]

    def history(self, name: str) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            q = select(HISTORY_T).where(HISTORY_T.c.name == name).order_by(HISTORY_T.c.id)
            return [dict(r) for r in conn.execute(q).mappings()]

    # -- gates --------------------------------------------------------------------
    def check_gate(self, name: str, to_stage: str) -> GateResult:
        current = self.stage(name)
        if to_stage == "candidate":
            return GateResult(name, to_stage, self._candidate_checks(name))
        if to_stage == "paper":
            return GateResult(name, to_stage, (
                Check("is_candidate", current == "candidate", f"stage is {current}"),))
        if to_stage == "live":
            row = self._row(name)
            in_paper = current == "paper"
            since = row["since_ts"] if row and in_paper else self.clock.now()
            days = (self.clock.now() - since) / DAY_NS
            trades, slip = self.paper_record(name, since)
            checks = (Check("is_paper", in_paper, f"stage is {current}"),
                      *live_checks(days, trades, slip, self.gates))
            return GateResult(name, to_stage, checks)
        return GateResult(name, to_stage, ())

    def _candidate_checks(self, name: str) -> tuple[Check, ...]:
        best: tuple[Check, ...] | None = None
        best_id = None
        for run in reversed(self.store.runs("backtest")):
            metrics = model_metrics(run, name)
            if metrics is None:
                continue
            checks = backtest_checks(metrics, self.gates)
            if best is None or sum(c.passed for c in checks) > sum(c.passed for c in best):
                best, best_id = checks, run["id"]
            if all(c.passed for c in checks):
                break
        if best is None:
            return (Check("backtest_run", False,
                          f"no stored backtest run of {name} (run `trader backtest` on a config "
                          "with this model alone)"),)
        return (Check("backtest_run", True, f"run #{best_id}"), *best)

    def paper_record(self, name: str, since_ts: int) -> tuple[int, float | None]:
        """(number of paper fills, mean slippage in bps) of ``name`` since ``since_ts``."""
        tag = f"%,{name},%"
        q = (
            select(FILLS.c.side, FILLS.c.price, ORDERS.c.ref_price)
            .join(ORDERS, ORDERS.c.client_order_id == FILLS.c.client_order_id)
            .join(SESSIONS, SESSIONS.c.id == ORDERS.c.session_id)
            .where(SESSIONS.c.mode == "paper", ORDERS.c.model_tags.like(tag),
                   FILLS.c.ts >= since_ts)
        )
        with self.store.read() as conn:
            rows = conn.execute(q).all()
        slips = [slippage_bps(side, price, ref) for side, price, ref in rows if ref]
        return len(rows), (sum(slips) / len(slips) if slips else None)

    # -- changes ----------------------------------------------------------------------
    def promote(self, name: str, reason: str, operator: str, *, confirm: bool = False,
                force: bool = False) -> dict[str, Any]:
        """Move ``name`` one stage up if its gate passes (or ``force``); return the history row."""
        current = self.stage(name)
        if current == STAGES[-1]:
            raise LifecycleError(f"model {name!r} is already at stage live")
        target = STAGES[STAGES.index(current) + 1]
        _need(reason, "a reason", 1000)
        _need(operator, "an operator")
        gate = self.check_gate(name, target)
        if target == "live" and not confirm:
            raise LifecycleError(
                f"promoting {name!r} to live needs --confirm (orders will reach a real account)\n"
                + gate.report())
        if not gate.passed and not force:
            raise LifecycleError(gate.report() + "\n(--force --reason ... overrides, on record)")
        return self._move(name, current, target, reason, operator,
                          forced=not gate.passed, report=gate.report())

    def demote(self, name: str, reason: str, operator: str) -> dict[str, Any]:
        """Move ``name`` one stage down; no gate, but a reason is required."""
        current = self.stage(name)
        if current == STAGES[0]:
            raise LifecycleError(f"model {name!r} is already at stage research")
        _need(reason, "a reason", 1000)
        _need(operator, "an operator")
        target = STAGES[STAGES.index(current) - 1]
        return self._move(name, current, target, reason, operator, forced=False, report="")

    def _move(self, name: str, frm: str, to: str, reason: str, operator: str, *,
              forced: bool, report: str) -> dict[str, Any]:
        ts = self.clock.now()
        row = {"name": name, "from_stage": frm, "to_stage": to, "ts": ts, "operator": operator,
               "reason": reason, "forced": forced, "gate_report": report[:4000]}
        with self.store.write() as conn:
            done = conn.execute(update(STAGES_T).where(STAGES_T.c.name == name)
                                .values(stage=to, since_ts=ts)).rowcount
            if not done:
                conn.execute(insert(STAGES_T).values(name=name, stage=to, since_ts=ts))
            conn.execute(insert(HISTORY_T).values(**row))
        self.store.flush()
        return row

    def _row(self, name: str) -> dict[str, Any] | None:
        with self.store.read() as conn:
            r = conn.execute(select(STAGES_T).where(STAGES_T.c.name == name)).mappings().first()
        return dict(r) if r else None


def _need(value: str, what: str, limit: int = 200) -> None:
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


def refused_models(mode: str, stages: Mapping[str, str], names: Iterable[str]) -> list[str]:
    """Messages for every model in ``names`` whose stage ``mode`` does not run (empty = all ok)."""
    allowed = allowed_stages(mode)
    if allowed is None:
        return []
    out = []
    for name in names:
        stage = stages.get(name, "research")
        if stage not in allowed:
            out.append(f"model {name!r} is at stage {stage!r}; {mode} mode runs only "
                       f"{'/'.join(sorted(allowed))} models")
    return out


def check_mode(mode: str, stages: Mapping[str, str], names: Sequence[str]) -> None:
    """Raise ``StageRefused`` naming each model (and its stage) that ``mode`` may not load."""
    problems = refused_models(mode, stages, names)
    if problems:
        raise StageRefused("\n".join(problems))


def enforce_mode(mode: str, names: Sequence[str], lifecycle: Lifecycle) -> None:
    """Refuse to start ``mode`` with any of ``names`` at a stage it does not run.

    Stages come from the store, never from the config file: a config that says
    ``stage: live`` does not make a model live.
    """
    if allowed_stages(mode) is None:
        return
    check_mode(mode, lifecycle.stages(), names)
