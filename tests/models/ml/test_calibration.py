"""Isotonic and Platt calibration."""

from __future__ import annotations

import numpy as np

from models.ml.calibration import Calibrator, fit, fit_isotonic, fit_platt


def test_isotonic_pools_adjacent_violators() -> None:
    p = np.array([0.1, 0.2, 0.3, 0.4, 0.5, 0.6])
    y = np.array([0, 1, 0, 0, 1, 1])
    cal = fit_isotonic(p, y)
    # (0.2, 0.3, 0.4) violate the order and pool to 1/3.
    assert np.allclose(cal.apply(p), [0.0, 1 / 3, 1 / 3, 1 / 3, 1.0, 1.0])
    grid = np.linspace(0, 1, 101)
    assert np.all(np.diff(cal.apply(grid)) >= 0)


def test_platt_recovers_a_known_logistic_map() -> None:
    rng = np.random.default_rng(2)
    raw = rng.uniform(0.02, 0.98, 20_000)
    z = np.log(raw / (1 - raw))
    truth = 1 / (1 + np.exp(-(0.5 * z - 0.3)))
    y = (rng.uniform(size=raw.size) < truth).astype(int)
    cal = fit_platt(raw, y)
    assert abs(cal.a - 0.5) < 0.05 and abs(cal.b + 0.3) < 0.05


def test_calibrators_survive_the_artifact_round_trip_and_degenerate_input() -> None:
    p = np.array([0.2, 0.4, 0.6, 0.8])
    for method in ("isotonic", "platt"):
        cal = fit(method, p, np.array([0, 1, 0, 1]))
        assert cal.method == method
        back = Calibrator.from_dict(cal.to_dict())
        assert np.array_equal(back.apply(p), cal.apply(p))
    assert fit("platt", p, np.ones(4)).method == "none"  # one class: nothing to fit
