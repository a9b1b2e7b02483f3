"""Recording a backtest in the store: its summary always, its orders and fills with ``--store``."""

from __future__ import annotations

import time
from typing import Any

from trader.replay.observers import ModelCurves
from trader.store.orders import BufferedJournal
from trader.store.runs import config_hash, json_safe
from trader.store.store import Store

GATE_KEYS = ("total_return", "cagr", "sharpe", "max_drawdown", "trades")


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

    def attach(self, engine: Any, curves: ModelCurves) -> None:
        if self.journal is not None:
            self.journal.marks = engine.portfolio.marks  # reference prices for slippage
        # A lone model's gate reads the run's own metrics.
        self.curves = curves if len(engine.models) > 1 else None

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
        stored = dict(metrics)
        stored.pop("per_model", None)
        if self.curves is not None:
            stored["per_model"] = {m: {k: v[k] for k in GATE_KEYS}
                                   for m, v in self.curves.metrics().items()}
        run_id = self.store.record_run(
            "backtest", self.cfg.name, config_hash(self.cfg), [m.name for m in engine.models],
            self.started, ended, json_safe(stored), session_id=self.session_id,
        )
        self.store.flush()
        return run_id
