"""Regime classifiers: small declared components that read closed bars and name a state.

A classifier is configured like a model (``regimes:`` in the YAML: a name, a
``kind``, instruments, a timeframe and ``params``) and found like one: a
shipped class below, a ``trader.regimes`` entry point, ``module:Class`` or a
class of the config's ``strategies`` folder (``models.loading``).

``on_bar`` sees each subscribed bar once, when it closed, and answers with the
regime's state after that bar, or ``None`` while it has too little history.  It
keeps only what its window needs, so a state at bar *t* depends on bars up to
*t* and nothing later (the poisoned-future tests hold this).  The engine
(``trader.engine.regime``) publishes ``RegimeChanged`` when the state differs
from the last one and turns states into budget multipliers.

Shipped classifiers (a crypto regime is one of them on BTC):

* ``TrendRegime``: ``up`` / ``down`` as the close is above / at-or-below its
  ``window``-bar simple average; with ``drawdown`` set, ``drawdown`` while the
  close is at least that fraction below its highest close so far.
* ``VolatilityRegime``: ``low`` / ``normal`` / ``high`` from realised volatility
  (annualised stdev of log returns over ``window`` bars) or from the close
  itself (``source: level``, an implied-vol index such as VIX), compared either
  as a percentile of the last ``lookback`` values or as the value.
* ``SpreadRegime``: ``inverted`` / ``normal`` / ``steep`` from the difference of
  two series' closes at the same bar time (a 10y minus 2y yield: macro).
"""

from __future__ import annotations

import bisect
import math
from collections import deque
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from models.base import Params
from models.indicators import RollingMean
from models.loading import PluginKind, load_model_class
from trader.core.events import Bar
from trader.core.timeframes import parse_timeframe

YEAR_S = 365.25 * 86_400


class RegimeClassifier:
    """Base of regime classifiers: closed bars in, a state name (or None) out.

    ``states`` declares every state the classifier can name (a config's
    ``regime_budgets`` is checked against it); ``n_instruments`` how many
    instruments it reads (None: any number).
    """

    Params: ClassVar[type[Params]] = Params
    n_instruments: ClassVar[int | None] = 1

    def __init__(self, name: str, instruments: list[str], timeframe: str | int,
                 params: Mapping[str, Any] | None = None) -> None:
        self.name = name
        self.instruments = list(instruments)
        self.timeframe = parse_timeframe(timeframe)
        self.params = self.Params(**(params or {}))
        n = self.n_instruments
        if n is not None and len(self.instruments) != n:
            raise ValueError(f"{type(self).__name__} reads {n} instrument(s), "
                             f"got {len(self.instruments)}: {self.instruments}")

    def states(self) -> tuple[str, ...]:
        """Every state this classifier can name."""
        raise NotImplementedError

    def subscriptions(self) -> list[tuple[str, int]]:
        """The (instrument, timeframe) bars the classifier reads."""
        return [(inst, self.timeframe) for inst in self.instruments]

    def on_bar(self, bar: Bar) -> str | None:
        """The state after this closed bar; None while the history is too short."""
        raise NotImplementedError


class TrendParams(Params):
    window: int = Field(200, ge=2, description="bars of the simple moving average")
    drawdown: float | None = Field(None, gt=0, lt=1,
                                   description="fall from the highest close that is 'drawdown'")


class TrendRegime(RegimeClassifier):
    """``up``/``down``: close above/at-or-below its ``window``-bar average; ``drawdown``
    (if set) while the close is that fraction or more below its highest close so far."""

    Params = TrendParams

    def __init__(self, name: str, instruments: list[str], timeframe: str | int,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, instruments, timeframe, params)
        self._sma = RollingMean(self.params.window)
        self._peak = -math.inf

    def states(self) -> tuple[str, ...]:
        return ("up", "down", "drawdown") if self.params.drawdown else ("up", "down")

    def on_bar(self, bar: Bar) -> str | None:
        close = bar.close
        self._peak = max(self._peak, close)
        avg = self._sma.update(close)
        if avg is None:
            return None
        dd = self.params.drawdown
        if dd is not None and close <= self._peak * (1 - dd):
            return "drawdown"
        return "up" if close > avg else "down"


