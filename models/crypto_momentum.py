"""Dual-horizon momentum for crypto, re-evaluated on a fixed bar schedule."""

from __future__ import annotations

from typing import Any

from pydantic import Field, model_validator

from models.base import Model, Params
from models.indicators import Momentum
from trader.core.events import Bar


class CryptoMomentumParams(Params):
    """Look-backs and the schedule in bars of the model's timeframe."""

    fast: int = Field(30, gt=0, description="short momentum look-back")
    slow: int = Field(60, gt=0, description="long momentum look-back")
    rebalance_every: int = Field(1, gt=0, description="decide only every N bars")
    long_weight: float = Field(1.0, gt=0, le=1, description="weight when both momenta are > 0")

    @model_validator(mode="after")
    def _order(self) -> CryptoMomentumParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self


class _State:
    __slots__ = ("fast", "slow", "bars", "weight")

    def __init__(self, p: CryptoMomentumParams) -> None:
        self.fast = Momentum(p.fast)
        self.slow = Momentum(p.slow)
        self.bars = 0
        self.weight = 0.0


class CryptoMomentum(Model):
    """Long ``long_weight`` while both the ``fast``- and ``slow``-bar momenta are positive,
    flat otherwise; the view is only revised every ``rebalance_every`` bars, which
    keeps turnover (and fees) down on a noisy market."""

    Params = CryptoMomentumParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._state = {inst: _State(self.params) for inst in self.instruments}

    def warmup_bars(self) -> int:
        return self.params.slow + 1

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        st = self._state[bar.instrument_id]
        p = self.params
        fast = st.fast.update(bar.close)
        slow = st.slow.update(bar.close)
        st.bars += 1
        # The schedule counts every bar seen, so decision times do not depend on prices.
        if st.bars % p.rebalance_every or fast is None or slow is None:
            return None
        weight = p.long_weight if fast > 0 and slow > 0 else 0.0
        if weight == st.weight:
            return None
        st.weight = weight
        return {bar.instrument_id: weight}
