"""The ``trader`` command line.

Every command module imports only typer and rich at the top; the kernel, the
store, ccxt and the rest load when a command runs, so ``trader --help`` answers
at once.  The command modules themselves load when their command is looked up
(:class:`TraderCommands`).
"""

from __future__ import annotations

import sys

import typer
from rich.console import Console
from rich.markup import escape

from trader.cli.deployment import UserError
from trader.cli.root import CommandGroup, RunState, failure_text, root


class TraderCommands(CommandGroup):
    """The ``trader`` commands, in the order ``--help`` lists them; each command's module
    is imported when that command is looked up, so one command does not pay for all."""

    lazy_commands = {
        "backtest": "trader.cli.backtest:backtest",
        "run": "trader.cli.run:run",
        "status": "trader.cli.run:status",
        "kill": "trader.cli.kill:kill",
        "web": "trader.cli.web:web",
        "db": "trader.cli.db:db_app",
        "models": "trader.cli.models:models_app",
        "data": "trader.cli.data:data_app",
        "optimize": "trader.cli.optimize:optimize_app",
    }


app = typer.Typer(cls=TraderCommands, add_completion=False, no_args_is_help=True,
                  help="Trading daemon and replay backtester.")
err_console = Console(stderr=True)
app.callback()(root)


def _operator_errors() -> tuple[type[BaseException], ...]:
    """Errors printed as one message (exit 2), imported only once something failed."""
    from risk.killswitch import KillSwitchError
    from trader.data.catalog import CatalogError
    from trader.data.feed import DataError
    from trader.engine.config import ConfigError
    from trader.live.journal import JournalError
    from trader.store.db import StoreError
    from trader.tracking import TrackingError

    return (ConfigError, DataError, CatalogError, UserError, JournalError, StoreError,
            KillSwitchError, TrackingError)


def main() -> None:
    """Entry point of the ``trader`` script."""
    try:
        code = app(standalone_mode=False)
        if isinstance(code, int) and code:  # typer.Exit(n) returns n in non-standalone mode
            sys.exit(code)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        err_console.print("aborted")
        sys.exit(130)
    except Exception as exc:
        if isinstance(exc, _operator_errors()):
            # Operator text (paths, gate reports with "[ok]") is not rich markup.
            err_console.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False,
                              soft_wrap=True)
            sys.exit(2)
        # Usage errors from the CLI parser arrive here in non-standalone mode.
        if hasattr(exc, "show") and hasattr(exc, "exit_code"):
            exc.show()
            sys.exit(exc.exit_code)
        if RunState.debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(failure_text(exc))} (an unexpected "
                          "failure: `trader --debug ...` shows the traceback)", highlight=False,
                          soft_wrap=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
