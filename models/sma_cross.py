"""Moving-average crossover: long while the fast SMA is above the slow one."""

from __future__ import annotations

from collections import deque

from models.base import Model
from models.sma_cross_params import SmaCrossParams
from trader.core.events import Bar


class SmaCross(Model):
    """Goes long (or short, if allowed) when the fast SMA crosses the slow one."""

    Params = SmaCrossParams
    params: SmaCrossParams  # what ``Model.__init__`` builds from ``Params``

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # Per instrument: [window of closes, fast sum, slow sum, above?]. Both
        # sums are kept incrementally from one window: O(1) per bar.
        self._state: dict[str, list] = {
            inst: [deque(), 0.0, 0.0, None] for inst in self.instruments
        }
        # The (frozen) parameters as plain attributes: read on every bar.
        self._fast = self.params.fast
        self._slow = self.params.slow

    def warmup_bars(self) -> int:
        return self.params.slow

    def score(self, instrument_id: str) -> float | None:
        """Fast SMA over slow SMA minus one (None until the slow window is full)."""
        st = self._state[instrument_id]
        n = len(st[0])
        if n < self.params.slow:
            return None
        return (st[1] / self.params.fast) / (st[2] / self.params.slow) - 1

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        st = self._state[bar.instrument_id]
        buf = st[0]
        c = bar.close
        buf.append(c)
        fsum = st[1] + c
        ssum = st[2] + c
        fast = self._fast
        slow = self._slow
        n = len(buf)
        if n > fast:
            fsum -= buf[-fast - 1]
        if n > slow:
            ssum -= buf.popleft()
            n -= 1
        st[1] = fsum
        st[2] = ssum
        if n < slow:
            return None
        above = fsum / fast > ssum / slow
        last = st[3]
        if above == last:
            return None
        st[3] = above
        if last is None and (not above or self.params.enter_on_cross):
            return None  # no position to leave (or no cross yet) on the first view
        if above:
            w = 1.0
        else:
            w = -1.0 if self.params.allow_short else 0.0
        return {bar.instrument_id: w}
