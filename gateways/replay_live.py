"""A market data gateway that streams a historical bar file through the *live* path.

It is what a broker's bar stream is to the daemon: a task that hands closed bars
to ``Kernel.post`` as they "arrive".  Arrival times are the bars' own close
times compressed by ``speed`` (1000 = a thousand times real time), or as fast
as the kernel consumes them (``speed=None``), with back-pressure so the
kernel's bounded inbox never has to drop a bar.  It places no orders: in paper
mode orders go to the ``SimulatedGateway``, which sees the same bars on the bus.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import structlog

from gateways.base import EventSink, NoBrokerRecord
from trader.core.events import Bar, OrderRequest

log = structlog.get_logger(__name__)


class ReplayLiveGateway(NoBrokerRecord):
    """Streams bars at ``speed`` x real time into the bound sink (``Kernel.post``)."""

    def __init__(
        self,
        bars: Iterable[Bar],
        *,
        speed: float | None = 1000.0,
        name: str = "replay",
        pending: Callable[[], int] | None = None,
        high_water: int = 1_000,
    ) -> None:
        if speed is not None and speed <= 0:
            raise ValueError(f"replay speed must be > 0 (None: as fast as possible), got {speed}")
        self.name = name
        self.speed = speed
        self._bars = bars
        self._sink: EventSink | None = None
        self._pending = pending
        self._high_water = high_water
        self.bars_sent = 0
        self.last_bar_ts = 0
        self.finished = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._paused = False

    # -- Gateway protocol (market data only) ----------------------------------------
    def bind(self, sink: EventSink) -> None:
        self._sink = sink

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def submit(self, order: OrderRequest) -> None:
        raise RuntimeError(f"gateway {self.name!r} streams market data only; "
                           f"route orders to an execution gateway (e.g. 'sim')")

    def cancel(self, client_order_id: str) -> None:  # noqa: ARG002 - protocol
        return None


    # -- streaming ---------------------------------------------------------------------
    def start(self) -> asyncio.Task:
        """Start streaming in a task of the running loop."""
        self._task = asyncio.get_running_loop().create_task(self.stream(), name=f"feed:{self.name}")
        return self._task

    def pause(self) -> None:
        """Stop handing out bars (shutdown): the stream task idles until closed."""
        self._paused = True

    async def stream(self) -> None:
        """Post every bar at its (compressed) arrival time; set ``finished`` at the end."""
        sink = self._sink
        if sink is None:
            raise RuntimeError(f"gateway {self.name!r} streamed before bind()")
        speed = self.speed
        pending = self._pending
        wall0 = time.monotonic()
        ts0: int | None = None
        n = 0
        try:
            for bar in self._bars:
                if self._paused:
                    break
                if speed is not None:
                    if ts0 is None:
                        ts0 = bar.ts
                    due = wall0 + (bar.ts - ts0) / 1e9 / speed
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                elif pending is not None and pending() >= self._high_water:
                    while pending() > self._high_water // 2:
                        await asyncio.sleep(0)
                elif not n & 0xFF:
                    await asyncio.sleep(0)  # let the kernel run between bursts
                if self._paused:
                    break
                sink(bar)
                n += 1
                self.bars_sent = n
                self.last_bar_ts = bar.ts
        finally:
            self.finished.set()
        log.info("replay_feed_finished", gateway=self.name, bars=n)
