"""The dashboard's HTTP server (aiohttp): one page and one JSON endpoint, read-only.

It binds 127.0.0.1 unless told otherwise; any other address needs a token
(``$TRADER_WEB_TOKEN``), and with a token every request must carry it
(``Authorization: Bearer <token>`` or ``?token=<token>``).
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aiohttp import web

from trader.web.page import PAGE
from trader.web.views import NavHistory, status_view, store_view

TOKEN_ENV = "TRADER_WEB_TOKEN"


class WebError(Exception):
    """The dashboard cannot start as asked (an open bind without a token)."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: it may resolve to anything


def check_bind(host: str, token: str | None) -> None:
    """Refuse to listen beyond loopback without a token."""
    if not is_loopback(host) and not token:
        raise WebError(f"--host {host} is not loopback: set ${TOKEN_ENV} to a token the page "
                       "and API will require (or bind 127.0.0.1 and tunnel)")


def _authorized(request: web.Request, token: str) -> bool:
    given = request.query.get("token", "")
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        given = auth[7:]
    return hmac.compare_digest(given.encode(), token.encode())


def build_app(data_dir: Path, open_store: Callable[[], Any], token: str | None = None
              ) -> web.Application:
    """The read-only app over one deployment's data directory and store."""
    history = NavHistory()
    state: dict[str, Any] = {"store": None}

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if token and not _authorized(request, token):
            return web.json_response({"error": "a token is required"}, status=401)
        response = await handler(request)
        response.headers["Cache-Control"] = "no-store"
        return response

    def collect() -> dict[str, Any]:
        status = status_view(data_dir)
        history.observe(status)
        out: dict[str, Any] = {"status": status, "nav_history": history.as_list()}
        try:
            if state["store"] is None:
                state["store"] = open_store()
            out["store"] = store_view(state["store"], status.get("mode"))
        except Exception as exc:  # the page still shows the snapshot without the store
            out["store"] = {"error": str(exc).splitlines()[0] if str(exc) else repr(exc)}
        return out

    async def index(_request: web.Request) -> web.Response:
        return web.Response(text=PAGE, content_type="text/html")

    async def api_state(_request: web.Request) -> web.Response:
        data = await asyncio.to_thread(collect)  # SQL off the server's loop
        return web.json_response(data, dumps=_dumps)

    async def close_store(_app: web.Application) -> None:
        if state["store"] is not None:
            state["store"].close()

    app = web.Application(middlewares=[guard])
    app.router.add_get("/", index)
    app.router.add_get("/api/state", api_state)
    app.on_cleanup.append(close_store)
    return app


def _dumps(obj: Any) -> str:
    import json

    return json.dumps(obj, default=str)


def serve(app: web.Application, host: str, port: int,
          ready: Callable[[str, int], None] | None = None) -> None:
    """Run until interrupted; ``ready(host, port)`` once listening (port 0 picks one)."""

    async def main() -> None:
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound = site._server.sockets[0].getsockname()[1] if site._server else port  # noqa: SLF001
        if ready is not None:
            ready(host, bound)
        try:
            await asyncio.Event().wait()
        finally:
            await runner.cleanup()

    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
