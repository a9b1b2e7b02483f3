"""The background tasks of one gateway: started by name, failures logged, stopped together.

Every gateway runs its network calls as tasks (``submit`` never blocks the
kernel).  A task that dies with an exception must not vanish silently, and at
close the orders already handed over should reach the venue before anything is
cancelled: an order task cancelled mid-request leaves its outcome unknown to
everybody.  Task names are ``<gateway>:<what>[:<detail>]``; order tasks are
``submit:...`` and ``cancel:...``.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Iterator
from typing import Any

import structlog

log = structlog.get_logger(__name__)

ORDER_TASKS = ("submit", "cancel")


class GatewayTasks:
    """A set of named tasks owned by gateway ``gateway``."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self._tasks: set[asyncio.Task[Any]] = set()

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> asyncio.Task[Any]:
        """Run ``coro`` as task ``<gateway>:<name>`` on the running loop."""
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.gateway}:{name}")
        self.adopt(task)
        return task

    def adopt(self, task: asyncio.Task[Any]) -> None:
        """Own a task started elsewhere (a stream runner's): logged and stopped like ours."""
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            log.error("gateway_task_failed", gateway=self.gateway, task=task.get_name(),
                      error=f"{type(exc).__name__}: {exc}")

    async def settle_orders(self, limit_s: float) -> None:
        """Wait (at most ``limit_s``) for the order tasks still running; log the late ones."""
        pending = [t for t in self._tasks if t.get_name().split(":")[1] in ORDER_TASKS]
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=limit_s)
        if late:
            log.error("orders_in_flight_at_close", gateway=self.gateway,
                      tasks=sorted(t.get_name() for t in late))

    async def cancel_all(self) -> None:
        """Cancel every task and wait until each has stopped."""
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await t
        self._tasks.clear()
