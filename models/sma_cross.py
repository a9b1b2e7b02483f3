"""Moving-average crossover: long while the fast SMA is above the slow one."""

from __future__ import annotations

from pydantic import Field, model_validator

from models.base import Model, Params
from models.indicators import RollingMean
from trader.events import Bar


class SmaCrossParams(Params):
    fast: int = Field(10, gt=0)
    slow: int = Field(30, gt=0)
    allow_short: bool = False

    @model_validator(mode="after")
    def _order(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class SmaCross(Model):
    """Goes long (or short, if allowed) when the fast SMA crosses the slow one."""

    Params = SmaCrossParams

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        p = self.params
        self._state: dict[str, tuple[RollingMean, RollingMean, list]] = {
            inst: (RollingMean(p.fast), RollingMean(p.slow), [None]) for inst in self.instruments
        }

    def warmup_bars(self) -> int:
        return self.params.slow

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        fast, slow, last = self._state[bar.instrument_id]
        f = fast.update(bar.close)
        s = slow.update(bar.close)
        if s is None:
            return None
        above = f > s
        if above == last[0]:
            return None
        first = last[0] is None
        last[0] = above
        if first and not above:
            return None  # no position to leave before the first cross
        if above:
            w = 1.0
        else:
            w = -1.0 if self.params.allow_short else 0.0
        return {bar.instrument_id: w}
