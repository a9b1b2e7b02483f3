"""A market data gateway that streams a historical bar file through the *live* path.

It is what a broker's bar stream is to the daemon: a task that hands closed bars
to ``Kernel.post`` as they "arrive".  Arrival times are the bars' own close
times compressed by ``speed`` (1000 = a thousand times real time), or as fast
as the kernel consumes them (``speed=None``), with back-pressure so the
kernel's bounded inbox never has to drop a bar.  It places no orders: in paper
mode orders go to the ``SimulatedGateway``, which sees the same bars on the bus.

Every bar passes the boundary check (``gateways.validation.BarGuard``, no
price band: the file is history, already checked row by row by the feed, and
a band would make paper differ from a backtest of the same file).  The end of
the file, or a file the feed cannot read on, is reported as ``GatewayHealth``
stamped with the last bar's time: event time, never the wall clock, so the
journal replays identically.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

import structlog

from gateways.base import EventSink, NoBrokerRecord
from gateways.validation import BarGuard
from trader.core.events import Bar, GatewayHealth, HealthState, OrderRequest

log = structlog.get_logger(__name__)

# The reason of the ``GatewayHealth(disconnected)`` that reports the normal end of the file
# (any other disconnect of this gateway is a failure: it never reconnects).
FEED_ENDED = "feed ended"


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
        self.guard: BarGuard | None = None
        self.failed: str | None = None
        self._pending = pending
        self._high_water = high_water
        self.bars_sent = 0
        self.last_bar_ts = 0
        self.finished = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._paused = False

    # -- Gateway protocol (market data only) ----------------------------------------
    def bind(self, sink: EventSink) -> None:
        """Bars and health events go to ``sink`` (``Kernel.post``), bars through a guard."""
        self._sink = sink
        self.guard = BarGuard(sink, gateway=self.name, venue="replay", band=None)

    async def connect(self) -> None:
        """Nothing to connect to: the bars are a local file."""
        return None

    async def close(self) -> None:
        """Stop the stream task."""
        if self._task is not None and not self._task.done():
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass

    def submit(self, order: OrderRequest) -> None:
        """Refuse: this gateway places no orders."""
        raise RuntimeError(f"gateway {self.name!r} streams market data only; "
                           f"route orders to an execution gateway (e.g. 'sim')")

    def cancel(self, client_order_id: str) -> None:  # noqa: ARG002 - protocol
        """Nothing to cancel."""
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
        raw = self._sink
        if raw is None or self.guard is None:
            raise RuntimeError(f"gateway {self.name!r} streamed before bind()")
        sink = self.guard
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
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            # a bad row with on_bad_row=error, an unreadable file: the feed cannot go on
            self.failed = f"{type(exc).__name__}: {exc}"
            log.error("replay_feed_failed", gateway=self.name, bars=n, error=self.failed)
            raw(GatewayHealth(self.last_bar_ts, self.name, HealthState.DISCONNECTED,
                              f"feed failed: {self.failed}"))
            return
        finally:
            self.finished.set()
        if not self._paused:
            raw(GatewayHealth(self.last_bar_ts, self.name, HealthState.DISCONNECTED,
                              FEED_ENDED))
        log.info("replay_feed_finished", gateway=self.name, bars=n)
