"""Risk commands of the ``trader`` CLI (``trader kill``) and the risk part of the summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.table import Table

from risk.killswitch import (
    FileBackend,
    KillSwitch,
    KillSwitchError,
    default_flag_path,
    operator,
)


def kill(
    reason: str = typer.Option(None, "--reason", help="why (required to engage or release)"),
    release: bool = typer.Option(False, "--release", help="release the kill switch"),
    status: bool = typer.Option(False, "--status", help="only show the kill switch's state"),
    state_dir: Path = typer.Option(
        None, "--state-dir", envvar="TRADER_STATE_DIR",
        help="runtime state directory holding kill_switch.json (default ./var)",
    ),
) -> None:
    """Engage (or with --release, release) the kill switch a running daemon watches.

    Engaging cancels all open orders and stops new exposure until released.
    """
    path = default_flag_path(state_dir)
    try:
        switch = KillSwitch(FileBackend(path), who=operator())
        if status:
            _print_record(path, switch)
            return
        if not reason or not reason.strip():
            raise typer.BadParameter("a reason is required, e.g. --reason \"broker outage\"",
                                     param_hint="--reason")
        if release:
            switch.release(reason)
        else:
            switch.engage(reason)
    except KillSwitchError as exc:
        raise typer.BadParameter(str(exc)) from None
    _print_record(path, switch)


def _print_record(path: Path, switch: KillSwitch) -> None:
    # Plain output: reasons and paths are operator text, not rich markup.
    rec = switch.record
    if rec is None:
        typer.echo(f"kill switch: released (never set) ({path})")
        return
    state = "ENGAGED" if rec.engaged else "released"
    typer.echo(f"kill switch: {state}: {rec.reason} (by {rec.who} at {rec.time}) ({path})")


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
