"""Purged walk-forward and k-fold: no training label overlaps a test fold."""

from __future__ import annotations

import numpy as np

from models.ml.cv import CVConfig, holdout_tail, purge, purged_kfold, split, walk_forward


def _lives(n: int = 300, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    start = np.arange(n)
    return start, start + rng.integers(0, 15, n)


def test_purging_removes_exactly_the_samples_overlapping_the_test_span() -> None:
    start, end = _lives()
    test = np.arange(120, 160)
    candidates = np.setdiff1d(np.arange(len(start)), test)
    kept = purge(candidates, start, end, test)
    lo, hi = start[test].min(), end[test].max()
    overlapping = {int(i) for i in candidates if start[i] <= hi and end[i] >= lo}
    assert overlapping  # labels reaching into the test span exist...
    assert set(kept.tolist()) == set(candidates.tolist()) - overlapping  # ...and only they go


def test_the_embargo_drops_the_samples_just_after_the_test_span() -> None:
    start, end = _lives()
    test = np.arange(120, 160)
    candidates = np.setdiff1d(np.arange(len(start)), test)
    plain, embargoed = purge(candidates, start, end, test), purge(candidates, start, end, test, 5)
    hi = end[test].max()
    assert set(plain.tolist()) - set(embargoed.tolist()) == {
        int(i) for i in plain if hi < start[i] <= hi + 5}


def test_walk_forward_trains_on_the_past_only_and_never_on_a_label_reaching_the_test() -> None:
    start, end = _lives()
    folds = walk_forward(start, end, 4)
    assert len(folds) == 4
    tested = np.concatenate([f.test for f in folds])
    assert np.array_equal(tested, np.arange(tested[0], len(start)))  # contiguous, to the end
    for f in folds:
        assert len(f.train) > 0
        assert end[f.train].max() < start[f.test].min()


def test_purged_kfold_tests_every_sample_once_and_purges_both_sides() -> None:
    start, end = _lives()
    folds = purged_kfold(start, end, 5, embargo=3)
    assert np.array_equal(np.sort(np.concatenate([f.test for f in folds])), np.arange(len(start)))
    for f in folds:
        lo, hi = start[f.test].min(), end[f.test].max()
        tr = f.train
        assert not np.any((start[tr] <= hi) & (end[tr] >= lo))
        assert not np.any((start[tr] > hi) & (start[tr] <= hi + 3))
    assert split(CVConfig(scheme="kfold", folds=5, embargo=3), start, end)[2].train.tolist() \
        == folds[2].train.tolist()


def test_the_calibration_tail_is_later_than_the_fit_and_purged_from_it() -> None:
    start, end = _lives()
    fit, cal = holdout_tail(np.arange(200), start, end, 0.25)
    assert cal.tolist() == list(range(150, 200))
    assert end[fit].max() < start[cal].min()
