"""A backtest: the kernel replays history from the data files, and the run's reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trader.core.events import Bar
from trader.data.feed import feed_from_config
from trader.engine.build import Engine, build_engine
from trader.engine.config import AppConfig, base_timeframes, replay_source
from trader.replay.metrics import compute_metrics
from trader.replay.observers import ModelCurves, RunTrace
from trader.replay.reports import RunViews, tear_sheet_metrics, write_reports


@dataclass
class BacktestResult:
    metrics: dict[str, Any]
    engine: Engine
    feed_stats: dict[str, Any]
    run_id: int | None = None  # the run's row in the store, when one was given
    record_error: str = ""  # why the run could not be recorded (its reports were written)


def run_backtest(
    cfg: AppConfig,
    out_dir: Path | None = None,
    *,
    feed: Iterable[Bar] | None = None,
    progress: Callable[[int], None] | None = None,
    store: Any = None,
    persist: bool = False,
) -> BacktestResult:
    """Replay history through the kernel and (optionally) write the reports to ``out_dir``.

    With a ``store`` the run's summary is recorded there at the end; with
    ``persist`` too, every order, order event and fill is journaled as it happens
    (open the store with a ``batch_size`` to keep that fast).
    """
    from trader.replay.recording import BacktestRecording

    cfg = replay_source(cfg)  # a backtest reads the data files, never a live feed
    trades_fh = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        trades_fh = open(out_dir / "trades.csv", "w", newline="")
    recording = BacktestRecording(store, cfg, persist) if store is not None else None
    try:
        engine = build_engine(cfg, trades_file=trades_fh,
                              id_prefix=recording.id_prefix if recording else "bt",
                              journal=recording.journal if recording else None)
        bases = base_timeframes(cfg)
        budgets = {mc.name: mc.budget for mc in cfg.models
                   if any(m.name == mc.name for m in engine.models)}
        views = RunViews(ModelCurves(engine, budgets, cfg.portfolio.initial_cash, bases),
                         RunTrace(engine, bases))
        if recording is not None:
            recording.attach(engine, views.curves)
        source = feed if feed is not None else feed_from_config(cfg)
        engine.kernel.run(source, progress)
        engine.recorder.finish()
    finally:
        if trades_fh is not None:
            trades_fh.close()
    metrics = summarize(engine)
    metrics.update(tear_sheet_metrics(engine, metrics, views))
    stats = {}
    feed_stats = getattr(source, "stats", None)  # a HistoricalFeed, maybe behind a wrapper
    if isinstance(feed_stats, dict):
        stats = {k: {"rows": v.rows, "skipped": v.skipped, "skipped_by_reason": v.skipped_by_reason}
                 for k, v in feed_stats.items()}
    if out_dir is not None:
        # Reports first: a store that fails now must not cost the run its results.
        write_reports(engine, metrics, out_dir, views)
    run_id, record_error = None, ""
    if recording is not None:
        run_id, record_error = _record(recording, engine, metrics)
    return BacktestResult(metrics, engine, stats, run_id, record_error)


def _record(recording: Any, engine: Engine, metrics: dict[str, Any]) -> tuple[int | None, str]:
    """Store the run's summary; (None, why) when the database refuses or is gone."""
    from sqlalchemy.exc import SQLAlchemyError

    from trader.store.db import StoreError, db_error_text

    try:
        return recording.finish(engine, metrics), ""
    except (SQLAlchemyError, StoreError) as exc:
        return None, db_error_text(exc)


def summarize(engine: Engine) -> dict[str, Any]:
    rec = engine.recorder
    eq = rec.equity
    if not eq:
        eq_ts, navs = [0], [engine.portfolio.initial_cash]
    else:
        eq_ts, navs = [p.ts for p in eq], [p.nav for p in eq]
    m = compute_metrics(
        eq_ts, navs,
        trades=rec.fills, wins=rec.wins, losses=rec.losses,
        gross_profit=rec.closing_pnls_pos, gross_loss=rec.closing_pnls_neg,
        exposure=rec.bars_exposed / rec.bars if rec.bars else 0.0,
    )
    m["bars"] = rec.bars
    m["orders"] = engine.router.seq
    m["model_pnl"] = {k: v for k, v in sorted(engine.portfolio.model_pnl().items())}
    m["risk"] = engine.risk.summary()
    return m
