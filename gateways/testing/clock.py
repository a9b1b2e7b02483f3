"""A fake monotonic clock for the venue limiter and the stand-ins' bans.

``ManualClock`` moves only when a test calls ``advance`` (to check that nothing
is sent during a ban); with ``auto=True`` every ``sleep`` moves it instead
(virtual time: an 8 s Retry-After passes at once, in the right order).
"""

from __future__ import annotations

import asyncio


class ManualClock:
    """Seconds as a float, like ``time.monotonic``; ``sleep`` waits on this clock."""

    def __init__(self, start: float = 1_000.0, *, auto: bool = False) -> None:
        self.t = start
        self.auto = auto

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        """Move the clock forward (manual mode)."""
        self.t += seconds

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of this clock's time."""
        if self.auto:
            self.t += max(seconds, 0.0)
            await asyncio.sleep(0)
            return
        end = self.t + seconds
        while self.t < end:  # real time passes in small steps until a test advances us
            await asyncio.sleep(0.005)
