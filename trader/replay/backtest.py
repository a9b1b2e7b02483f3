"""A backtest: the kernel replays history from the data files, and the run's reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog

from trader.core.events import Bar, ns_to_iso
from trader.core.timeframes import NS
from trader.data.catalog import manifest_of_file
from trader.data.feed import HistoricalFeed, feed_from_config
from trader.engine.build import Engine, build_engine
from trader.engine.config import AppConfig, base_timeframes, replay_source
from trader.replay.metrics import compute_metrics
from trader.replay.observers import ModelCurves, RunTrace
from trader.replay.reports import RunViews, regime_metrics, tear_sheet_metrics, write_reports

log = structlog.get_logger(__name__)


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
    models: list[Any] | None = None,
    on_engine: Callable[[Engine], None] | None = None,
) -> BacktestResult:
    """Replay history through the kernel and (optionally) write the reports to ``out_dir``.

    With a ``store`` the run's summary is recorded there at the end; with
    ``persist`` too, every order, order event and fill is journaled as it happens
    (open the store with a ``batch_size`` to keep that fast).  ``models``: model objects
    to run instead of building the config's (their names must be the config's).
    ``on_engine`` sees the engine once it is built, before the first bar (an optimiser's
    pruning reads its NAV).
    """
    from trader.replay.recording import BacktestRecording

    cfg = replay_source(cfg)  # a backtest reads the data files, never a live feed
    trades_fh = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        trades_fh = open(out_dir / "trades.csv", "w", newline="")
    recording = BacktestRecording(store, cfg, persist) if store is not None else None
    try:
        engine = build_engine(cfg, trades_file=trades_fh, models=models,
                              id_prefix=recording.id_prefix if recording else "bt",
                              journal=recording.journal if recording else None)
        bases = base_timeframes(cfg)
        budgets = {mc.name: mc.budget for mc in cfg.models
                   if any(m.name == mc.name for m in engine.models)}
        views = RunViews(ModelCurves(engine, budgets, cfg.portfolio.initial_cash, bases),
                         RunTrace(engine, bases))
        if recording is not None:
            recording.attach(engine, views.curves)
        if on_engine is not None:
            on_engine(engine)
        source = feed if feed is not None else feed_from_config(cfg)
        if isinstance(source, HistoricalFeed):
            source.announce_end = True  # an instrument's early end is an event of the replay
        engine.kernel.run(source, progress)
        views.finish()
        engine.recorder.finish()
    finally:
        if trades_fh is not None:
            trades_fh.close()
    metrics = summarize(engine)
    if isinstance(source, HistoricalFeed):
        metrics["data"] = data_report(source, engine)
    metrics.update(tear_sheet_metrics(engine, metrics, views))
    if engine.regimes is not None:
        # Only runs with regimes: the reports of other configs keep their exact bytes.
        metrics["regimes"] = regime_metrics(engine)
    stats = {}
    feed_stats = getattr(source, "stats", None)  # a HistoricalFeed, maybe behind a wrapper
    if isinstance(feed_stats, dict):
        stats = {k: {"rows": v.rows, "skipped": v.skipped, "skipped_by_reason": v.skipped_by_reason,
                     "gaps": [(ns_to_iso(a), ns_to_iso(b)) for a, b in v.gaps]}
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


def data_report(feed: HistoricalFeed, engine: Engine) -> dict[str, Any]:
    """Per instrument: where its bars came from (a catalog entry's source and adjustments),
    its first and last bar, and whether its data ended before the run did (warned once)."""
    ends = {f.spec.instrument_id: (f.stats.last_open, f.spec.timeframe * NS) for f in feed.files}
    run_end = max((t + tf for t, tf in ends.values() if t is not None), default=None)
    out: dict[str, Any] = {}
    for f in feed.files:
        inst = f.spec.instrument_id
        man = manifest_of_file(f.spec.path)
        entry: dict[str, Any] = {
            "source": man.source if man else "file",
            "catalog_entry": f"{man.venue}/{man.symbol}/{man.timeframe}" if man else None,
            "adjustments": man.adjustments if man else [],
            "prices": "back_adjusted" if man and man.adjustments else "as in the file",
            "long_gaps": len(f.stats.gaps),
        }
        last, tf = ends[inst]
        if last is not None and run_end is not None and last + tf < run_end:
            qty = engine.portfolio.position(inst)
            policy = engine.cfg.data.on_data_end
            entry["ended_early"] = {"last_bar": ns_to_iso(last), "run_end": ns_to_iso(run_end),
                                    "on_data_end": policy, "position_at_end": qty}
            log.warning("data_ended_early", instrument=inst, last_bar=ns_to_iso(last),
                        run_end=ns_to_iso(run_end), position=qty, on_data_end=policy,
                        detail="the position was closed at the last price" if policy == "close"
                        else "the position is held at its last price to the end of the run")
        out[inst] = entry
    return out


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
    if engine.overlays is not None:
        m["overlays"] = engine.overlays.summary()
    if rec.details is not None:
        # Only runs with order intents or a configured cost model: older reports keep
        # their exact content.  (The cost model itself is in every run's tear sheet.)
        costs = dict(rec.costs)
        costs["financing"] = engine.financing.total if engine.financing else 0.0
        m["costs"] = {k: round(v, 6) for k, v in costs.items()}
        m["exit_reasons"] = dict(sorted(rec.reason_counts.items()))
    return m
