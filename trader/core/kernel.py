"""The kernel: one bus, one clock, and a dispatch loop for replay or live sources.

Replay calls ``run`` with an iterator of events.  Live sessions call
``run_async``; gateway tasks (or threads) hand events in with ``post``.  Both
paths end in the same ``dispatch``, so components cannot tell them apart.
"""

from __future__ import annotations

import asyncio
import gc
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import structlog

from trader.core.bus import EventBus
from trader.core.clock import Clock, ReplayClock
from trader.core.events import Bar, Event

log = structlog.get_logger(__name__)


class QueueFull(Exception):
    """The live inbox is full and the policy says to fail loudly."""


class Kernel:
    """Wires components to a bus and drives them with events in time order."""

    def __init__(
        self, clock: Clock, bus: EventBus | None = None, *, queue_size: int = 100_000
    ) -> None:
        self.clock = clock
        self.bus = bus or EventBus()
        self.consumers: list[Callable[[Any], None]] = []  # see every dispatched event (journal)
        self.events_dispatched = 0
        self.queue_size = queue_size  # bound of the live inbox (bars beyond it are dropped)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.dropped = 0
        self.max_queue_depth = 0

    # -- replay -------------------------------------------------------------------
    def run(self, events: Iterable[Event], progress: Callable[[int], None] | None = None) -> int:
        """Dispatch every event of a replay in order; return how many were dispatched."""
        clock = self.clock
        if not isinstance(clock, ReplayClock):
            raise TypeError("Kernel.run replays history and needs a ReplayClock")
        bar_handlers = self.bus.handlers(Bar)
        publish = self.bus.publish
        consumers = self.consumers
        n = 0
        # What the replay's events create dies young and is freed by reference
        # counting; what existed before it (modules, config, the engine) is set
        # aside from the cyclic collector while the replay runs, or every full
        # collection walks all of it again (a tenth of a replay's time).
        gc.freeze()
        try:
            for ev in events:
                ts = ev.ts
                # Inlined ReplayClock.advance: this loop runs once per bar of history.
                if ts > clock._now:
                    clock._now = ts
                if consumers:
                    for c in consumers:
                        c(ev)
                if type(ev) is Bar:
                    for h in bar_handlers:
                        h(ev)
                else:
                    publish(ev)
                n += 1
                if progress is not None and not n & 0x3FFF:
                    progress(n)
        finally:
            gc.unfreeze()
        self.events_dispatched += n
        return n

    def dispatch(self, event: Event) -> None:
        advance = getattr(self.clock, "advance", None)
        if advance is not None:
            advance(event.ts)
        for c in self.consumers:
            c(event)
        self.bus.publish(event)
        self.events_dispatched += 1

    # -- live -----------------------------------------------------------------------
    def bind_loop(self, loop: asyncio.AbstractEventLoop | None = None) -> None:
        self._loop = loop or asyncio.get_running_loop()
        self._inbox: deque[Event] = deque()
        self._waiter: asyncio.Future | None = None

    def post(self, event: Event) -> None:
        """Hand an event to the kernel from any thread or task."""
        loop = self._loop
        if loop is None:
            raise RuntimeError("Kernel.post before bind_loop: the live loop is not running")
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._enqueue(event)
        else:
            loop.call_soon_threadsafe(self._enqueue, event)

    def _enqueue(self, event: Event) -> None:
        inbox = self._inbox
        # Policy when consumers fall behind (the inbox holds ``queue_size`` events):
        # order updates and fills are never dropped (losing one would corrupt the
        # book); a bar beyond the bound is dropped and counted (``dropped``, shown by
        # ``trader status`` and /metrics), and logged at the first drop and every
        # 1,000th after, so a flood of drops cannot also flood the log.  Dropped bars
        # were never dispatched, so they are not in the journal and parity holds.
        if len(inbox) >= self.queue_size and type(event) is Bar:
            self.dropped += 1
            if self.dropped == 1 or not self.dropped % 1000:
                log.error("kernel_queue_full_bar_dropped", instrument=event.instrument_id,
                          ts=event.ts, depth=len(inbox), dropped_total=self.dropped)
            return
        inbox.append(event)
        depth = len(inbox)
        if depth > self.max_queue_depth:
            self.max_queue_depth = depth
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def _wake(self, _: object = None) -> None:
        waiter = self._waiter
        if waiter is not None:
            self._waiter = None
            if not waiter.done():
                waiter.set_result(None)

    def pending(self) -> int:
        return len(self._inbox) if self._loop is not None else 0

    async def run_async(self, stop: asyncio.Event) -> None:
        """Consume posted events until ``stop`` is set and the inbox is drained."""
        if self._loop is None:
            self.bind_loop()
        loop = self._loop
        assert loop is not None
        inbox = self._inbox
        dispatch = self.dispatch
        # One future per idle period, resolved by the next post (or by ``stop``): a
        # single loop hop from post to dispatch keeps tick-to-trade latency low.
        stopper = asyncio.ensure_future(stop.wait())
        stopper.add_done_callback(self._wake)
        try:
            while True:
                while inbox:
                    event = inbox.popleft()
                    try:
                        dispatch(event)
                    except Exception:  # one bad event must not end a live session
                        log.exception("event_dispatch_failed", event_type=type(event).__name__)
                if stop.is_set():
                    return
                waiter = self._waiter = loop.create_future()
                await waiter
        finally:
            self._waiter = None
            stopper.cancel()
