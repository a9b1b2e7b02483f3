"""Clocks. The kernel never reads the wall clock itself: it asks the injected clock."""

from __future__ import annotations

import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> int:
        """Current time in UTC nanoseconds."""
        ...


class ReplayClock:
    """Time advanced by the replayed events themselves."""

    __slots__ = ("_now",)

    def __init__(self, start: int = 0) -> None:
        self._now = start

    def now(self) -> int:
        return self._now

    def advance(self, ts: int) -> None:
        # Time never runs backwards, even if a late event arrives.
        if ts > self._now:
            self._now = ts


class LiveClock:
    """Wall-clock time; the only place the wall clock is read."""

    __slots__ = ()

    def now(self) -> int:
        return time.time_ns()

    def advance(self, ts: int) -> None:  # noqa: ARG002 - same interface as ReplayClock
        return None
