"""Turning a stream of candle updates into closed bars, each exactly once.

ccxt hands over candles as ``[open_ms, open, high, low, close, volume]`` and
drops the venue's "closed" flag, so a candle counts as closed when the venue
says so (Binance ``k.x``, recovered by ``gateways.ccxt.streams.harden`` and
applied through ``close_current``), when the next one opens, or when REST
returns it with its end already past on the venue's clock.  The
``CandleCloser`` is pure state (no I/O): the gateway feeds it from the
websocket and from REST backfills, and it guarantees monotonic open times,
which is what makes "no duplicate, no gap" testable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from trader.core.events import Bar

Candle = Sequence[float]  # [open_ms, o, h, l, c, v]

_MS = 1_000_000


def candle_to_bar(candle: Candle, instrument_id: str, timeframe_s: int) -> Bar:
    """A closed ccxt candle as a kernel ``Bar`` (``ts`` = close time, ns)."""
    t_open = int(candle[0]) * _MS
    return Bar(
        t_open + timeframe_s * 1_000_000_000,
        instrument_id,
        timeframe_s,
        t_open,
        float(candle[1]),
        float(candle[2]),
        float(candle[3]),
        float(candle[4]),
        float(candle[5] or 0.0),
    )


@dataclass(slots=True)
class CloseResult:
    """What one update produced: bars to emit and, if seen, a hole to backfill."""

    closed: list[Candle]
    gap_from_ms: int | None = None
    gap_to_ms: int | None = None


class CandleCloser:
    """Per-(symbol, timeframe) state: the forming candle and the last emitted open time."""

    __slots__ = ("tf_ms", "last_emitted_ms", "current")

    def __init__(self, timeframe_s: int, last_emitted_ms: int | None = None) -> None:
        self.tf_ms = timeframe_s * 1000
        self.last_emitted_ms = last_emitted_ms
        self.current: list[float] | None = None

    def _take(self, candle: Candle) -> bool:
        t = int(candle[0])
        if self.last_emitted_ms is not None and t <= self.last_emitted_ms:
            return False
        self.last_emitted_ms = t
        return True

    def on_update(self, candle: Candle) -> CloseResult:
        """A live (possibly still forming) candle from the websocket."""
        t = int(candle[0])
        if self.last_emitted_ms is not None and t <= self.last_emitted_ms:
            return CloseResult([])  # a late update of a bar already emitted
        cur = self.current
        if cur is None:
            self.current = list(candle)
            if self.last_emitted_ms is not None and t > self.last_emitted_ms + self.tf_ms:
                return CloseResult([], self.last_emitted_ms + self.tf_ms, t)
            return CloseResult([])
        t_cur = int(cur[0])
        if t == t_cur:
            self.current = list(candle)
            return CloseResult([])
        if t < t_cur:
            return CloseResult([])
        self.current = list(candle)
        closed = [cur] if self._take(cur) else []
        if t > t_cur + self.tf_ms:
            return CloseResult(closed, t_cur + self.tf_ms, t)
        return CloseResult(closed)

    def on_rest(self, candles: Sequence[Candle], now_ms: int) -> list[Candle]:
        """Candles from REST (ascending): emit those whose end is past, keep the forming one.

        A candle is also over once the venue shows a later one (in this answer, or the
        forming candle of the stream): a lagging estimate of the venue's clock must not
        keep a gap's candles forming for ever (the next close would skip them).
        """
        out: list[Candle] = []
        later = max([int(c[0]) for c in candles]
                    + ([int(self.current[0])] if self.current is not None else []), default=None)
        for c in candles:
            t = int(c[0])
            if t + self.tf_ms <= now_ms or (later is not None and t < later):
                if self._take(c):
                    out.append(c)
                if self.current is not None and int(self.current[0]) <= t:
                    self.current = None
            elif self.current is None or int(self.current[0]) <= t:
                if self.last_emitted_ms is None or t > self.last_emitted_ms:
                    self.current = list(c)
        return out

    def close_current(self) -> list[Candle]:
        """The venue said the forming candle is final: emit it now (once), forget it."""
        cur = self.current
        if cur is None:
            return []
        self.current = None
        return [cur] if self._take(cur) else []

    def next_open_ms(self) -> int | None:
        """Open time of the first bar not yet emitted (where a backfill starts)."""
        return None if self.last_emitted_ms is None else self.last_emitted_ms + self.tf_ms

    def current_end_ms(self) -> int | None:
        return None if self.current is None else int(self.current[0]) + self.tf_ms
