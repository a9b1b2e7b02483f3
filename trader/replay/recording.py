"""Recording a backtest in the store: its summary always, its orders and fills with ``--store``."""

from __future__ import annotations

import time
from typing import Any

from trader.core.events import Bar
from trader.engine.config import base_timeframes
from trader.replay.metrics import compute_metrics
from trader.store.orders import BufferedJournal
from trader.store.runs import config_hash, json_safe
from trader.store.store import Store

DAY_NS = 86_400 * 1_000_000_000
GATE_KEYS = ("total_return", "cagr", "sharpe", "max_drawdown", "trades")


class ModelCurves:
    """Each model's own equity curve and trade count, for the lifecycle's candidate gate.

    A model's NAV is its share of the starting cash (budget x initial cash) plus
    the equity of its virtual book, sampled at the last base bar of each UTC day
    like the portfolio's; a trade is a fill that moved the model's book.
    """

    def __init__(self, engine: Any, budgets: dict[str, float], initial_cash: float,
                 bases: dict[str, int]) -> None:
        self.pf = engine.portfolio
        self.capital = {m: b * initial_cash for m, b in budgets.items()}
        self.instruments = {m.name: set(m.instruments) for m in engine.models}
        self.bases = bases
        self.ts: list[int] = []
        self.navs: dict[str, list[float]] = {m: [] for m in self.capital}
        self.trades = dict.fromkeys(self.capital, 0)
        self._held: dict[tuple[str, str], float] = {}
        self._day: int | None = None
        self._pending: tuple[int, dict[str, float]] | None = None
        engine.kernel.bus.subscribe(Bar, self.on_bar)
        self.pf.fill_listeners.append(self.on_fill)

    def on_bar(self, bar: Any) -> None:
        if self.bases.get(bar.instrument_id) != bar.timeframe:
            return
        day = bar.ts // DAY_NS
        if day != self._day and self._pending is not None:
            self._push()
        self._day = day
        marks = self.pf.marks
        self._pending = (bar.ts, {m: c + self.pf.model_book(m).equity(marks)
                                  for m, c in self.capital.items()})

    def on_fill(self, fill: Any, _realized: float) -> None:
        inst = fill.instrument_id
        for m, insts in self.instruments.items():
            if inst in insts and m in self.capital:
                q = self.pf.model_book(m).quantity(inst)
                if q != self._held.get((m, inst), 0.0):
                    self.trades[m] += 1
                    self._held[(m, inst)] = q

    def _push(self) -> None:
        assert self._pending is not None
        ts, navs = self._pending
        self.ts.append(ts)
        for m, v in navs.items():
            self.navs[m].append(v)
        self._pending = None

    def metrics(self) -> dict[str, dict[str, Any]]:

        if self._pending is not None:
            self._push()
        out = {}
        for m, navs in self.navs.items():
            if not navs:
                continue
            full = compute_metrics(self.ts, navs, trades=self.trades[m], wins=0, losses=0,
                                   gross_profit=0.0, gross_loss=0.0, exposure=0.0)
            out[m] = {k: full[k] for k in GATE_KEYS}
        return out


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
        self.curves = None
        if len(engine.models) > 1:  # a lone model's metrics are the run's own
            budgets = {mc.name: mc.budget for mc in self.cfg.models
                       if any(m.name == mc.name for m in engine.models)}
            self.curves = ModelCurves(engine, budgets, self.cfg.portfolio.initial_cash,
                                      base_timeframes(self.cfg))

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
        if self.curves is not None:
            stored["per_model"] = self.curves.metrics()
        run_id = self.store.record_run(
            "backtest", self.cfg.name, config_hash(self.cfg), [m.name for m in engine.models],
            self.started, ended, json_safe(stored), session_id=self.session_id,
        )
        self.store.flush()
        return run_id
