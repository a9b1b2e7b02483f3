"""The model rules as checks: given timeframes only, no wall clock or I/O, no future."""

from __future__ import annotations

import time

import pytest

from models.base import Model
from models.checks import ModelRuleBroken, lookahead_problem, run_guarded, subscription_problems
from models.sma_cross import SmaCross
from trader.core.events import Bar
from trader.engine.build import build_engine
from trader.engine.config import AppConfig, ConfigError

NS = 1_000_000_000
HOUR = 3600


def bars(n: int, tf: int = HOUR) -> list[Bar]:
    out = []
    for i in range(n):
        c = 100.0 + (i * 7 % 23) - (i % 5)
        out.append(Bar((i + 1) * tf * NS, "X", tf, i * tf * NS, c, c + 1, c - 1, c, 10.0))
    return out


class WantsDaily(Model):
    def subscriptions(self) -> list[tuple[str, int]]:
        return [("X", self.timeframe), ("X", 86_400)]

    def on_bar(self, bar: Bar) -> None:
        return None


class ReadsClock(Model):
    def on_bar(self, bar: Bar) -> dict[str, float]:
        return {bar.instrument_id: 1.0 if time.time() > 0 else 0.0}


class WritesFile(Model):
    def on_bar(self, bar: Bar) -> None:
        with open("/tmp/should-not-exist", "w"):
            pass


class LeaksState(Model):
    """Returns its own state dict and keeps changing it: answers change after the fact."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.view: dict[str, float] = {}

    def on_bar(self, bar: Bar) -> dict[str, float]:
        self.view[bar.instrument_id] = bar.close
        return self.view


def test_a_timeframe_not_given_is_named_with_the_model() -> None:
    m = WantsDaily("greedy", ["X"], "1h")
    (problem,) = subscription_problems(m, [HOUR])
    assert "'greedy'" in problem and "timeframe 1d" in problem and "extra_timeframes" in problem
    assert subscription_problems(m, [HOUR, 86_400]) == []


def config(extra: list[str]) -> AppConfig:
    return AppConfig.model_validate({
        "instruments": [{"id": "X", "symbol": "X", "venue": "V", "asset_class": "equity",
                         "data": {"path": "x.csv", "timeframe": "1h"}}],
        "models": [{"name": "greedy", "model": "SmaCross", "budget": 0.5, "instruments": ["X"],
                    "timeframe": "1h", "extra_timeframes": extra}],
    })


def test_the_kernel_refuses_a_model_asking_for_more_than_it_was_given() -> None:
    with pytest.raises(ConfigError, match="'greedy' asks for timeframe 1d of 'X'"):
        build_engine(config([]), models=[WantsDaily("greedy", ["X"], "1h")])
    engine = build_engine(config(["1d"]), models=[WantsDaily("greedy", ["X"], "1h")])
    assert ("X", 86_400) in engine.pipeline.subscriptions()


def test_wall_clock_and_files_are_refused_inside_on_bar() -> None:
    with pytest.raises(ModelRuleBroken, match=r"'clock' called time.time\(\)"):
        run_guarded(ReadsClock("clock", ["X"], "1h"), bars(3))
    with pytest.raises(ModelRuleBroken, match=r"'io' called open\(\)"):
        run_guarded(WritesFile("io", ["X"], "1h"), bars(3))
    assert time.time() > 0  # restored afterwards


def test_lookahead_check_passes_an_honest_model_and_catches_a_leaky_one() -> None:
    path = bars(300)
    cut = path[200].ts_open

    def honest() -> Model:
        return SmaCross("sma", ["X"], "1h", {"fast": 3, "slow": 8})

    assert run_guarded(honest(), path)  # it does speak, so the comparison means something
    assert lookahead_problem(honest, path, cut) is None
    problem = lookahead_problem(lambda: LeaksState("leaky", ["X"], "1h"), path, cut)
    assert problem is not None and "'leaky' reads the future" in problem
