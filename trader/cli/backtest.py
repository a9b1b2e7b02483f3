"""``trader backtest``: replay history (or a session's journal) and print the summary."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from trader.cli.deployment import DATA_DIR_OPTION, UserError, resolve
from trader.cli.root import LogLevel

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
    log_level: LogLevel = typer.Option(LogLevel.warning, "--log-level",
                                  help="log lines on stderr from this level up; risk "
                                       "decisions are in risk_events.csv whatever the level"),
) -> None:
    """Replay history through the kernel and write metrics, trades, equity and a chart."""
    from trader.core.logging import StderrProxy, configure_logging

    # A replay can reject thousands of orders after a halt: each is counted and
    # written to risk_events.csv, not printed, unless a lower level is asked for.
    configure_logging(log_level.value, StderrProxy())

    if journal is not None:
        from trader.cli.run import backtest_journal

        backtest_journal(journal, config, out)
        return
    if config is None:
        raise UserError("backtest needs a CONFIG file (or --journal FILE)")

    dep = resolve(config, data_dir, must_exist=False)  # a backtest may start a deployment
    cfg = dep.cfg
    assert cfg is not None
    db, unstored = _open_store(dep, store)
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
        if db is not None:
            db.close()
    print_summary(result.metrics, out_dir)
    unstored = unstored or result.record_error
    if result.run_id is not None and db is not None:
        console.print(f"run #{result.run_id} recorded in {db.safe_url}", highlight=False)
    _track(cfg, config, result, out_dir)
    for inst_id, info in sorted(result.metrics.get("data", {}).items()):
        if "ended_early" in info:
            end = info["ended_early"]
            what = ("is closed at the last price" if end["on_data_end"] == "close" else
                    f"({end['position_at_end']:g}) is held at the last price")
            err_console.print(f"warning: {inst_id}: data ends {end['last_bar']}, before the run "
                              f"({end['run_end']}); its position {what} "
                              f"(data.on_data_end: {end['on_data_end']})", highlight=False)
    for inst_id, stats in sorted(result.feed_stats.items()):
        for a, b in stats.get("gaps", []):
            err_console.print(f"warning: {inst_id}: no bars from {a} to {b}", highlight=False)
        if stats["skipped"]:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(stats["skipped_by_reason"].items()))
            err_console.print(f"warning: {inst_id}: skipped {stats['skipped']} bad rows "
                              f"of {stats['rows']} ({reasons})", highlight=False)
    if unstored:
        # The reports are the run's result; the record is what promotion gates read.
        err_console.print(f"[bold red]error:[/] the run was NOT recorded in the store: "
                          f"{escape(unstored)}; its reports are in {escape(str(out_dir))}/ "
                          "(run it again once the database is reachable to record it)",
                          highlight=False, soft_wrap=True)
        raise typer.Exit(1)


def _open_store(dep: Any, persist: bool) -> tuple[Store | None, str]:
    """The deployment's store, or (None, why) when it cannot be opened and is not required."""
    from trader.cli.deployment import store_error_text
    from trader.store.db import StoreError

    try:
        return dep.open_store(batch_size=5000 if persist else 0), ""
    except StoreError as exc:
        if persist:  # --store journals every order: without the database there is no run
            raise
        return None, store_error_text(exc)


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


def _replay(cfg: AppConfig, out_dir: Path, show_progress: bool, db: Store | None,
            persist: bool) -> BacktestResult:
    from trader.replay.backtest import run_backtest

    if not show_progress:
        return run_backtest(cfg, out_dir, store=db, persist=persist)
    from trader.cli.progress import CountedFeed, bar_progress
    from trader.data.feed import feed_from_config

    feed = feed_from_config(cfg)
    with bar_progress(console, "replay", feed.total_rows(), "bars") as advance:
        counted = CountedFeed(feed, advance)
        return run_backtest(cfg, out_dir, feed=counted, store=db, persist=persist)


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
