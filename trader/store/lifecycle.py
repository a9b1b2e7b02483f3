"""The lifecycle registry: each model's stage in the database, and the gated commands.

The stage of a model lives in ``model_stages``, and every change is a
``model_stage_history`` row saying from, to, when, who, why, and whether a gate
was forced.  The rules (stages, gates, which mode runs which stage) are in
``models.lifecycle``; this is where they meet the store.  Stages come from here
only, never from a config file.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert, select, update

from models.lifecycle import (
    DAY_NS,
    STAGES,
    Check,
    Evidence,
    GateResult,
    LifecycleConfig,
    LifecycleError,
    allowed_stages,
    backtest_checks,
    check_mode,
    evidence_checks,
    live_checks,
    model_metrics,
    require_text,
    slippage_bps,
)
from trader.core.clock import Clock, LiveClock
from trader.store import schema as s
from trader.store.store import Store
from trader.store.tables import FILLS, ORDERS, SESSIONS
from trader.store.views import stages as stored_stages

STAGES_T = s.ModelStageRow.__table__
HISTORY_T = s.ModelStageHistoryRow.__table__


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
        with self.store.query() as query:
            return stored_stages(query)

    def models(self) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            q = select(STAGES_T).order_by(STAGES_T.c.name)
            return [dict(r) for r in conn.execute(q).mappings()]

    def history(self, name: str) -> list[dict[str, Any]]:
        with self.store.read() as conn:
            q = select(HISTORY_T).where(HISTORY_T.c.name == name).order_by(HISTORY_T.c.id)
            return [dict(r) for r in conn.execute(q).mappings()]

    # -- gates --------------------------------------------------------------------
    def check_gate(self, name: str, to_stage: str,
                   evidence: Evidence | None = None) -> GateResult:
        """The gate to ``to_stage``; the candidate gate reads ``evidence`` when given
        (else the stored backtests), and any other gate notes it in its report."""
        current = self.stage(name)
        if to_stage == "candidate":
            checks = (self._candidate_checks(name) if evidence is None
                      else evidence_checks(name, evidence, self.gates))
            return GateResult(name, to_stage, checks)
        gate = self._other_gate(name, to_stage, current)
        if evidence is not None:
            note = Check("evidence", True, f"{evidence.source} (noted; this gate does not read it)")
            return GateResult(name, to_stage, (*gate.checks, note))
        return gate

    def _other_gate(self, name: str, to_stage: str, current: str) -> GateResult:
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
                force: bool = False, evidence: Evidence | None = None) -> dict[str, Any]:
        """Move ``name`` one stage up if its gate passes (or ``force``); return the history row.

        ``evidence`` (a tracked run, a study's out-of-sample result) is what the candidate
        gate reads instead of the stored backtests; its source is kept in the gate report.
        """
        current = self.stage(name)
        if current == STAGES[-1]:
            raise LifecycleError(f"model {name!r} is already at stage live")
        target = STAGES[STAGES.index(current) + 1]
        require_text(reason, "a reason", 1000)
        require_text(operator, "an operator")
        gate = self.check_gate(name, target, evidence)
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
        require_text(reason, "a reason", 1000)
        require_text(operator, "an operator")
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



def enforce_mode(mode: str, names: Sequence[str], lifecycle: Lifecycle, fix: str = "") -> None:
    """Refuse to start ``mode`` with any of ``names`` at a stage it does not run.

    Stages come from the store, never from the config file: a config that says
    ``stage: live`` does not make a model live.
    """
    if allowed_stages(mode) is None:
        return
    check_mode(mode, lifecycle.stages(), names, fix)
