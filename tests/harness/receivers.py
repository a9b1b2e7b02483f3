"""Loopback stand-ins that receive alerts: a JSON webhook, the Telegram Bot API, SMTP.

Each runs on 127.0.0.1 in a thread of its own and records what arrived.
"""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from typing import Any

from aiohttp import web


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class HttpReceiver:
    """An aiohttp server: ``/hook`` records JSON posts; ``/bot<token>/sendMessage`` answers
    like Telegram's Bot API. ``fail_first`` answers 500 to that many requests first."""

    def __init__(self, fail_first: int = 0) -> None:
        self.port = free_port()
        self.posts: list[dict[str, Any]] = []
        self.telegram: list[tuple[str, dict[str, Any]]] = []  # (bot token, payload)
        self.fail_first = fail_first
        self.requests = 0
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        self._ready.wait(10)

    def _serve(self) -> None:
        asyncio.set_event_loop(self._loop)
        app = web.Application()
        app.router.add_post("/hook", self._hook)
        app.router.add_post("/bot{token}/sendMessage", self._tg_send)
        self._runner = web.AppRunner(app)
        self._loop.run_until_complete(self._runner.setup())
        self._loop.run_until_complete(web.TCPSite(self._runner, "127.0.0.1", self.port).start())
        self._ready.set()
        self._loop.run_forever()

    def _failing(self) -> bool:
        self.requests += 1
        return self.requests <= self.fail_first

    async def _hook(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=500)
        self.posts.append(await request.json())
        return web.json_response({"ok": True})

    async def _tg_send(self, request: web.Request) -> web.Response:
        if self._failing():
            return web.Response(status=500)
        payload = await request.json() if request.content_type == "application/json" \
            else dict(await request.post())
        self.telegram.append((request.match_info["token"], payload))
        return web.json_response({"ok": True, "result": {"message_id": len(self.telegram)}})

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


class SmtpReceiver:
    """aiosmtpd on 127.0.0.1 accepting any login (no TLS) and recording each message."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller
        from aiosmtpd.smtp import AuthResult

        self.messages: list[str] = []
        self.logins: list[tuple[str, str]] = []
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):  # noqa: ANN001
                receiver.messages.append(envelope.content.decode(errors="replace"))
                return "250 OK"

        def auth(server, session, envelope, mechanism, data):  # noqa: ANN001
            receiver.logins.append((data.login.decode(), data.password.decode()))
            return AuthResult(success=True)

        self.port = free_port()
        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port,
                                      authenticator=auth, auth_require_tls=False)
        self._controller.start()

    def close(self) -> None:
        self._controller.stop()


def wait_until(predicate: Any, timeout: float = 30.0, what: str = "") -> None:
    """Poll ``predicate`` until true (a bound on a wait, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"not within {timeout}s: {what}")


def dumps(x: Any) -> str:
    return json.dumps(x, sort_keys=True)
