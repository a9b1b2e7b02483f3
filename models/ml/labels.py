"""Triple-barrier labels, meta-labels and sample weights by label uniqueness.

A sample is a decision bar ``i``: a position taken at its close (``side`` +1
long, -1 short) meets a profit-take barrier ``profit_take x width`` away, a
stop ``stop_loss x width`` away, and a vertical barrier ``horizon`` bars later.
``width`` is a price distance known at ``i`` (ATR or volatility times the
close, from the features).  The first barrier the highs and lows of bars
``i+1 .. i+horizon`` touch decides; when one bar touches both, the stop is
assumed first (the conservative reading of a bar whose path is unknown).  A
sample whose window runs past the data and touches nothing has no label.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from models.base import Params
from models.ml.meta import PrimaryConfig

PROFIT, STOP, VERTICAL = 1, -1, 0


class LabelConfig(Params):
    """Barriers of the triple-barrier method; multiples of the ``barrier`` width."""

    horizon: int = Field(12, gt=0, description="vertical barrier, in decision bars")
    profit_take: float = Field(2.0, gt=0)
    stop_loss: float = Field(2.0, gt=0)
    barrier: Literal["atr", "vol"] = "atr"
    side: Literal["long", "short"] = "long"
    primary: PrimaryConfig | None = Field(None, description=(
        "meta-labelling: label the trades of this model's side instead of ``side``"))


@dataclass(frozen=True)
class Labels:
    """Per sample: which barrier came first, where the label ends, and the trade's return."""

    outcome: np.ndarray   # int8: PROFIT, STOP, VERTICAL; 0 also where ``valid`` is False
    end: np.ndarray       # int64 index of the bar that decided; -1 without a label
    ret: np.ndarray       # float64 return of the side's trade to that bar (NaN without)
    valid: np.ndarray     # bool

    @property
    def y(self) -> np.ndarray:
        """The binary target: the side's trade made money (profit barrier, or positive at N)."""
        return (self.ret > 0).astype(np.int8)


def triple_barrier(close: np.ndarray, high: np.ndarray, low: np.ndarray, width: np.ndarray,
                   cfg: LabelConfig, side: np.ndarray | None = None) -> Labels:
    """Label every bar; ``side`` (+1/-1 per bar) overrides ``cfg.side`` (meta-labelling)."""
    n = len(close)
    sides = (np.full(n, 1 if cfg.side == "long" else -1, dtype=np.int8) if side is None
             else np.asarray(side, dtype=np.int8))
    outcome = np.zeros(n, dtype=np.int8)
    end = np.full(n, -1, dtype=np.int64)
    ret = np.full(n, np.nan)
    for i in range(n):
        w, c, s = width[i], close[i], int(sides[i])
        if not np.isfinite(w) or w <= 0 or s == 0:
            continue
        last = min(i + cfg.horizon, n - 1)
        up = c + (cfg.profit_take if s > 0 else cfg.stop_loss) * w
        down = c - (cfg.stop_loss if s > 0 else cfg.profit_take) * w
        for j in range(i + 1, last + 1):
            hit_down, hit_up = low[j] <= down, high[j] >= up
            if not (hit_down or hit_up):
                continue
            stop_hit = hit_down if s > 0 else hit_up
            if stop_hit:  # also when both were touched in this bar
                outcome[i], ret[i] = STOP, -cfg.stop_loss * w / c
            else:
                outcome[i], ret[i] = PROFIT, cfg.profit_take * w / c
            end[i] = j
            break
        else:
            if i + cfg.horizon <= n - 1:
                outcome[i], end[i] = VERTICAL, last
                ret[i] = s * (close[last] / c - 1.0)
    return Labels(outcome, end, ret, end >= 0)


def meta_labels(labels: Labels) -> np.ndarray:
    """1 where the primary model's side made money: the target of a meta-model."""
    return labels.y


def uniqueness_weights(start: np.ndarray, end: np.ndarray, n_bars: int) -> np.ndarray:
    """Average uniqueness of each label over its life ``start..end`` (bar indices, inclusive).

    At each bar, ``c`` labels are alive; a label's weight is the mean of ``1/c``
    over the bars it spans, so overlapping labels, which carry the same
    information, count less.
    """
    start = np.asarray(start, dtype=np.int64)
    end = np.asarray(end, dtype=np.int64)
    alive = np.zeros(n_bars + 1, dtype=np.int64)
    np.add.at(alive, start, 1)
    np.add.at(alive, end + 1, -1)
    concurrency = np.cumsum(alive[:-1])
    inverse = np.where(concurrency > 0, 1.0 / np.maximum(concurrency, 1), 0.0)
    cum = np.concatenate(([0.0], np.cumsum(inverse)))
    return (cum[end + 1] - cum[start]) / (end - start + 1)
