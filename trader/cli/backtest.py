"""``trader backtest``: replay history (or a session's journal) and print the summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.table import Table

from trader.cli.deployment import DATA_DIR_OPTION, UserError, resolve

if TYPE_CHECKING:
    from trader.engine.config import AppConfig
    from trader.replay.backtest import BacktestResult
    from trader.store import Store

console = Console()
err_console = Console(stderr=True)


def backtest(
    config: Path = typer.Argument(None, help="YAML config of the run"),
    data_dir: Path = DATA_DIR_OPTION,
    out: Path = typer.Option(None, "--out", help="directory for the reports (default runs/<name>)"),
    progress: bool = typer.Option(True, "--progress/--no-progress", help="show a progress bar"),
    journal: Path = typer.Option(None, "--journal",
                                 help="replay a paper/live session's journal and check parity"),
    store: bool = typer.Option(False, "--store", help="persist every order, event and fill "
                               "(default: only the run summary is stored, at the end)"),
    log_level: str = typer.Option("warning", "--log-level",
                                  help="JSON log lines on stderr from this level up; risk "
                                       "decisions are in risk_events.csv whatever the level"),
) -> None:
    """Replay history through the kernel and write metrics, trades, equity and a chart."""
    from trader.core.logging import StderrProxy, configure_logging

    # A replay can reject thousands of orders after a halt: each is counted and
    # written to risk_events.csv, not printed, unless a lower level is asked for.
    configure_logging(log_level, StderrProxy())

    if journal is not None:
        from trader.cli.run import backtest_journal

        backtest_journal(journal, config, out)
        return
    if config is None:
        raise UserError("backtest needs a CONFIG file (or --journal FILE)")

    dep = resolve(config, data_dir, must_exist=False)  # a backtest may start a deployment
    cfg = dep.cfg
    assert cfg is not None
    db = dep.open_store(batch_size=5000 if store else 0)
    out_dir = out or Path("runs") / cfg.name
    try:
        result = _replay(cfg, out_dir, progress and console.is_terminal, db, store)
    except Exception as exc:
        from trader.engine.config import ConfigError

        if not isinstance(exc, ConfigError):
            raise
        # Problems found while wiring the engine: still name the file.
        raise ConfigError(f"{config}: {exc}") from None
    finally:
        db.close()
    print_summary(result.metrics, out_dir)
    console.print(f"run #{result.run_id} recorded in {db.safe_url}")
    _track(cfg, config, result, out_dir)
    for inst_id, stats in sorted(result.feed_stats.items()):
        if stats["skipped"]:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(stats["skipped_by_reason"].items()))
            err_console.print(f"warning: {inst_id}: skipped {stats['skipped']} bad rows "
                              f"of {stats['rows']} ({reasons})", highlight=False)


def _track(cfg: AppConfig, config: Path, result: BacktestResult, out_dir: Path) -> None:
    """Log the run to MLflow when tracking is configured (tracking.uri, $MLFLOW_TRACKING_URI)."""
    from trader.tracking import track_run, tracking_uri

    if tracking_uri(cfg.tracking.uri) is None:
        return
    run_id = track_run(
        cfg.name, kind="backtest", cfg=cfg, config_path=config, metrics=result.metrics,
        params={"store_run_id": result.run_id},
        artifacts=[out_dir / n for n in ("metrics.json", "trades.csv", "equity.csv",
                                         "report.html", "risk_events.csv")])
    console.print(f"tracked as MLflow run {run_id}")


def _replay(cfg: AppConfig, out_dir: Path, show_progress: bool, db: Store,
            persist: bool) -> BacktestResult:
    from trader.replay.backtest import run_backtest

    if not show_progress:
        return run_backtest(cfg, out_dir, store=db, persist=persist)
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    from trader.data.feed import feed_from_config

    feed = feed_from_config(cfg)
    total = feed.total_rows()
    with Progress(TextColumn("replay"), BarColumn(), TextColumn("{task.completed:,} bars"),
                  TimeRemainingColumn(), console=console, transient=True) as bar:
        task = bar.add_task("replay", total=total)
        return run_backtest(cfg, out_dir, feed=feed, store=db, persist=persist,
                            progress=lambda n: bar.update(task, completed=n))


def print_summary(metrics: dict, out_dir: Path) -> None:
    table = Table(title="Backtest summary", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    pct = {"total_return", "cagr", "annual_volatility", "max_drawdown", "win_rate", "exposure"}
    for key in ("total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown",
                "calmar", "win_rate", "profit_factor", "trades", "exposure", "bps", "final_nav"):
        v = metrics.get(key)
        if isinstance(v, float):
            text = f"{v:.2%}" if key in pct else f"{v:,.3f}"
        else:
            text = str(v)
        table.add_row(key, text)
    console.print(table)
    if (risk_table := risk_summary(metrics)) is not None:
        console.print(risk_table)
    console.print(f"reports written to {out_dir}/")


def risk_summary(metrics: dict[str, Any]) -> Table | None:
    """The risk block of the backtest summary: events by reason and time in each state."""
    risk = metrics.get("risk")
    if not risk:
        return None
    table = Table(title="Risk", show_header=True)
    table.add_column("item")
    table.add_column("value", justify="right")
    table.add_row("final state", str(risk.get("state")))
    table.add_row("kill switch", "engaged" if risk.get("kill_switch_engaged") else "released")
    table.add_row("budget scale", f"{risk.get('budget_scale', 1.0):g}")
    for state, t in risk.get("time_in_state", {}).items():
        table.add_row(f"time {state}", f"{t['fraction']:.2%} ({t['seconds'] / 86400:,.1f} d)")
    counts = risk.get("counts_by_reason", {})
    if not counts:
        table.add_row("events", "none")
    for reason, n in counts.items():
        table.add_row(reason, str(n))
    return table
