"""A backtest: the kernel replays history from the data files, and the run's reports."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trader.core.events import Bar
from trader.data.feed import HistoricalFeed, feed_from_config
from trader.engine.build import Engine, build_engine
from trader.engine.config import AppConfig, replay_source
from trader.replay.metrics import compute_metrics
from trader.replay.reports import write_reports


@dataclass
class BacktestResult:
    metrics: dict[str, Any]
    engine: Engine
    feed_stats: dict[str, Any]
    run_id: int | None = None  # the run's row in the store, when one was given


def run_backtest(
    cfg: AppConfig,
    out_dir: Path | None = None,
    *,
    feed: Iterable[Bar] | None = None,
    progress: Callable[[int], None] | None = None,
    store: Any = None,
    persist: bool = False,
    on_engine: Callable[[Engine], None] | None = None,
) -> BacktestResult:
    """Replay history through the kernel and (optionally) write the reports to ``out_dir``.

    With a ``store`` the run's summary is recorded there at the end; with
    ``persist`` too, every order, order event and fill is journaled as it happens
    (open the store with a ``batch_size`` to keep that fast). ``on_engine`` sees the
    engine once it is built, before the first bar (an optimiser's pruning reads its NAV).
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
        if recording is not None:
            recording.attach(engine)
        if on_engine is not None:
            on_engine(engine)
        source = feed if feed is not None else feed_from_config(cfg)
        engine.kernel.run(source, progress)
        engine.recorder.finish()
    finally:
        if trades_fh is not None:
            trades_fh.close()
    metrics = summarize(engine)
    run_id = recording.finish(engine, metrics) if recording is not None else None
    stats = {}
    if isinstance(source, HistoricalFeed):
        stats = {k: {"rows": v.rows, "skipped": v.skipped, "skipped_by_reason": v.skipped_by_reason}
                 for k, v in source.stats.items()}
    if out_dir is not None:
        write_reports(engine, metrics, out_dir)
    return BacktestResult(metrics, engine, stats, run_id)


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
