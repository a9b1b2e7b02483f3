"""One way to turn feature rows into calibrated probabilities, for training and trading alike."""

from __future__ import annotations

import numpy as np

from models.ml.calibration import Calibrator


class Predictor:
    """A booster (UBJSON bytes) and its calibrator; ``predict`` takes a 2-D array of rows.

    Training scores whole folds and the model scores one row per bar through
    this same call, so both see the same float32 conversion and tree walk.
    """

    def __init__(self, model: bytes, calibrator: Calibrator, nthread: int = 1) -> None:
        import xgboost as xgb

        self.booster = xgb.Booster(params={"nthread": nthread}, model_file=bytearray(model))
        self.calibrator = calibrator

    def predict(self, X: np.ndarray) -> np.ndarray:
        raw = self.booster.inplace_predict(np.asarray(X, dtype=np.float64).reshape(len(X), -1))
        return self.calibrator.apply(np.asarray(raw, dtype=np.float64))
