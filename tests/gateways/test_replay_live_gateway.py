"""The replay-as-live gateway paces bars by their timestamps and respects back-pressure."""

from __future__ import annotations

import asyncio
import time

import pytest

from gateways.replay_live import ReplayLiveGateway
from trader.core.events import Bar

NS = 1_000_000_000


def _bars(n: int, step_s: int = 3600) -> list[Bar]:
    return [Bar((i + 1) * step_s * NS, "X", step_s, i * step_s * NS, 1, 1, 1, 1, 1)
            for i in range(n)]


async def test_bars_arrive_at_speed_compressed_times():
    got: list[tuple[float, Bar]] = []
    gw = ReplayLiveGateway(_bars(6), speed=36_000)  # an hourly bar every 0.1 s
    gw.bind(lambda b: got.append((time.monotonic(), b)))
    t0 = time.monotonic()
    await gw.stream()
    elapsed = time.monotonic() - t0
    assert [b for _, b in got if isinstance(b, Bar)] == _bars(6)
    assert 0.45 <= elapsed < 1.5  # five gaps of 0.1 s
    assert gw.finished.is_set() and gw.bars_sent == 6


async def test_max_speed_waits_for_the_kernel():
    inbox: list[Bar] = []
    depth_seen = []

    def pending() -> int:
        depth_seen.append(len(inbox))
        return len(inbox)

    gw = ReplayLiveGateway(_bars(500), speed=None, pending=pending, high_water=50)
    gw.bind(inbox.append)

    async def consumer():
        while not gw.finished.is_set() or inbox:
            del inbox[:10]
            await asyncio.sleep(0)

    await asyncio.gather(gw.stream(), consumer())
    assert gw.bars_sent == 500
    assert max(depth_seen) <= 51  # never ran away from the consumer


async def test_pause_stops_the_stream():
    got = []
    gw = ReplayLiveGateway(_bars(100), speed=3600)  # one bar a second
    gw.bind(got.append)
    task = gw.start()
    await asyncio.sleep(0.05)
    gw.pause()
    await gw.close()
    assert task.done() and len(got) <= 2


def test_it_is_not_an_execution_gateway():
    gw = ReplayLiveGateway([], speed=1)
    with pytest.raises(RuntimeError, match="market data only"):
        gw.submit(None)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="speed"):
        ReplayLiveGateway([], speed=0)
