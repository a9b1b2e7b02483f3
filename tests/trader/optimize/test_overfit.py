"""Deflated Sharpe and PBO as pure functions, on series whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from trader.optimize import overfit


def test_expected_max_sharpe_grows_with_the_number_of_trials() -> None:
    rng = np.random.default_rng(1)
    few = rng.normal(0, 0.05, 10)
    many = np.concatenate([few, rng.normal(0, 0.05, 990)])
    assert 0 < overfit.expected_max_sharpe(few) < overfit.expected_max_sharpe(many)
    assert overfit.expected_max_sharpe([0.1]) == 0.0


def test_deflated_sharpe_falls_as_more_trials_were_tried() -> None:
    rng = np.random.default_rng(2)
    best = rng.normal(0.001, 0.01, 1000)  # a per-period Sharpe near 0.1
    sharpes = list(rng.normal(0, 0.03, 5))
    one = overfit.deflated_sharpe(best, sharpes)
    more = overfit.deflated_sharpe(best, sharpes + list(rng.normal(0, 0.03, 500)))
    assert 0 <= more < one <= 1


def test_probabilistic_sharpe_of_a_strong_series_is_near_one_and_of_a_flat_one_zero() -> None:
    rng = np.random.default_rng(3)
    assert overfit.probabilistic_sharpe(rng.normal(0.01, 0.01, 500), 0.0) > 0.999
    assert overfit.probabilistic_sharpe([0.0] * 50, 0.0) == 0.0


def test_pbo_is_zero_when_one_trial_wins_in_every_period() -> None:
    rng = np.random.default_rng(4)
    noise = rng.normal(0, 0.01, (400, 8))
    noise[:, 3] += 0.02  # trial 3 beats every other trial in every block
    assert overfit.pbo(noise, blocks=8) == 0.0


def test_pbo_of_pure_noise_is_near_one_half() -> None:
    rng = np.random.default_rng(5)
    assert 0.25 < overfit.pbo(rng.normal(0, 0.01, (600, 20)), blocks=10) < 0.75


def test_pbo_is_one_when_the_in_sample_winner_always_loses_out_of_sample() -> None:
    # Block means sum to zero, so whatever half wins in-sample loses the other half, and a
    # trial and its mirror image swap places every time.
    means = [0.013, 0.021, 0.034, 0.055, -0.017, -0.029, -0.031, -0.046]
    a = np.repeat(means, 50) + 1e-4 * np.sin(np.arange(400))
    assert overfit.pbo(np.column_stack([a, -a]), blocks=8) == 1.0


def test_pbo_refuses_what_it_cannot_compute() -> None:
    with pytest.raises(ValueError, match="two trials"):
        overfit.pbo([[0.1], [0.2]])
    with pytest.raises(ValueError, match="even"):
        overfit.pbo(np.zeros((50, 3)), blocks=5)
