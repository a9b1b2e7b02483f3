"""``trader kill``: engage, release or show the kill switch of a deployment."""

from __future__ import annotations

from pathlib import Path

import typer

from trader.cli.deployment import CONFIG_OPTION, DATA_DIR_OPTION, UserError, resolve


def kill(
    reason: str = typer.Option(None, "--reason", help="why (required to engage or release)"),
    release: bool = typer.Option(False, "--release", help="release the kill switch"),
    status: bool = typer.Option(False, "--status", help="only show the kill switch's state"),
    config: Path = CONFIG_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
) -> None:
    """Engage (or with --release, release) the kill switch the deployment's daemon watches.

    Engaging cancels all open orders and stops new exposure until released. The
    switch is written to the flag file and to the store, which the daemon both reads.
    """
    from risk.killswitch import (
        KillSwitch,
        KillSwitchError,
        KillSwitchRecord,
        KillSwitchWatch,
        latest,
        operator,
    )

    if not status and (not reason or not reason.strip()):
        raise typer.BadParameter("a reason is required, e.g. --reason \"broker outage\"",
                                 param_hint="--reason")
    dep = resolve(config, data_dir)
    path = dep.flag_path()
    used = dep.used
    store = None
    database = None
    try:
        store = dep.open_store()
        from risk.killswitch import DatabaseBackend

        database = DatabaseBackend(store)
    except Exception as exc:  # the flag file alone still stops the daemon
        typer.echo(f"warning: store unavailable ({str(exc).splitlines()[0]}); "
                   "using the flag file only", err=True)
    try:
        watch = KillSwitchWatch(path, database)
        try:
            current = watch.read_at_start()
        except KillSwitchError as exc:
            if status:
                raise UserError(str(exc)) from None
            current = None  # a corrupt file is replaced by this explicit change
        if status:
            _print_record(path, current)
            return
        switch = KillSwitch(who=operator())
        record: KillSwitchRecord = (switch.release if release else switch.engage)(reason)
        watch.write(record)
        _print_record(path, latest(record))
        if not used:
            typer.echo(f"note: no daemon has ever used data directory {dep.data_dir}; the switch "
                       "is set there and a daemon started on it will honour it", err=True)
    except KillSwitchError as exc:
        raise typer.BadParameter(str(exc)) from None
    finally:
        if store is not None:
            store.close()


def _print_record(path: Path, rec: object) -> None:
    # Plain output: reasons and paths are operator text, not rich markup.
    if rec is None:
        typer.echo(f"kill switch: released (never set) ({path})")
        return
    state = "ENGAGED" if rec.engaged else "released"  # type: ignore[attr-defined]
    typer.echo(f"kill switch: {state}: {rec.reason} (by {rec.who} at {rec.time}) "  # type: ignore[attr-defined]
               f"({path})")
