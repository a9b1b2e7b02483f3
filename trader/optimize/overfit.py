"""Overfitting guards over a study's trials: the deflated Sharpe ratio and PBO (CSCV).

Both are small pure functions of per-period returns, after Bailey and López de
Prado: "The Deflated Sharpe Ratio" (2014) and "The Probability of Backtest
Overfitting" (2015). Sharpe ratios here are per period (daily samples), not
annualised, as the formulas expect.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

EULER_GAMMA = 0.5772156649015329
_N = NormalDist()


def sharpe(returns: Sequence[float]) -> float:
    """Per-period Sharpe ratio (mean over sample standard deviation); 0 when flat."""
    r = np.asarray(returns, dtype=float)
    if r.size < 2:
        return 0.0
    sd = r.std(ddof=1)
    return float(r.mean() / sd) if sd > 0 else 0.0


def expected_max_sharpe(sharpes: Sequence[float]) -> float:
    """The Sharpe ratio the best of N unskilled trials reaches by luck alone (SR0).

    N is the number of trials and the spread is the variance of their Sharpe
    ratios: the more (and the more different) trials, the higher the bar.
    """
    n = len(sharpes)
    if n < 2:
        return 0.0
    sd = float(np.std(np.asarray(sharpes, dtype=float), ddof=1))
    return sd * ((1 - EULER_GAMMA) * _N.inv_cdf(1 - 1 / n)
                 + EULER_GAMMA * _N.inv_cdf(1 - 1 / (n * math.e)))


def probabilistic_sharpe(returns: Sequence[float], benchmark: float) -> float:
    """P(true Sharpe > ``benchmark``) given the sample's length, skewness and kurtosis."""
    r = np.asarray(returns, dtype=float)
    t = r.size
    if t < 3:
        return 0.0
    sr = sharpe(r)
    sd = r.std()
    if sd == 0:
        return 0.0
    z = (r - r.mean()) / sd
    skew = float((z ** 3).mean())
    kurt = float((z ** 4).mean())
    denom = 1 - skew * sr + (kurt - 1) / 4 * sr * sr
    if denom <= 0:
        return 0.0
    return _N.cdf((sr - benchmark) * math.sqrt(t - 1) / math.sqrt(denom))


def deflated_sharpe(best_returns: Sequence[float], all_sharpes: Sequence[float]) -> float:
    """The deflated Sharpe ratio of the chosen trial: the probability that its Sharpe
    beats what the best of that many trials would show without any skill."""
    return probabilistic_sharpe(best_returns, expected_max_sharpe(all_sharpes))


def pbo(matrix: Sequence[Sequence[float]], blocks: int = 10) -> float:
    """Probability of backtest overfitting by combinatorially symmetric cross-validation.

    ``matrix`` is T periods x N trials of returns. The rows are cut into ``blocks``
    (even) groups; for every way to pick half of them as in-sample, the trial with the
    best in-sample Sharpe is ranked out-of-sample. PBO is the share of splits where
    that trial lands in the bottom half out-of-sample (logit of its rank <= 0).
    """
    m = np.asarray(matrix, dtype=float)
    if m.ndim != 2 or m.shape[1] < 2:
        raise ValueError("PBO needs returns of at least two trials")
    if blocks % 2 or blocks < 2:
        raise ValueError("blocks must be even and >= 2")
    if m.shape[0] < blocks:
        raise ValueError(f"PBO needs at least {blocks} periods (got {m.shape[0]})")
    parts = np.array_split(np.arange(m.shape[0]), blocks)
    n = m.shape[1]
    below = total = 0
    for chosen in itertools.combinations(range(blocks), blocks // 2):
        ins = np.concatenate([parts[i] for i in chosen])
        oos = np.concatenate([parts[i] for i in range(blocks) if i not in chosen])
        best = int(np.argmax(_sharpes(m[ins])))
        oos_sr = _sharpes(m[oos])
        # Relative rank in (0, 1): 1 + number of trials the chosen one beats, over N + 1.
        rank = (1 + np.sum(oos_sr < oos_sr[best])) / (n + 1)
        below += math.log(rank / (1 - rank)) <= 0
        total += 1
    return below / total


def _sharpes(m: np.ndarray) -> np.ndarray:
    sd = m.std(axis=0, ddof=1)
    mean = m.mean(axis=0)
    return np.divide(mean, sd, out=np.zeros_like(mean), where=sd > 0)
