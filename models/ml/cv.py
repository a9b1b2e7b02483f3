"""Purged cross-validation: walk-forward and k-fold, with an embargo.

Each sample lives over ``[start, end]`` (bar indices: the decision bar and the
bar its label was decided on).  A training sample whose life overlaps the test
fold's span would let the test outcome leak into training, so it is purged;
with k-fold, samples starting within ``embargo`` bars after the test span are
dropped too (their features overlap the test labels' information).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from models.base import Params


class CVConfig(Params):
    """How samples are split: ``walk_forward`` (train on the past only) or ``kfold``."""

    scheme: Literal["walk_forward", "kfold"] = "walk_forward"
    folds: int = Field(4, ge=2)
    embargo: int = Field(0, ge=0, description="bars after a test fold dropped from training")
    calibration_fraction: float = Field(0.2, ge=0, lt=1, description=(
        "share of each training set (its latest samples) held out to fit the calibration"))


@dataclass(frozen=True)
class Fold:
    """Sample positions (into the arrays the split was made from) of one fold."""

    index: int
    train: np.ndarray
    test: np.ndarray


def overlaps(start: np.ndarray, end: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Samples whose life ``[start, end]`` meets the span ``[lo, hi]``."""
    return (start <= hi) & (end >= lo)


def purge(candidates: np.ndarray, start: np.ndarray, end: np.ndarray, test: np.ndarray,
          embargo: int = 0) -> np.ndarray:
    """``candidates`` without those overlapping the span of ``test`` or in its embargo."""
    if len(test) == 0:
        return candidates
    lo, hi = int(start[test].min()), int(end[test].max())
    s, e = start[candidates], end[candidates]
    drop = overlaps(s, e, lo, hi) | ((s > hi) & (s <= hi + embargo))
    return candidates[~drop]


def _blocks(n: int, parts: int) -> list[np.ndarray]:
    return [b for b in np.array_split(np.arange(n), parts) if len(b)]


def walk_forward(start: np.ndarray, end: np.ndarray, folds: int,
                 embargo: int = 0) -> list[Fold]:
    """Expanding window: the samples are cut into ``folds + 1`` blocks in time order; fold
    ``k`` tests block ``k + 1`` and trains on every earlier sample that the purge keeps."""
    blocks = _blocks(len(start), folds + 1)
    out = []
    for k, test in enumerate(blocks[1:]):
        past = np.arange(test[0])
        out.append(Fold(k, purge(past, start, end, test, embargo), test))
    return out


def purged_kfold(start: np.ndarray, end: np.ndarray, folds: int, embargo: int = 0) -> list[Fold]:
    """K contiguous test blocks; each trains on all other samples, purged and embargoed."""
    everything = np.arange(len(start))
    out = []
    for k, test in enumerate(_blocks(len(start), folds)):
        rest = np.setdiff1d(everything, test, assume_unique=True)
        out.append(Fold(k, purge(rest, start, end, test, embargo), test))
    return out


def split(cfg: CVConfig, start: np.ndarray, end: np.ndarray) -> list[Fold]:
    """The folds of ``cfg.scheme``; samples must be in time order."""
    if cfg.scheme == "kfold":
        return purged_kfold(start, end, cfg.folds, cfg.embargo)
    return walk_forward(start, end, cfg.folds, cfg.embargo)


def holdout_tail(train: np.ndarray, start: np.ndarray, end: np.ndarray,
                 fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """Split a training set into (fit, calibration): the latest ``fraction`` of samples
    calibrate, and fit samples overlapping them are purged."""
    n_cal = int(len(train) * fraction)
    if n_cal == 0:
        return train, train[:0]
    cal = train[-n_cal:]
    return purge(train[:-n_cal], start, end, cal), cal
