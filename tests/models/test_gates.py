"""Execution gates on crafted bars: persistence, warm-up, volatility floor, expected value
against costs, and the quantile filter; exits are never held back."""

from __future__ import annotations

import pytest

from models.base import Model
from models.gates import GateConfig, Gates, quantile_rank, realized_vol
from trader.core.events import Bar

DAY_NS = 86_400 * 1_000_000_000


class Scored(Model):
    """A model whose score the test sets; it never trades by itself."""

    def __init__(self, *a, **k) -> None:
        super().__init__(*a, **k)
        self.value: float | None = None

    def score(self, instrument_id: str) -> float | None:
        return self.value

    def on_bar(self, bar: Bar) -> None:
        return None


def bar(i: int, c: float) -> Bar:
    return Bar((i + 1) * DAY_NS, "X", 86_400, i * DAY_NS, c, c, c, c, 1.0)


def feed(gates: Gates, said: dict[int, float], closes: list[float],
         scores: list[float | None] | None = None) -> list[tuple[int, float]]:
    out = []
    for i, c in enumerate(closes):
        if scores is not None:
            gates.model.value = scores[i]
        got = gates.on_bar(bar(i, c), {"X": said[i]} if i in said else None)
        if got:
            out.append((i, got["X"]))
    return out


def test_persistence_and_warmup_hold_an_entry_but_never_an_exit() -> None:
    g = Gates(GateConfig(persistence=3, warmup_bars=2), Scored("m", ["X"], "1d"))
    # Long said at bar 0: stands on bars 0, 1, 2 -> released at 2. Flat at 5: at once.
    assert feed(g, {0: 1.0, 5: 0.0}, [100.0] * 8) == [(2, 1.0), (5, 0.0)]
    g = Gates(GateConfig(persistence=3), Scored("m", ["X"], "1d"))
    # A wish that flips back before it persisted never trades.
    assert feed(g, {0: 1.0, 1: 0.0}, [100.0] * 6) == []


def test_volatility_floor() -> None:
    assert realized_vol(__import__("collections").deque([100.0, 100.0])) is None
    calm = [100.0 + 0.01 * (i % 2) for i in range(30)]
    wild = [100.0 * (1.05 if i % 2 else 0.95) for i in range(30)]
    cfg = GateConfig(vol_floor=0.01, vol_window=10)
    assert feed(Gates(cfg, Scored("m", ["X"], "1d")), {15: 1.0}, calm) == []
    assert feed(Gates(cfg, Scored("m", ["X"], "1d")), {15: 1.0}, wild) == [(15, 1.0)]


def test_expected_value_must_beat_the_costs() -> None:
    cfg = GateConfig(cost_bps=20)
    scores = [0.001] * 3 + [0.0025] + [0.0025] * 2
    g = Gates(cfg, Scored("m", ["X"], "1d"))
    # 10 bps expected on bars 0-2 do not pay 20 bps of costs; 25 bps on bar 3 do.
    assert feed(g, {0: 1.0}, [100.0] * 6, scores) == [(3, 1.0)]


def test_quantile_filter_over_a_rolling_window() -> None:
    assert quantile_rank(__import__("collections").deque([1.0, 2.0, 3.0, 4.0]), 3.0) == 0.75
    cfg = GateConfig(quantile=0.8, quantile_window=5)
    scores = [0.1, 0.2, 0.3, 0.4, 0.5, 0.25, 0.6]
    g = Gates(cfg, Scored("m", ["X"], "1d"))
    # Long wished from bar 5: 0.25 ranks 2/5 among the last five; 0.6 tops them.
    assert feed(g, {5: 1.0}, [100.0] * 7, scores) == [(6, 1.0)]
    short = Gates(cfg, Scored("m", ["X"], "1d"))
    low = [0.5, 0.4, 0.3, 0.2, 0.1, 0.05, 0.3]
    assert feed(short, {5: -1.0}, [100.0] * 7, low) == [(5, -1.0)]


def test_score_gates_need_a_model_with_a_score() -> None:
    class NoScore(Model):
        def on_bar(self, bar: Bar) -> None:
            return None

    with pytest.raises(ValueError, match="'n': gates cost_bps/quantile need a model"):
        Gates(GateConfig(cost_bps=5), NoScore("n", ["X"], "1d"))
