"""Bus fan-out, clocks, and the kernel's replay and live dispatch paths."""

from __future__ import annotations

import asyncio
import gc
import threading

import pytest

from trader.core.bus import EventBus
from trader.core.clock import LiveClock, ReplayClock
from trader.core.events import Bar, Fill, OrderUpdate, Side, Timer
from trader.core.kernel import Kernel


def bar(ts: int, inst: str = "X") -> Bar:
    return Bar(ts, inst, 60, ts - 60, 1.0, 1.0, 1.0, 1.0, 1.0)


async def until(cond, timeout: float = 2.0) -> None:
    """Yield to the loop until ``cond()`` holds (no fixed sleeps: CI machines are slow)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not cond():
        assert loop.time() < deadline, "condition not reached in time"
        await asyncio.sleep(0.001)


def test_bus_fans_out_by_exact_type_in_subscription_order_depth_first() -> None:
    bus = EventBus()
    seen: list[str] = []
    bus.subscribe(Bar, lambda e: seen.append("a"))
    bus.subscribe(Bar, lambda e: (seen.append("b"), bus.publish(Timer(e.ts))))
    bus.subscribe(Timer, lambda e: seen.append("timer"))
    bus.subscribe(Bar, lambda e: seen.append("c"))
    bus.publish(bar(1))
    assert seen == ["a", "b", "timer", "c"]  # nested event delivered before publish returns
    bus.publish(Fill(1, "o", "t", "X", Side.BUY, 1.0, 1.0))  # nobody listens: no error
    handler = bus.handlers(Bar)[0]
    bus.unsubscribe(Bar, handler)
    seen.clear()
    bus.publish(bar(2))
    assert seen == ["b", "timer", "c"]


def test_replay_clock_never_runs_backwards_and_live_clock_is_wall_time() -> None:
    c = ReplayClock(10)
    c.advance(20)
    c.advance(15)
    assert c.now() == 20
    import time

    before = time.time_ns()
    assert before <= LiveClock().now() <= time.time_ns()


def test_replay_run_advances_clock_feeds_consumers_and_dispatches_all_types() -> None:
    clock = ReplayClock()
    k = Kernel(clock)
    seen: list = []
    consumed: list = []
    k.consumers.append(consumed.append)
    k.bus.subscribe(Bar, lambda e: seen.append(("bar", e.ts, clock.now())))
    k.bus.subscribe(OrderUpdate, lambda e: seen.append(("upd", e.ts, clock.now())))
    events = [bar(100), OrderUpdate(150, "o1", "ACCEPTED"), bar(200)]
    progress: list[int] = []
    assert k.run(iter(events), progress.append) == 3
    assert seen == [("bar", 100, 100), ("upd", 150, 150), ("bar", 200, 200)]
    assert consumed == events
    assert k.events_dispatched == 3


def test_replay_sets_earlier_objects_aside_from_the_collector_and_restores_them() -> None:
    k = Kernel(ReplayClock())
    frozen: list[int] = []
    k.bus.subscribe(Bar, lambda e: frozen.append(gc.get_freeze_count()))
    assert gc.get_freeze_count() == 0
    assert k.run(iter([bar(100), bar(200)])) == 2
    assert frozen[0] > 0 and gc.get_freeze_count() == 0
    def boom(e: Bar) -> None:
        raise ValueError("handler failed")

    k.bus.subscribe(Bar, boom)
    with pytest.raises(ValueError, match="handler failed"):
        k.run(iter([bar(400)]))
    assert gc.get_freeze_count() == 0  # restored on the way out of a failure too


async def test_live_run_dispatches_posted_events_in_order_from_tasks_and_threads() -> None:
    k = Kernel(ReplayClock())
    got: list[int] = []
    k.bus.subscribe(Bar, lambda e: got.append(e.ts))
    with pytest.raises(RuntimeError, match="before bind_loop"):
        k.post(bar(1))
    k.bind_loop()
    stop = asyncio.Event()
    runner = asyncio.create_task(k.run_async(stop))
    for ts in (1, 2, 3):
        k.post(bar(ts))
    t = threading.Thread(target=lambda: [k.post(bar(ts)) for ts in (4, 5, 6)])
    t.start()
    t.join()
    await until(lambda: len(got) >= 6)
    assert got == [1, 2, 3, 4, 5, 6]
    k.post(bar(7))
    stop.set()
    await asyncio.wait_for(runner, 2)
    assert got[-1] == 7  # the inbox is drained before stopping


async def test_live_handler_failure_does_not_end_the_session() -> None:
    k = Kernel(ReplayClock())
    got: list[int] = []

    def handler(e: Bar) -> None:
        if e.ts == 2:
            raise ValueError("boom")
        got.append(e.ts)

    k.bus.subscribe(Bar, handler)
    k.bind_loop()
    stop = asyncio.Event()
    runner = asyncio.create_task(k.run_async(stop))
    for ts in (1, 2, 3):
        k.post(bar(ts))
    await until(lambda: len(got) >= 2)
    stop.set()
    await asyncio.wait_for(runner, 2)
    assert got == [1, 3]


async def test_live_queue_bound_drops_bars_but_never_order_events() -> None:
    k = Kernel(ReplayClock(), queue_size=2)
    k.bind_loop()
    for ts in (1, 2, 3, 4):
        k.post(bar(ts))
    k.post(OrderUpdate(5, "o", "ACCEPTED"))
    assert k.pending() == 3 and k.dropped == 2
