"""Triple-barrier labels, meta-labels and uniqueness weights."""

from __future__ import annotations

import numpy as np

from models.ml.labels import (
    PROFIT,
    STOP,
    VERTICAL,
    LabelConfig,
    meta_labels,
    triple_barrier,
    uniqueness_weights,
)

CFG = LabelConfig(horizon=3, profit_take=2.0, stop_loss=1.0)


def _label(highs: list[float], lows: list[float], closes: list[float],
           cfg: LabelConfig = CFG, side: list[int] | None = None):
    c, h, lo = (np.array(x, dtype=float) for x in (closes, highs, lows))
    width = np.ones(len(c))  # barriers at +2 and -1 price units for a long
    return triple_barrier(c, h, lo, width, cfg, None if side is None else np.array(side))


def test_the_first_barrier_touched_decides() -> None:
    # bar 0 at 100: profit at 102, stop at 99; bar 2 touches 102 first.
    lab = _label([100, 101, 102.5, 100, 100], [100, 99.5, 101, 100, 100],
                 [100, 100.5, 102, 100, 100])
    assert lab.outcome[0] == PROFIT and lab.end[0] == 2
    assert lab.ret[0] == 2.0 / 100
    # bar 1 at 100.5: profit at 102.5 (touched at 2), stop at 99.5 (not)
    assert lab.outcome[1] == PROFIT and lab.end[1] == 2


def test_a_bar_touching_both_barriers_counts_as_the_stop() -> None:
    lab = _label([100, 103, 100, 100], [100, 98, 100, 100], [100, 100, 100, 100])
    assert lab.outcome[0] == STOP and lab.end[0] == 1 and lab.ret[0] == -1.0 / 100
    assert lab.y[0] == 0


def test_the_vertical_barrier_labels_by_the_return_at_the_horizon() -> None:
    lab = _label([100, 100.5, 100.5, 100.8, 101], [100, 99.5, 99.6, 99.7, 100],
                 [100, 100.2, 100.1, 100.6, 101])
    assert lab.outcome[0] == VERTICAL and lab.end[0] == 3
    assert np.isclose(lab.ret[0], 0.006) and lab.y[0] == 1
    # the last bars' windows run past the data without a touch: no label
    assert not lab.valid[-1] and not lab.valid[-2] and lab.end[-1] == -1


def test_a_short_side_swaps_the_barriers() -> None:
    short = LabelConfig(horizon=3, profit_take=2.0, stop_loss=1.0, side="short")
    # price falls 2: profit for a short; for a long it would be its stop (at -1).
    lab = _label([100, 100, 100], [100, 97.5, 97.5], [100, 98, 98], short)
    assert lab.outcome[0] == PROFIT and lab.ret[0] == 0.02
    long_ = _label([100, 100, 100], [100, 97.5, 97.5], [100, 98, 98])
    assert long_.outcome[0] == STOP


def test_meta_labels_follow_the_primary_side_per_bar() -> None:
    lab = _label([100, 100, 100, 100], [100, 97.5, 97.5, 97.5], [100, 98, 98, 98],
                 side=[-1, 1, 1, 1])
    assert lab.outcome[0] == PROFIT  # the primary model was short on bar 0 and right
    assert meta_labels(lab)[0] == 1


def test_poisoned_future_bars_change_no_label_decided_before_t() -> None:
    rng = np.random.default_rng(11)
    n, cut = 600, 400
    close = 100 * np.exp(np.cumsum(rng.normal(0, 0.01, n)))
    high, low = close * (1 + rng.uniform(0, 0.01, n)), close * (1 - rng.uniform(0, 0.01, n))
    width = close * 0.01
    cfg = LabelConfig(horizon=10, profit_take=1.0, stop_loss=1.0)
    clean = triple_barrier(close, high, low, width, cfg)
    f = np.where(np.arange(n) > cut, rng.uniform(0.8, 1.2, n), 1.0)
    dirty = triple_barrier(close * f, high * f, low * f, width, cfg)
    decided = clean.valid & (clean.end <= cut)
    assert decided.sum() > 300
    for name in ("outcome", "end", "ret"):
        assert np.array_equal(getattr(clean, name)[decided], getattr(dirty, name)[decided])
    assert not np.array_equal(clean.ret[cut - 10:], dirty.ret[cut - 10:], equal_nan=True)


def test_uniqueness_weights_average_one_over_concurrency() -> None:
    rng = np.random.default_rng(3)
    n = 60
    start = np.sort(rng.integers(0, 50, 40))
    end = start + rng.integers(0, 10, 40)
    w = uniqueness_weights(start, end, n)
    conc = np.zeros(n)
    for s, e in zip(start, end, strict=True):
        conc[s:e + 1] += 1
    expect = [np.mean(1.0 / conc[s:e + 1]) for s, e in zip(start, end, strict=True)]
    assert np.allclose(w, expect)
    assert uniqueness_weights(np.array([0, 5]), np.array([2, 7]), 10).tolist() == [1.0, 1.0]
