"""The ``trader`` command line."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Console
from rich.table import Table

from trader.cli.kill import kill, risk_summary
from trader.data.feed import DataError
from trader.engine.config import ConfigError
from trader.live.journal import JournalError

if TYPE_CHECKING:
    from trader.engine.config import AppConfig
    from trader.replay.backtest import BacktestResult
    from trader.store import Store

app = typer.Typer(add_completion=False, no_args_is_help=True,
                  help="Trading daemon and replay backtester.")
console = Console()
err_console = Console(stderr=True)


app.command("kill")(kill)


@app.callback()
def _root() -> None:
    """Trading daemon and replay backtester."""


class UserError(Exception):
    """An error the operator can fix; printed without a traceback."""


@app.command()
def backtest(
    config: Path = typer.Argument(None, help="YAML config of the run"),
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
    from trader.engine.config import load_config
    from trader.store import open_store

    # A replay can reject thousands of orders after a halt: each is counted and
    # written to risk_events.csv, not printed, unless a lower level is asked for.
    configure_logging(log_level, StderrProxy())

    if journal is not None:
        from trader.cli.run import backtest_journal

        backtest_journal(journal, config, out)
        return
    if config is None:
        raise UserError("backtest needs a CONFIG file (or --journal FILE)")

    cfg = load_config(config)
    db = open_store(cfg.store, batch_size=5000 if store else 0)
    out_dir = out or Path("runs") / cfg.name
    try:
        result = _replay(cfg, out_dir, progress and console.is_terminal, db, store)
    except ConfigError as exc:
        # Problems found while wiring the engine: still name the file.
        raise ConfigError(f"{config}: {exc}") from None
    finally:
        db.close()
    print_summary(result.metrics, out_dir)
    console.print(f"run #{result.run_id} recorded in {db.safe_url}")
    for inst_id, stats in sorted(result.feed_stats.items()):
        if stats["skipped"]:
            reasons = ", ".join(f"{k}: {v}" for k, v in sorted(stats["skipped_by_reason"].items()))
            err_console.print(f"warning: {inst_id}: skipped {stats['skipped']} bad rows "
                              f"of {stats['rows']} ({reasons})", highlight=False)


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


from trader.cli.run import run as _run_cmd  # noqa: E402 - registered after app exists
from trader.cli.run import status as _status_cmd  # noqa: E402

app.command("run")(_run_cmd)
app.command("status")(_status_cmd)

from trader.cli.db import db_app  # noqa: E402
from trader.cli.models import models_app  # noqa: E402 - registered after the core commands
from trader.store.db import StoreError  # noqa: E402

app.add_typer(db_app, name="db")
app.add_typer(models_app, name="models")


def main() -> None:
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) returns n in non-standalone mode
            sys.exit(code)
    except (ConfigError, DataError, UserError, JournalError, StoreError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:
        # Usage errors from the CLI parser arrive here in non-standalone mode.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        raise


if __name__ == "__main__":
    main()
