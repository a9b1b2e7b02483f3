"""The kernel's live loop: posts from other threads, stop semantics, the bounded inbox policy."""

from __future__ import annotations

import asyncio
import threading

from structlog.testing import capture_logs

from trader.core.clock import LiveClock
from trader.core.events import Bar, Fill, OrderStatus, OrderUpdate, Side
from trader.core.kernel import Kernel


def _bar(i: int, inst: str = "X") -> Bar:
    return Bar((i + 1) * 60_000_000_000, inst, 60, i * 60_000_000_000, 1, 1, 1, 1, 1)


async def test_posts_from_a_thread_are_dispatched_in_order_and_stop_drains():
    clock = LiveClock()
    k = Kernel(clock)
    seen: list = []
    k.consumers.append(seen.append)
    k.bind_loop()
    stop = asyncio.Event()
    task = asyncio.create_task(k.run_async(stop))

    def producer() -> None:
        for i in range(200):
            k.post(_bar(i))

    t = threading.Thread(target=producer)
    t.start()
    t.join()
    await asyncio.sleep(0.05)
    k.post(_bar(500))
    stop.set()
    await asyncio.wait_for(task, 2)
    assert [e.ts for e in seen] == [_bar(i).ts for i in [*range(200), 500]]
    assert clock.now() == _bar(500).ts  # decisions are stamped with event time


async def test_a_full_inbox_drops_bars_only_and_says_so_once_per_thousand():
    k = Kernel(LiveClock(), queue_size=10)
    k.bind_loop()
    fill = Fill(1, "c", "t", "X", Side.BUY, 1.0, 1.0)
    update = OrderUpdate(1, "c", OrderStatus.ACCEPTED)
    with capture_logs() as logs:
        for i in range(1_510):
            k.post(_bar(i))
        k.post(fill)
        k.post(update)
    assert k.pending() == 12  # ten bars, then the fill and the update are never dropped
    assert k.dropped == 1_500
    drops = [x for x in logs if x["event"] == "kernel_queue_full_bar_dropped"]
    assert [x["dropped_total"] for x in drops] == [1, 1000]
    dispatched: list = []
    k.consumers.append(dispatched.append)
    stop = asyncio.Event()
    stop.set()
    await asyncio.wait_for(k.run_async(stop), 2)
    assert dispatched[-2:] == [fill, update]


async def test_a_failing_handler_does_not_end_the_session():
    k = Kernel(LiveClock())
    calls: list = []

    def bad(bar: Bar) -> None:
        calls.append(bar)
        raise RuntimeError("boom")

    k.bus.subscribe(Bar, bad)
    k.bind_loop()
    stop = asyncio.Event()
    task = asyncio.create_task(k.run_async(stop))
    with capture_logs() as logs:
        k.post(_bar(1))
        k.post(_bar(2))
        await asyncio.sleep(0.02)
    stop.set()
    await asyncio.wait_for(task, 2)
    assert len(calls) == 2
    assert sum(x["event"] == "event_dispatch_failed" for x in logs) == 2
