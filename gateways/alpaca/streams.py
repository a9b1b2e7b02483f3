"""alpaca-py's websocket streams, run inside the daemon's loop and supervised.

``stream.run()`` calls ``asyncio.run`` (impossible inside a running loop), and
the library's own ``_run_forever`` reconnects silently for ever.  ``StreamRunner``
drives the same client object step by step instead (connect and authenticate,
subscribe, consume), so that every drop, refused authentication and reconnect
becomes a health report, the gateway backfills before consuming again, and a
frame that cannot be decoded is counted and skipped without closing a healthy
connection.  Handlers are registered before the runner starts (subscribing on a
running alpaca-py stream blocks the loop's own thread).  Shutdown cancels the
task and closes the socket at once (``stop_ws`` would wait for a 5 s receive); as
``asyncio.wait_for`` in Python 3.11 can swallow a cancellation that meets a frame just
received, ``stop`` also marks the runner stopped and closes the socket, so the loop
ends whichever way the cancellation went.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
import websockets

from gateways.inflight import backoff_delay

log = structlog.get_logger(__name__)

_CONNECT_ERRORS = (websockets.WebSocketException, OSError, asyncio.TimeoutError, ValueError,
                   KeyError, TypeError, IndexError)


class StreamRunner:
    """One alpaca-py stream (data or trading) under supervision.

    ``on_up(reconnected)`` runs after each successful connect and subscribe,
    before any message is consumed (the gateway backfills there);
    ``on_down(reason)`` after each failure; ``on_bad_frame(error)`` for a frame
    the client could not decode or dispatch.
    """

    def __init__(self, stream: Any, label: str, *, subscribe: bool,
                 on_up: Callable[[bool], Awaitable[None]],
                 on_down: Callable[[str], None],
                 on_bad_frame: Callable[[str], None],
                 backoff: tuple[float, float, float] = (0.5, 30.0, 0.25),
                 rng: random.Random | None = None) -> None:
        self.stream = stream
        self.label = label
        self._subscribe = subscribe
        self._on_up = on_up
        self._on_down = on_down
        self._on_bad_frame = on_bad_frame
        self._backoff = backoff
        self._rng = rng or random.Random()
        self.connects = 0
        self.failures = 0
        self.bad_frames = 0
        self._stopped = False
        self._task: asyncio.Task[None] | None = None

    def start(self, name: str) -> asyncio.Task[None]:
        """Run the stream as a task of the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.run(), name=name)
        return self._task

    async def stop(self, grace_s: float = 2.0) -> None:
        """End the stream now: no reconnect, socket closed, task finished."""
        self._stopped = True
        task = self._task
        if task is None or task.done():
            return
        task.cancel()
        with contextlib.suppress(Exception):
            await self.stream.close()  # a receive in progress fails at once
        _done, pending = await asyncio.wait({task}, timeout=grace_s)
        for t in pending:
            log.error("stream_did_not_stop", stream=self.label)
            t.cancel()

    async def run(self) -> None:
        """Connect, consume, reconnect until stopped or cancelled."""
        attempt = 0
        try:
            while not self._stopped:
                try:
                    await self.stream._start_ws()  # connect, authenticate (trading: listen)
                    if self._subscribe:
                        await self.stream._send_subscribe_msg()
                    self.stream._running = True
                except asyncio.CancelledError:
                    raise
                except _CONNECT_ERRORS as exc:
                    if self._stopped:
                        return
                    attempt += 1
                    await self._failed(f"{self.label} connect failed: {_why(exc)}", attempt)
                    continue
                reconnected = self.connects > 0
                self.connects += 1
                attempt = 0
                try:
                    await self._on_up(reconnected)
                    await self._consume()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # noqa: BLE001 - the socket or the backfill broke
                    if self._stopped:
                        return
                    attempt += 1
                    await self._failed(f"{self.label} dropped: {_why(exc)}", attempt)
        finally:
            with contextlib.suppress(Exception):
                await self.stream.close()

    async def _consume(self) -> None:
        """Consume until the connection fails; a frame that breaks decoding is skipped."""
        while not self._stopped:
            try:
                await self.stream._consume()
                return  # only a stop request ends the library's loop; not used here
            except asyncio.CancelledError:
                raise
            except websockets.WebSocketException:
                raise
            except Exception as exc:  # noqa: BLE001 - msgpack/json/pydantic errors of one frame
                self.bad_frames += 1
                self._on_bad_frame(f"{self.label}: undecodable frame skipped ({_why(exc)})")
                if self.stream._ws is None:
                    raise websockets.ConnectionClosedError(None, None) from exc

    async def _failed(self, reason: str, attempt: int) -> None:
        self.failures += 1
        with contextlib.suppress(Exception):
            await self.stream.close()
        self._on_down(reason)
        initial, cap, jitter = self._backoff
        await asyncio.sleep(backoff_delay(attempt, initial, cap, jitter, self._rng))


def _why(exc: BaseException) -> str:
    text = str(exc) or repr(exc)
    return f"{type(exc).__name__}: {text[:200]}"
