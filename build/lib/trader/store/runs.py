"""Recording runs: a backtest's summary always, its orders and fills with ``--store``."""

from __future__ import annotations

import hashlib
import math
import time
from typing import Any

from trader.store.store import BufferedJournal, Store


def config_hash(cfg: Any) -> str:
    """A stable digest of a validated config (which models, which data, which settings)."""
    text = cfg.model_dump_json(exclude={"store"}) if hasattr(cfg, "model_dump_json") else str(cfg)
    return hashlib.sha256(text.encode()).hexdigest()


def json_safe(value: Any) -> Any:
    """Metrics as JSON both backends accept: no NaN or infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class BacktestRecording:
    """Ties one replay to the store: a session for its order ids, a journal, a run row."""

    def __init__(self, store: Store, cfg: Any, persist: bool) -> None:
        self.store = store
        self.cfg = cfg
        self.started = time.time_ns()  # wall time of the run itself, outside the kernel
        self.journal: BufferedJournal | None = None
        self.session_id: int | None = None
        self.id_prefix = "bt"
        if persist:
            session = store.begin_session("replay", cfg.name, self.started)
            self.session_id = session.id
            self.id_prefix = session.prefix
            by_inst: dict[str, tuple[str, ...]] = {}
            for mc in cfg.models:
                for inst in mc.instruments:
                    by_inst[inst] = (*by_inst.get(inst, ()), mc.name)
            # The simulator numbers its executions from 1 in every run.
            self.journal = BufferedJournal(
                store, session, tags_for=lambda r: by_inst.get(r.instrument_id, ()),
                fill_scope=f"@{session.prefix}")

    def attach(self, engine: Any) -> None:
        if self.journal is not None:
            self.journal.marks = engine.portfolio.marks  # reference prices for slippage

    def finish(self, engine: Any, metrics: dict[str, Any]) -> int:
        """Store the run summary (and, when persisting, the final account); return the run id."""
        pf = engine.portfolio
        ended = time.time_ns()
        if self.journal is not None:
            self.journal.flush()
            ccy = self.cfg.portfolio.currency
            self.store.snapshot_account(
                engine.kernel.clock.now(), "portfolio", {ccy: pf.account.cash},
                {i: p.quantity for i, p in pf.account.positions.items() if p.quantity}, nav=pf.nav,
                avg_prices={i: p.avg_price for i, p in pf.account.positions.items() if p.quantity},
            )
            self.store.end_session(self.session_id, ended)  # type: ignore[arg-type]
        run_id = self.store.record_run(
            "backtest", self.cfg.name, config_hash(self.cfg), [m.name for m in engine.models],
            self.started, ended, json_safe(metrics), session_id=self.session_id,
        )
        self.store.flush()
        return run_id
