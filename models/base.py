"""The ``Model`` base class every trading model derives from."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict

from trader.core.events import Bar
from trader.core.timeframes import parse_timeframe


class Params(BaseModel):
    """Base of model parameter sets; unknown keys are refused."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class Model:
    """A model reads closed bars and answers with target weights of its own budget.

    ``on_bar`` returns ``{instrument_id: weight}`` when the model changes its
    mind (1.0 = the whole budget long, -1.0 short, 0.0 flat) or ``None`` to
    leave its targets as they are.
    """

    Params: ClassVar[type[Params]] = Params

    def __init__(
        self,
        name: str,
        instruments: list[str],
        timeframe: str | int,
        params: Mapping[str, Any] | None = None,
    ) -> None:
        self.name = name
        self.instruments = list(instruments)
        self.timeframe = parse_timeframe(timeframe)
        self.params = self.Params(**(params or {}))

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(inst, self.timeframe) for inst in self.instruments]

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        raise NotImplementedError

    def score(self, instrument_id: str) -> float | None:
        """The model's latest signal for an instrument, read as its expected move (a
        fraction): what the expected-value and quantile gates test. None: no score."""
        return None

    def warmup_bars(self) -> int:
        """How many bars of history the model needs before it can decide."""
        return 0
