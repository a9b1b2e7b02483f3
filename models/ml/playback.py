"""A model that replays precomputed target weights: the out-of-sample signals of training.

Training turns each fold's out-of-sample probabilities into weights with the
inference model's rule; this model hands them to the replay kernel at the
decision bars they were computed for, so the fold backtest pays the same
costs, fills at the same next-bar prices and passes the same risk engine as
the live model would.  Outside the signals' bars it holds no position.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from models.base import Model
from trader.core.events import Bar


class SignalPlayback(Model):
    """Emits ``signals[ts]`` (else 0.0) on each decision bar of its one instrument."""

    def __init__(self, name: str, instrument: str, timeframe: int,
                 signals: Mapping[int, float], **kwargs: Any) -> None:
        super().__init__(name, [instrument], timeframe, **kwargs)
        self.signals = dict(signals)
        self._weight = 0.0

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        w = self.signals.get(bar.ts, 0.0)
        if w == self._weight:
            return None
        self._weight = w
        return {bar.instrument_id: w}
