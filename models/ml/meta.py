"""Meta-labelling: a primary rule model picks the side, the classifier decides whether to act.

The primary model (a rule model, e.g. ``SmaCross`` with ``allow_short``) is
fed the decision bars, in training over history and live bar by bar, through the same
``PrimarySide`` class; its side on a bar is the sign of the weight it holds after it.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pydantic import Field, field_validator

from models.base import Params
from models.rules import RULE_MODELS
from trader.core.events import Bar


class PrimaryConfig(Params):
    """The primary model of meta-labelling: a rule model's class name and its params."""

    model: str = Field(description="rule model class name, e.g. SmaCross")
    params: dict[str, Any] = Field(default_factory=dict)

    @field_validator("model")
    @classmethod
    def _known(cls, v: str) -> str:
        if v not in RULE_MODELS:
            raise ValueError(f"unknown rule model {v!r}; known: {sorted(RULE_MODELS)}")
        return v


class PrimarySide:
    """The side (+1, -1, 0) a primary model holds, updated on each decision bar."""

    def __init__(self, cfg: PrimaryConfig, instrument: str, timeframe: int) -> None:
        self.model = RULE_MODELS[cfg.model]("primary", [instrument], timeframe, cfg.params)
        self.instrument = instrument
        self.side = 0

    def on_bar(self, bar: Bar) -> int:
        weights = self.model.on_bar(bar)
        if weights and self.instrument in weights:
            w = weights[self.instrument]
            self.side = (w > 0) - (w < 0)
        return self.side


def primary_sides(cfg: PrimaryConfig, instrument: str, timeframe: int,
                  decision_bars: list[Bar]) -> np.ndarray:
    """The primary model's side after each decision bar, as a training array."""
    primary = PrimarySide(cfg, instrument, timeframe)
    return np.array([primary.on_bar(b) for b in decision_bars], dtype=np.int8)
