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
    """Time of a live session.

    ``now()`` is the time of the latest event the kernel dispatched (or the wall
    clock before the first one): decisions are stamped with the time of the
    event that caused them, exactly as in replay, so a session's journal
    replays to identical orders.  ``wall()`` is the only place the wall clock is
    read; the daemon uses it for timeouts, staleness and the watchdog.
    """

    __slots__ = ("_now",)

    def __init__(self) -> None:
        self._now = 0

    def now(self) -> int:
        return self._now or time.time_ns()

    def advance(self, ts: int) -> None:
        # Like ReplayClock: event time never runs backwards, even if a late event arrives.
        if ts > self._now:
            self._now = ts

    @staticmethod
    def wall() -> int:
        return time.time_ns()
