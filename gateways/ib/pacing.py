"""IB's historical-data pacing: wait before a request IB would refuse.

IB refuses (error 162) a historical request that repeats an identical one within
15 s, or that is the 61st within 10 minutes (and more than six of the same
contract within 2 s).  ``HistoryPacer.wait`` sleeps until a request may go;
``penalise`` is called after a 162 anyway (another program on the same login
shares the budget) and holds every request back for a while.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable, Hashable

IDENTICAL_S = 15.0
WINDOW_S = 600.0
WINDOW_MAX = 60


def delay_for(now: float, key: Hashable, sent: deque[tuple[float, Hashable]],
              penalty_until: float, *, identical_s: float = IDENTICAL_S,
              window_s: float = WINDOW_S, window_max: int = WINDOW_MAX) -> float:
    """Seconds to wait before a request ``key`` may be sent (0 = now)."""
    wait = max(penalty_until - now, 0.0)
    for t, k in sent:
        if k == key and now - t < identical_s:
            wait = max(wait, t + identical_s - now)
    recent = [t for t, _k in sent if now - t < window_s]
    if len(recent) >= window_max:
        wait = max(wait, recent[-window_max] + window_s - now)
    return wait


class HistoryPacer:
    """Spaces historical-data requests to IB's limits (one per gateway, one loop)."""

    def __init__(self, *, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
                 window_max: int = WINDOW_MAX, identical_s: float = IDENTICAL_S) -> None:
        self._clock = clock
        self.identical_s = identical_s
        self._sleep = sleep
        self.window_max = window_max
        self._sent: deque[tuple[float, Hashable]] = deque()
        self._penalty_until = 0.0
        self.waited_s = 0.0  # total time held back (operators, tests)
        self.violations = 0

    async def wait(self, key: Hashable) -> None:
        """Sleep until ``key`` may be requested, then count it as sent."""
        while True:
            now = self._clock()
            while self._sent and now - self._sent[0][0] >= WINDOW_S:
                self._sent.popleft()
            d = delay_for(now, key, self._sent, self._penalty_until,
                          identical_s=self.identical_s, window_max=self.window_max)
            if d <= 0:
                self._sent.append((now, key))
                return
            self.waited_s += d
            await self._sleep(d)

    def penalise(self, seconds: float) -> None:
        """IB said 162: hold every request back for ``seconds``."""
        self.violations += 1
        self._penalty_until = max(self._penalty_until, self._clock() + seconds)
