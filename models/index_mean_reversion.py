"""Short-term mean reversion for index ETFs: buy deep RSI(2) dips inside the band."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from models.base import Model, Params
from models.indicators import RSI, RollingStd
from trader.core.events import Bar


class IndexMeanReversionParams(Params):
    """Windows in bars of the model's timeframe; thresholds in RSI points."""

    rsi_period: int = Field(2, gt=0)
    entry_below: float = Field(10.0, gt=0, lt=100, description="enter when RSI is below this")
    exit_above: float = Field(90.0, gt=0, lt=100, description="exit when RSI is above this")
    band_period: int = Field(20, gt=1, description="Bollinger band window")
    band_std: float = Field(2.0, gt=0, description="band width in standard deviations")
    weight: float = Field(1.0, gt=0, le=1)

    @model_validator(mode="after")
    def _thresholds(self) -> IndexMeanReversionParams:
        if self.entry_below >= self.exit_above:
            raise ValueError(
                f"entry_below ({self.entry_below}) must be below exit_above ({self.exit_above})"
            )
        return self


class _State:
    __slots__ = ("rsi", "band", "long")

    def __init__(self, p: IndexMeanReversionParams) -> None:
        self.rsi = RSI(p.rsi_period)
        self.band = RollingStd(p.band_period)
        self.long = False


class IndexMeanReversion(Model):
    """Long when RSI(``rsi_period``) < ``entry_below`` while the close is still inside
    the Bollinger band (not below its lower edge: a break of the band is a crash,
    not a dip); flat when RSI > ``exit_above``."""

    Params = IndexMeanReversionParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = {inst: _State(self.params) for inst in self.instruments}

    def warmup_bars(self) -> int:
        return max(self.params.band_period, self.params.rsi_period + 1)

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        st = self._state[bar.instrument_id]
        p = self.params
        close = bar.close
        rsi = st.rsi.update(close)
        band = st.band.update(close)
        if rsi is None:
            return None
        if st.long:
            if rsi > p.exit_above:
                st.long = False
                return {bar.instrument_id: 0.0}
            return None
        if band is None or rsi >= p.entry_below:
            return None
        mean, std = band
        if close >= mean - p.band_std * std:
            st.long = True
            return {bar.instrument_id: p.weight}
        return None
