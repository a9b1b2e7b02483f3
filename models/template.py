"""The files ``trader models new NAME`` writes: a documented model and its test."""

from __future__ import annotations

import re

_MODEL = '''"""{name}: a user model (written by ``trader models new``; edit freely).

Run it by naming it in a config whose ``strategies`` key is this folder:

    strategies: {folder}
    models:
      - {{name: mine, model: {name}, budget: 0.5, instruments: [SPY], timeframe: 1d}}

Rules (checked by ``test_{module}.py`` and by the kernel): ``on_bar`` sees closed
bars only, takes time from ``bar.ts`` (never the wall clock) and does no I/O;
the model subscribes only to its own instruments and timeframes.
"""

from __future__ import annotations

from collections import deque

from pydantic import Field

from models.base import Model, Params
from trader.core.events import Bar


class {name}Params(Params):
    """Parameters, validated from the config's ``params`` (unknown keys are refused)."""

    lookback: int = Field(20, gt=1, description="bars in the breakout window")
    weight: float = Field(1.0, gt=0, le=1, description="share of the budget when long")


class {name}(Model):
    """Long while the close is above the highest close of the previous ``lookback`` bars'
    window; flat once it falls below the lowest close of that window."""

    Params = {name}Params

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        # State lives on the instance, per instrument; it is rebuilt from bars on restart.
        self._closes = {{inst: deque(maxlen=self.params.lookback) for inst in self.instruments}}
        self._long = {{inst: False for inst in self.instruments}}

    def warmup_bars(self) -> int:
        return self.params.lookback

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        window = self._closes[bar.instrument_id]
        full = len(window) == window.maxlen
        high = max(window) if full else None
        low = min(window) if full else None
        window.append(bar.close)
        if high is None or low is None:
            return None  # still warming up
        was_long = self._long[bar.instrument_id]
        if not was_long and bar.close > high:
            self._long[bar.instrument_id] = True
            return {{bar.instrument_id: self.params.weight}}
        if was_long and bar.close < low:
            self._long[bar.instrument_id] = False
            return {{bar.instrument_id: 0.0}}
        return None  # no change of view
'''

_TEST = '''"""Tests of {name}: its rule on a hand-made path, and the rules every model keeps.

Run with ``python -m pytest {folder}/test_{module}.py``.
"""

from __future__ import annotations

from pathlib import Path

from models.checks import lookahead_problem, run_guarded
from models.registry import model_class
from trader.core.events import Bar

HERE = Path(__file__).resolve().parent
DAY_NS = 86_400 * 1_000_000_000


def bars(closes: list[float]) -> list[Bar]:
    return [Bar((i + 1) * DAY_NS, "X", 86_400, i * DAY_NS, c, c * 1.01, c * 0.99, c, 1e6)
            for i, c in enumerate(closes)]


def make(**params):
    # Loaded the way a config loads it: by name, from this strategies folder.
    return model_class("{module}:{name}", HERE)("mine", ["X"], "1d", params)


def test_enters_on_a_breakout_and_leaves_on_a_breakdown() -> None:
    closes = [100.0] * 5 + [106.0, 107.0] + [90.0]
    said = run_guarded(make(lookback=5), bars(closes))
    assert [(ts // DAY_NS - 1, w) for ts, w in said] == [(5, {{"X": 1.0}}), (7, {{"X": 0.0}})]


def test_reads_no_future_no_clock_no_files() -> None:
    path = bars([100.0 + (i % 17) - (i % 5) * 2 for i in range(200)])
    assert lookahead_problem(lambda: make(lookback=10), path, cut=path[120].ts_open) is None
'''


def module_name(name: str) -> str:
    """``MyTrend`` -> ``my_trend``: the file name of a model class."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def render(name: str, folder: str) -> dict[str, str]:
    """File name -> text of a new model ``name`` and its test, for ``folder``."""
    if not re.fullmatch(r"[A-Z][A-Za-z0-9]*", name):
        raise ValueError(f"model name {name!r}: expected a class name in CamelCase, "
                         "e.g. MyTrend")
    mod = module_name(name)
    fields = {"name": name, "module": mod, "folder": folder}
    return {f"{mod}.py": _MODEL.format(**fields), f"test_{mod}.py": _TEST.format(**fields)}
