"""Builds higher-timeframe bars (5m, 1h, H4, D1, ...) from base bars.

Windows are aligned to the UTC epoch, except that weekly windows start on
Monday 00:00 UTC (the epoch fell on a Thursday).  A bar is published only once its window
is closed: when the base bar that ends the window arrives, or when a later base
bar (or ``flush``) proves the window is over.  Missing base bars are simply
absent from the window; no price is invented.  An empty window yields no bar.
"""

from __future__ import annotations

from collections.abc import Callable

from trader.core.events import Bar
from trader.core.timeframes import NS, window_offset


class _Window:
    __slots__ = ("start", "end", "open", "high", "low", "close", "volume")

    def __init__(self, start: int, end: int, bar: Bar) -> None:
        self.start = start
        self.end = end
        self.open = bar.open
        self.high = bar.high
        self.low = bar.low
        self.close = bar.close
        self.volume = bar.volume


class BarAggregator:
    """Aggregates base bars of each instrument into the timeframes asked for."""

    def __init__(self, publish: Callable[[Bar], None]) -> None:
        self._publish = publish
        # instrument -> list of [timeframe_seconds, window or None]
        self._targets: dict[str, list[list]] = {}
        self._base: dict[str, int] = {}

    def add(self, instrument_id: str, base_timeframe: int, timeframe: int) -> None:
        """Request ``timeframe`` bars of an instrument whose feed has ``base_timeframe`` bars."""
        if timeframe % base_timeframe:
            raise ValueError(
                f"{instrument_id}: timeframe {timeframe}s is not a multiple of the "
                f"base timeframe {base_timeframe}s"
            )
        known = self._base.setdefault(instrument_id, base_timeframe)
        if known != base_timeframe:
            raise ValueError(
                f"{instrument_id}: conflicting base timeframes {known}s and {base_timeframe}s"
            )
        if timeframe == base_timeframe:
            return
        targets = self._targets.setdefault(instrument_id, [])
        if all(t[0] != timeframe for t in targets):
            # the windows of trader.core.timeframes.window_start, inlined in on_bar (hot path)
            targets.append([timeframe, None, window_offset(timeframe)])
            targets.sort(key=lambda t: t[0])

    @property
    def active(self) -> bool:
        """Whether any higher timeframe was asked for (else it need not see bars)."""
        return bool(self._targets)

    def on_bar(self, bar: Bar) -> None:
        targets = self._targets.get(bar.instrument_id)
        if targets is None or bar.timeframe != self._base[bar.instrument_id]:
            return
        for target in targets:
            tf_ns = target[0] * NS
            win = target[1]
            # A base bar belongs to the window containing its open time.
            start = bar.ts_open - (bar.ts_open - target[2]) % tf_ns
            if win is not None and start != win.start:
                self._emit(bar.instrument_id, target[0], win)
                win = None
            if win is None:
                win = _Window(start, start + tf_ns, bar)
            else:
                if bar.high > win.high:
                    win.high = bar.high
                if bar.low < win.low:
                    win.low = bar.low
                win.close = bar.close
                win.volume += bar.volume
            if bar.ts >= win.end:
                self._emit(bar.instrument_id, target[0], win)
                win = None
            target[1] = win

    def flush(self, now: int) -> None:
        """Publish every window whose end is at or before ``now`` (a live timer calls this)."""
        for inst, targets in self._targets.items():
            for target in targets:
                win = target[1]
                if win is not None and win.end <= now:
                    self._emit(inst, target[0], win)
                    target[1] = None

    def _emit(self, instrument_id: str, timeframe: int, w: _Window) -> None:
        self._publish(
            Bar(w.end, instrument_id, timeframe, w.start, w.open, w.high, w.low, w.close, w.volume)
        )
