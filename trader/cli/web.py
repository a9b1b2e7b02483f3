"""``trader web``: the read-only dashboard of a deployment (``trader.web``)."""

from __future__ import annotations

import os
from pathlib import Path

import typer
from rich.console import Console

from trader.cli.deployment import CONFIG_OPTION, DATA_DIR_OPTION, UserError, resolve

console = Console(soft_wrap=True)


def web(
    config: Path = CONFIG_OPTION,
    data_dir: Path = DATA_DIR_OPTION,
    host: str = typer.Option(None, "--host", help="address to bind (default web.host, "
                             "127.0.0.1; any other needs $TRADER_WEB_TOKEN)"),
    port: int = typer.Option(None, "--port", help="port (default web.port, 8321; 0 picks one)"),
) -> None:
    """Serve a read-only dashboard of the daemon and its past sessions (status and store)."""
    from trader.engine.config import WebConfig
    from trader.web.server import TOKEN_ENV, WebError, build_app, check_bind, serve

    dep = resolve(config, data_dir)
    wcfg = dep.cfg.web if dep.cfg is not None else WebConfig()
    host = host or wcfg.host
    port = wcfg.port if port is None else port
    token = os.environ.get(TOKEN_ENV) or None
    try:
        check_bind(host, token)
    except WebError as exc:
        raise UserError(str(exc)) from None
    app = build_app(dep.data_dir, lambda: dep.open_store(migrate=False), token)

    def ready(h: str, p: int) -> None:
        shown = f"[{h}]" if ":" in h else h
        console.print(f"dashboard (read-only) of {dep.data_dir} on http://{shown}:{p}/"
                      + (" (token required)" if token else ""), highlight=False)

    serve(app, host, port, ready=ready)