class VolatilityParams(Params):
    source: Literal["realised", "level"] = Field(
        "realised", description="realised vol of the closes, or the close itself (e.g. VIX)")
    classify_by: Literal["percentile", "value"] = "percentile"
    window: int = Field(20, ge=2, description="bars of returns in the realised volatility")
    lookback: int = Field(252, ge=2, description="values the percentile is taken over")
    low: float = Field(0.2, description="below: 'low'")
    high: float = Field(0.8, description="at or above: 'high'")

    @model_validator(mode="after")
    def _order(self) -> VolatilityParams:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.classify_by == "percentile" and not (0 <= self.low and self.high <= 1):
            raise ValueError("with classify_by: percentile, low and high are fractions "
                             f"in [0, 1] (got low={self.low}, high={self.high})")
        return self


class VolatilityRegime(RegimeClassifier):
    """``low``/``normal``/``high`` volatility: realised (annualised by the bar length, 365.25
    days a year) or a level series, by percentile of its recent values or by value."""

    Params = VolatilityParams

    def __init__(self, name: str, instruments: list[str], timeframe: str | int,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, instruments, timeframe, params)
        p = self.params
        self._returns: deque[float] = deque(maxlen=p.window)
        self._prev: float | None = None
        self._annualise = math.sqrt(YEAR_S / self.timeframe)
        self._history: deque[float] = deque(maxlen=p.lookback)
        self._sorted: list[float] = []  # the same values as _history, sorted

    def states(self) -> tuple[str, ...]:
        return ("low", "normal", "high")

    def _measure(self, close: float) -> float | None:
        if self.params.source == "level":
            return close
        prev, self._prev = self._prev, close
        if prev is None or prev <= 0 or close <= 0:
            return None
        rets = self._returns
        rets.append(math.log(close / prev))
        if len(rets) < rets.maxlen:  # type: ignore[operator]
            return None
        mean = math.fsum(rets) / len(rets)
        var = math.fsum((r - mean) ** 2 for r in rets) / (len(rets) - 1)
        return math.sqrt(var) * self._annualise

    def on_bar(self, bar: Bar) -> str | None:
        value = self._measure(bar.close)
        if value is None:
            return None
        p = self.params
        if p.classify_by == "percentile":
            hist, srt = self._history, self._sorted
            if len(hist) == hist.maxlen:
                del srt[bisect.bisect_left(srt, hist[0])]
            hist.append(value)
            bisect.insort(srt, value)
            if len(hist) < p.lookback:
                return None
            value = bisect.bisect_right(srt, value) / len(srt)  # share of values <= it
        if value >= p.high:
            return "high"
        return "low" if value < p.low else "normal"


class SpreadParams(Params):
    low: float = Field(0.0, description="spread below this: 'inverted'")
    high: float | None = Field(None, description="spread at or above this: 'steep'")

    @model_validator(mode="after")
    def _order(self) -> SpreadParams:
        if self.high is not None and self.high <= self.low:
            raise ValueError(f"high ({self.high}) must be above low ({self.low})")
        return self


class SpreadRegime(RegimeClassifier):
    """``inverted``/``normal``/``steep``: the first instrument's close minus the second's,
    taken when both have a bar closing at the same time (e.g. 10y - 2y yields)."""

    Params = SpreadParams
    n_instruments = 2

    def __init__(self, name: str, instruments: list[str], timeframe: str | int,
                 params: Mapping[str, Any] | None = None) -> None:
        super().__init__(name, instruments, timeframe, params)
        self._last: dict[str, tuple[int, float]] = {}

    def states(self) -> tuple[str, ...]:
        return ("inverted", "normal", "steep") if self.params.high is not None \
            else ("inverted", "normal")

    def on_bar(self, bar: Bar) -> str | None:
        self._last[bar.instrument_id] = (bar.ts, bar.close)
        a, b = (self._last.get(i) for i in self.instruments)
        if a is None or b is None or a[0] != b[0]:
            return None  # the two series have not both closed this bar yet
        spread = a[1] - b[1]
        p = self.params
        if spread < p.low:
            return "inverted"
        return "steep" if p.high is not None and spread >= p.high else "normal"


REGIME_CLASSES: dict[str, type[RegimeClassifier]] = {
    "TrendRegime": TrendRegime,
    "VolatilityRegime": VolatilityRegime,
    "SpreadRegime": SpreadRegime,
}
REGIME_KIND = PluginKind(RegimeClassifier, "trader.regimes", "regime")


def regime_class(name: str, strategies: Path | None = None) -> type[RegimeClassifier]:
    """The classifier class a config's ``regimes[].kind`` names: shipped, a ``trader.regimes``
    entry point, ``module:Class`` or a strategies-folder class; ``KeyError`` says what was tried."""
    return load_model_class(name, REGIME_CLASSES, strategies, kind=REGIME_KIND)
