"""``trader run`` and ``trader status`` (registered on the main CLI app)."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from trader.cli.deployment import (
    CONFIG_OPTION,
    DATA_DIR_OPTION,
    Deployment,
    UserError,
    resolve,
)

console = Console()


class Mode(StrEnum):
    """What a session trades against."""

    paper = "paper"
    live = "live"


def run(
    config: Path = typer.Option(..., "--config", "-c", help="YAML config of the session"),
    mode: Mode = typer.Option(..., "--mode", help="paper or live (live needs --confirm)"),
    confirm: bool = typer.Option(False, "--confirm", help="required for --mode live"),
    data_dir: Path = DATA_DIR_OPTION,
    create_data_dir: bool = typer.Option(False, "--create-data-dir",
                                         help="create the data directory if it does not exist "
                                              "(a new deployment)"),
) -> None:
    """Run the trading daemon (paper or live) until SIGTERM/SIGINT."""
    from trader.core.logging import configure_logging
    from trader.live.daemon import check_start, run_daemon

    dep = resolve(config, data_dir, must_exist=False)
    assert dep.cfg is not None
    check_start(dep.cfg, mode.value, confirm)  # refusals print a clear message and exit 2
    configure_logging(dep.cfg.daemon.log_level)
    code = run_daemon(dep.cfg, mode.value, config_path=config, data_dir=dep.data_dir,
                      create_data_dir=create_data_dir)
    raise typer.Exit(code)


def status(
    config: Path = CONFIG_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    as_json: bool = typer.Option(False, "--json", help="print the raw snapshot as JSON"),
    check: bool = typer.Option(False, "--check",
                               help="exit 1 unless the daemon is running and healthy"),
) -> None:
    """Show mode, trading state, kill switch, NAV, positions, orders, feeds and models."""
    from trader.live.status import liveness, read_snapshot

    try:
        dep = resolve(config, data_dir)
    except UserError as exc:
        console.print(str(exc), highlight=False)
        raise typer.Exit(1) from None
    d = dep.data_dir
    try:
        snap = read_snapshot(d)
    except ValueError as exc:
        console.print(f"[red]{exc}[/]")
        raise typer.Exit(1) from None
    if snap is None:
        console.print(f"no daemon has run with data directory {d}")
        raise typer.Exit(1 if check else 0)
    running, age = liveness(snap)
    snap["running"] = running
    snap["heartbeat_age_s"] = round(age, 3)
    stored = _from_store(dep, str(snap.get("mode", "")))
    if stored is not None:
        snap["store"] = stored
    if as_json:
        sys.stdout.write(json.dumps(snap, indent=1, sort_keys=True) + "\n")
    else:
        _print(snap, running, age)
    healthy = running and snap.get("state") in ("trading", "warming_up", "starting")
    if check and not (healthy and not snap.get("feed_failed")):
        raise typer.Exit(1)


def _from_store(dep: Deployment, mode: str) -> dict:
    """Positions, open orders, kill switch and stages as the store has them."""
    from trader.core.redaction import redact_url
    from trader.store.views import (
        postgres_query,
        postgres_uri,
        sqlite_file,
        sqlite_query,
        store_status,
    )

    url = dep.database_url()
    shown = redact_url(url)
    path = sqlite_file(url)
    pg = postgres_uri(url) if path is None else None
    # Any failure is shown in the status rather than ending it: the status must still
    # show what the snapshot knows.  SQLite files and PostgreSQL are read without
    # SQLAlchemy, whose import alone would take most of the half second status may take.
    if path is not None or pg is not None:
        try:
            with sqlite_query(path) if path is not None else postgres_query(pg) as query:
                return {"database": shown, **store_status(query, mode)}
        except Exception as exc:
            from trader.core.logging import redactor  # the error may quote a connection string

            return {"database": shown, "error": redactor().text(str(exc).splitlines()[0])}
    try:
        store = dep.open_store(migrate=False)
    except Exception as exc:
        return {"error": str(exc).splitlines()[0]}
    try:
        with store.query() as query:
            return {"database": store.safe_url, **store_status(query, mode)}
    except Exception as exc:
        return {"database": store.safe_url, "error": str(exc).splitlines()[0]}
    finally:
        store.close()


def _print(snap: dict, running: bool, age: float) -> None:
    up = "[green]running[/]" if running else "[yellow]not running[/]"
    kill = "[red]ENGAGED[/]" if snap.get("kill_switch") else "off"
    nav = snap.get("nav")
    console.print(
        f"daemon {up} (pid {snap.get('pid')}, heartbeat {age:.1f}s ago)  mode [bold]"
        f"{snap.get('mode')}[/]  state {snap.get('state')}  trading "
        f"{'on' if snap.get('trading') else 'off'}  kill switch {kill}  risk "
        f"{snap.get('risk_state') or '-'}"
    )
    console.print(f"session {snap.get('session_id')}  config {snap.get('config_name')}  NAV "
                  f"{nav:,.2f}" if nav is not None else "NAV -")
    t = Table(title="positions")
    t.add_column("instrument")
    t.add_column("quantity", justify="right")
    for inst, q in sorted(snap.get("positions", {}).items()):
        t.add_row(inst, f"{q:g}")
    console.print(t)
    t = Table(title="open orders")
    for col in ("client_order_id", "instrument", "side", "quantity", "filled", "status"):
        t.add_column(col)
    for o in snap.get("open_orders", []):
        t.add_row(*(str(o.get(c, "")) for c in ("client_order_id", "instrument", "side",
                                                "quantity", "filled", "status")))
    console.print(t)
    t = Table(title="feeds")
    t.add_column("instrument")
    t.add_column("last bar (close)")
    t.add_column("stale")
    stale = set(snap.get("stale_feeds", []))
    for inst, info in sorted(snap.get("last_bar", {}).items()):
        t.add_row(inst, str(info.get("ts")), "STALE" if inst in stale else "")
    console.print(t)
    if snap.get("feed_failed"):
        console.print(f"[bold red]market data FAILED:[/] {snap['feed_failed']}", highlight=False,
                      soft_wrap=True)
    t = Table(title="gateway health")
    for col in ("gateway", "state", "since (event time)", "reason"):
        t.add_column(col)
    for gw, h in sorted(snap.get("feeds", {}).items()):
        t.add_row(gw, str(h.get("state", "")), str(h.get("ts") or ""), str(h.get("reason", "")))
    console.print(t)
    stored = snap.get("store")
    if stored:
        if "error" in stored:
            console.print(f"store: [red]{stored['error']}[/]")
        else:
            ks = stored.get("kill_switch", {})
            console.print(f"store {stored.get('database')}: positions {stored.get('positions')}, "
                          f"{len(stored.get('open_orders', []))} open orders, kill switch row "
                          f"{'ENGAGED' if ks.get('engaged') else 'off'}")
    t = Table(title="models")
    for col in ("name", "model", "stage", "active"):
        t.add_column(col)
    for m in snap.get("models", []):
        t.add_row(m.get("name", ""), m.get("model", ""), m.get("stage", ""),
                  "yes" if m.get("active") else "no")
    console.print(t)
    if snap.get("regimes"):
        t = Table(title="regimes")
        for col in ("regime", "state", "since (bar close)"):
            t.add_column(col)
        for name, r in sorted(snap["regimes"].items()):
            t.add_row(name, str(r.get("state") or "(warming up)"), str(r.get("since") or ""))
        console.print(t)
        mult = snap.get("budget_multipliers") or {}
        console.print("budget multipliers: " + (", ".join(f"{k} x{v:g}" for k, v in
                                                         sorted(mult.items())) or "none"))


def backtest_journal(journal: Path, config: Path | None, out: Path | None) -> None:
    """Replay a session journal (or each in a folder) and compare its orders with the session's."""
    from trader.engine.config import load_config
    from trader.live.journal import journal_files

    cfg = load_config(config) if config is not None else None
    if not journal.is_dir():
        _replay_one(journal, cfg, out)
        return
    paths, notes = journal_files(journal)
    for note in notes:
        console.print(f"[yellow]note:[/] {note}", highlight=False, soft_wrap=True)
    failed = 0
    for path in paths:
        try:
            _replay_one(path, cfg, out / path.stem if out is not None else None)
        except typer.Exit:
            failed += 1
    console.print(f"{len(paths)} journals replayed, {failed} with differing orders, "
                  f"{len(notes)} skipped")
    if failed:
        raise typer.Exit(1)


def _replay_one(journal: Path, cfg: Any, out: Path | None) -> None:
    from trader.live.journal_replay import order_key, replay_journal

    outcome = replay_journal(journal, cfg)
    for note in outcome.notes:
        console.print(f"[yellow]note:[/] {note} (ignored: torn last record)")
    h = outcome.header
    console.print(f"journal {journal}: session {h.session_id} ({h.mode}), "
                  f"{outcome.events:,} events replayed")
    console.print(f"orders: session {len(outcome.session_orders)}, "
                  f"replay {len(outcome.replay_orders)}")
    if out is not None:
        out.mkdir(parents=True, exist_ok=True)
        with open(out / "orders.csv", "w") as fh:
            fh.write("client_order_id,instrument,side,quantity,order_type,limit,stop,ts\n")
            for o in outcome.replay_orders:
                k = order_key(o)
                fh.write(f"{o.client_order_id},{k[0]},{k[1]},{k[2]!r},{k[3]},{k[4] or ''},"
                         f"{k[5] or ''},{k[6]}\n")
    if outcome.identical:
        console.print("[green]parity: the replay produced identical orders[/]")
        return
    console.print(f"[red]parity FAILED:[/] {outcome.first_difference()}")
    raise typer.Exit(1)
