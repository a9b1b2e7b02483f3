"""A model that answers each bar with what a test's script says: for tests that need a
model's exact decisions without a strategy behind them."""

from __future__ import annotations

from collections.abc import Callable

from models.base import Model
from trader.core.events import Bar


class Scripted(Model):
    """Answers each bar with whatever ``script(bar, n)`` returns (n counts its bars)."""

    def __init__(self, name: str, instruments: list[str], timeframe: str | int,
                 script: Callable[[Bar, int], dict[str, float] | None]) -> None:
        super().__init__(name, instruments, timeframe)
        self._script = script
        self.n = 0

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        out = self._script(bar, self.n)
        self.n += 1
        return out
