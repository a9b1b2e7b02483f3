"""Trend following for equities: long above a long SMA with positive momentum."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from models.base import Model, Params
from models.indicators import Momentum, RollingMean
from trader.core.events import Bar


class EquityTrendParams(Params):
    """Windows in bars of the model's timeframe."""

    trend: int = Field(200, gt=1, description="SMA the close must be above to enter")
    momentum: int = Field(60, gt=0, description="look-back of the momentum that must be > 0")
    exit: int = Field(50, gt=1, description="SMA whose break exits the position")
    weight: float = Field(1.0, gt=0, le=1, description="weight of the budget while long")

    @model_validator(mode="after")
    def _exit_shorter(self) -> EquityTrendParams:
        if self.exit >= self.trend:
            raise ValueError(f"exit ({self.exit}) must be shorter than trend ({self.trend})")
        return self


class _State:
    __slots__ = ("trend", "exit", "momentum", "long")

    def __init__(self, p: EquityTrendParams) -> None:
        self.trend = RollingMean(p.trend)
        self.exit = RollingMean(p.exit)
        self.momentum = Momentum(p.momentum)
        self.long = False


class EquityTrend(Model):
    """Long when the close is above its ``trend`` SMA and ``momentum``-bar momentum is
    positive; flat again when the close falls below the ``exit`` SMA."""

    Params = EquityTrendParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = {inst: _State(self.params) for inst in self.instruments}

    def warmup_bars(self) -> int:
        return max(self.params.trend, self.params.momentum + 1)

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        st = self._state[bar.instrument_id]
        close = bar.close
        trend = st.trend.update(close)
        exit_ma = st.exit.update(close)
        mom = st.momentum.update(close)
        if st.long:
            # The exit SMA is shorter than the trend SMA, so it is ready here.
            if exit_ma is not None and close < exit_ma:
                st.long = False
                return {bar.instrument_id: 0.0}
            return None
        if trend is not None and mom is not None and close > trend and mom > 0:
            st.long = True
            return {bar.instrument_id: self.params.weight}
        return None
