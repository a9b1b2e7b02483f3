"""Execution gates: conditions an entry must meet before a model's weight is traded.

Configured per model (``models[].gates``); exits (a weight of 0) are never held
back, and a gate that is not set passes.  On each closed bar of the model's
timeframe, for the bar's instrument, the model's latest wish (its last weight
for it) is released to the allocator when every set gate passes:

* ``warmup_bars``: at least this many bars seen;
* ``persistence``: the wish has stood for this many consecutive bars (1 = at once);
* ``vol_floor``: the standard deviation of the last ``vol_window`` close-to-close
  log returns is at least this (per bar, as a fraction);
* ``cost_bps`` (expected value): the model's ``score`` for the instrument, read as
  its expected move (a fraction), exceeds this many bps in absolute value;
* ``quantile``: the score is at or above this quantile of its last
  ``quantile_window`` values (a short: at or below ``1 - quantile``).

The two score gates need a model that implements ``Model.score``.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from models.base import Model
from models.intents import Intent
from trader.core.events import Bar


class GateConfig(BaseModel):
    """``models[].gates``; the default passes everything."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    warmup_bars: int = Field(0, ge=0)
    persistence: int = Field(1, ge=1)
    vol_floor: float | None = Field(None, gt=0)
    vol_window: int = Field(20, ge=2)
    cost_bps: float | None = Field(None, ge=0)
    quantile: float | None = Field(None, gt=0, lt=1)
    quantile_window: int = Field(100, ge=2)

    @property
    def is_default(self) -> bool:
        return self == GateConfig()

    @property
    def needs_score(self) -> bool:
        return self.cost_bps is not None or self.quantile is not None


def realized_vol(closes: deque[float]) -> float | None:
    """Standard deviation of the close-to-close log returns (None below two returns)."""
    xs = list(closes)
    rets = [math.log(b / a) for a, b in zip(xs, xs[1:], strict=False) if a > 0 and b > 0]
    if len(rets) < 2:
        return None
    mean = sum(rets) / len(rets)
    return math.sqrt(sum((r - mean) ** 2 for r in rets) / len(rets))


def quantile_rank(history: deque[float], value: float) -> float:
    """Share of ``history`` at or below ``value`` (0..1)."""
    return sum(1 for h in history if h <= value) / len(history)


class _State:
    __slots__ = ("bars", "closes", "scores", "wish", "held", "released")

    def __init__(self, cfg: GateConfig) -> None:
        self.bars = 0
        self.closes: deque[float] = deque(maxlen=cfg.vol_window + 1)
        self.scores: deque[float] = deque(maxlen=cfg.quantile_window)
        self.wish: Any = None  # the model's last weight (or Intent) for the instrument
        self.held = 0
        self.released = 0.0  # what the allocator has: flat until a wish is released


def _weight(w: Any) -> float:
    return w.weight if isinstance(w, Intent) else float(w)


class Gates:
    """The gates of one model; ``on_bar`` turns what the model said into what is traded."""

    def __init__(self, cfg: GateConfig, model: Model) -> None:
        if cfg.needs_score and type(model).score is Model.score:
            raise ValueError(f"model {model.name!r}: gates cost_bps/quantile need a model "
                             f"with a score; {type(model).__name__} has none")
        self.cfg = cfg
        self.model = model
        self._state: dict[str, _State] = {}

    def on_bar(self, bar: Bar, said: dict[str, Any] | None) -> dict[str, Any] | None:
        """Record the model's answer on ``bar``; the weights released now, if any."""
        inst = bar.instrument_id
        st = self._state.get(inst)
        if st is None:
            st = self._state[inst] = _State(self.cfg)
        st.bars += 1
        st.closes.append(bar.close)
        score = self.model.score(inst) if self.cfg.needs_score else None
        out: dict[str, Any] = {}
        if said:
            for i, w in said.items():
                if i != inst:
                    out[i] = w  # another instrument's weight: gated on its own bars only
                elif st.wish is None or _weight(w) != _weight(st.wish):
                    st.wish, st.held = w, 0
        st.held += 1
        if st.wish is not None and _weight(st.wish) != st.released:
            w = _weight(st.wish)
            if w == 0 or self._passes(st, score, w):
                out[inst] = st.wish
                st.released = w
        if score is not None:
            st.scores.append(score)  # after the check: the window is the past
        return out or None

    def _passes(self, st: _State, score: float | None, weight: float) -> bool:
        c = self.cfg
        if st.bars < c.warmup_bars or st.held < c.persistence:
            return False
        if c.vol_floor is not None:
            vol = realized_vol(st.closes)
            if vol is None or vol < c.vol_floor:
                return False
        if c.cost_bps is not None and (score is None or abs(score) * 10_000 <= c.cost_bps):
            return False
        if c.quantile is not None:
            if score is None or len(st.scores) < 2:
                return False
            rank = quantile_rank(st.scores, score)
            return rank >= c.quantile if weight > 0 else rank <= 1 - c.quantile
        return True
