"""Training: labels on a feature frame, purged folds, one XGBoost fit per fold, calibration.

Everything here is a function of its inputs: the bars come in as a
``FeatureFrame`` (built by the caller from the same kernel bars the model
sees live), nothing reads files, and the booster runs with a fixed seed and
thread count, so the same frame and config give the same model bytes.  The
caller writes the artifact and runs the replay backtest of the out-of-sample
signals (``trader models train``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from pydantic import Field

from models.base import Params
from models.ml.calibration import IDENTITY, Calibrator, Method
from models.ml.calibration import fit as fit_calibration
from models.ml.cv import CVConfig, Fold, holdout_tail, split
from models.ml.features import FeatureFrame
from models.ml.labels import LabelConfig, Labels, triple_barrier, uniqueness_weights
from models.ml.predict import Predictor


class XGBoostConfig(Params):
    """Booster parameters; ``seed`` and ``nthread`` fixed so that two runs give the same bytes."""

    n_estimators: int = Field(200, gt=0)
    max_depth: int = Field(3, gt=0)
    learning_rate: float = Field(0.05, gt=0)
    subsample: float = Field(0.8, gt=0, le=1)
    colsample_bytree: float = Field(0.8, gt=0, le=1)
    min_child_weight: float = Field(5.0, ge=0)
    reg_lambda: float = Field(1.0, ge=0)
    seed: int = 7
    nthread: int = Field(1, gt=0)

    def booster_params(self) -> dict[str, Any]:
        return {"objective": "binary:logistic", "eval_metric": "logloss", "tree_method": "hist",
                "max_depth": self.max_depth, "eta": self.learning_rate,
                "subsample": self.subsample, "colsample_bytree": self.colsample_bytree,
                "min_child_weight": self.min_child_weight, "lambda": self.reg_lambda,
                "seed": self.seed, "nthread": self.nthread, "verbosity": 0}


class TrainConfig(Params):
    """A training run (``trader models train FILE``): which model, labels, folds, booster."""

    config: str = Field(description="the replay/deployment config whose model is trained")
    model: str = Field(description="the model's name in that config (model: XGBoost)")
    out: str = Field(description="artifact directory to write")
    start: str | None = Field(None, description="train on bars from this date (ISO; default: "
                              "the first bar; the config's data.start is its backtest's)")
    end: str | None = Field(None, description="... and before this one (keep later bars for "
                            "an out-of-sample backtest)")
    labels: LabelConfig = LabelConfig()
    cv: CVConfig = CVConfig()
    calibration: Method = "isotonic"
    weights: Literal["uniqueness", "none"] = "uniqueness"
    xgboost: XGBoostConfig = XGBoostConfig()


@dataclass
class Samples:
    """The labelled decision bars: positions into the frame, label lives, targets, weights."""

    rows: np.ndarray      # frame row of each sample
    start: np.ndarray     # = rows
    end: np.ndarray       # frame row where its label was decided
    y: np.ndarray
    ret: np.ndarray
    weight: np.ndarray
    side: np.ndarray      # the labelled trade's side (+1/-1)


@dataclass
class Fit:
    """One booster and the calibration fitted on its held-out tail."""

    model: bytes          # UBJSON
    calibrator: Calibrator
    fit_n: int
    calibration_n: int


@dataclass
class FoldResult:
    """A fold: its fit, its test samples' calibrated probabilities and its metrics."""

    fold: Fold
    fit: Fit
    prob: np.ndarray
    metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class TrainResult:
    labels: Labels
    samples: Samples
    folds: list[FoldResult]
    final: Fit


def barrier_width(frame: FeatureFrame, labels: LabelConfig) -> np.ndarray:
    """The barrier unit as a fraction of the close, per decision bar (ATR or volatility)."""
    return frame.column("atr" if labels.barrier == "atr" else "vol")


def make_samples(frame: FeatureFrame, cfg: TrainConfig,
                 sides: np.ndarray | None = None) -> tuple[Labels, Samples]:
    """Label every bar and keep those with complete features and a decided label.

    ``sides``: the primary model's side per decision bar (meta-labelling); bars where it
    is flat get no label.
    """
    width = barrier_width(frame, cfg.labels) * frame.close
    labels = triple_barrier(frame.close, frame.high, frame.low, width, cfg.labels, sides)
    rows = np.flatnonzero(frame.ready & labels.valid)
    end = labels.end[rows]
    if cfg.weights == "uniqueness":
        weight = uniqueness_weights(rows, end, len(frame.ts))
    else:
        weight = np.ones(len(rows))
    side = (np.full(len(rows), 1 if cfg.labels.side == "long" else -1, dtype=np.int8)
            if sides is None else np.asarray(sides, dtype=np.int8)[rows])
    return labels, Samples(rows, rows, end, labels.y[rows], labels.ret[rows], weight, side)


def fit_calibrated(frame: FeatureFrame, s: Samples, positions: np.ndarray,
                   cfg: TrainConfig) -> Fit:
    """Fit a booster on ``positions`` minus a purged tail, calibrate it on that tail."""
    import xgboost as xgb

    fit_pos, cal_pos = holdout_tail(positions, s.start, s.end, cfg.cv.calibration_fraction)
    X = frame.X[s.rows]
    dtrain = xgb.DMatrix(X[fit_pos], label=s.y[fit_pos], weight=s.weight[fit_pos],
                         feature_names=list(frame.names), nthread=cfg.xgboost.nthread)
    booster = xgb.train(cfg.xgboost.booster_params(), dtrain,
                        num_boost_round=cfg.xgboost.n_estimators)
    model = bytes(booster.save_raw("ubj"))
    cal = IDENTITY
    if len(cal_pos):
        raw = Predictor(model, IDENTITY, cfg.xgboost.nthread).predict(X[cal_pos])
        cal = fit_calibration(cfg.calibration, raw, s.y[cal_pos], s.weight[cal_pos])
    return Fit(model, cal, len(fit_pos), len(cal_pos))


def train(frame: FeatureFrame, cfg: TrainConfig,
          progress: Callable[[str], None] | None = None,
          sides: np.ndarray | None = None) -> TrainResult:
    """Purged folds (each scored on its test block), then the final fit on every sample;
    ``sides``: the primary model's side per decision bar when ``labels.primary`` is set."""
    if (cfg.labels.primary is None) != (sides is None):
        raise ValueError("sides are given exactly when labels.primary is configured")
    labels, s = make_samples(frame, cfg, sides)
    if len(s.rows) < 10 * (cfg.cv.folds + 1):
        raise ValueError(f"only {len(s.rows)} labelled samples with complete features; "
                         "more history (or shorter feature windows / horizon) is needed")
    if len(np.unique(s.y)) < 2:
        raise ValueError("every label has the same class; widen or narrow the barriers")
    X = frame.X[s.rows]
    results = []
    for fold in split(cfg.cv, s.start, s.end):
        fit = fit_calibrated(frame, s, fold.train, cfg)
        prob = Predictor(fit.model, fit.calibrator, cfg.xgboost.nthread).predict(X[fold.test])
        metrics = score(s.y[fold.test], prob, s.ret[fold.test])
        metrics.update(train_samples=float(len(fold.train)), test_samples=float(len(fold.test)))
        results.append(FoldResult(fold, fit, prob, metrics))
        if progress is not None:
            progress(f"fold {fold.index}")
    final = fit_calibrated(frame, s, np.arange(len(s.rows)), cfg)
    if progress is not None:
        progress("final")
    return TrainResult(labels, s, results, final)


# -- scores -------------------------------------------------------------------------
def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks from 1, ties averaged."""
    order = np.argsort(x, kind="stable")
    xs = x[order]
    ranks = np.empty(len(x))
    i = 0
    while i < len(xs):
        j = i
        while j + 1 < len(xs) and xs[j + 1] == xs[i]:
            j += 1
        ranks[order[i:j + 1]] = (i + j) / 2.0 + 1.0
        i = j + 1
    return ranks


def auc(y: np.ndarray, p: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half); NaN with one class."""
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    r = _ranks(np.asarray(p, float))
    return float((r[pos].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def log_loss(y: np.ndarray, p: np.ndarray) -> float:
    q = np.clip(np.asarray(p, float), 1e-15, 1 - 1e-15)
    return float(-np.mean(y * np.log(q) + (1 - y) * np.log(1 - q)))


def information_coefficient(p: np.ndarray, ret: np.ndarray) -> float:
    """Spearman rank correlation of predicted probability and realised trade return."""
    rp, rr = _ranks(np.asarray(p, float)), _ranks(np.asarray(ret, float))
    if rp.std() == 0 or rr.std() == 0:
        return float("nan")
    return float(np.corrcoef(rp, rr)[0, 1])


def score(y: np.ndarray, p: np.ndarray, ret: np.ndarray) -> dict[str, float]:
    """AUC, log loss, hit rate (share of samples the 0.5 cut classifies right) and IC."""
    return {"auc": auc(y, p), "log_loss": log_loss(y, p),
            "hit_rate": float(np.mean((p >= 0.5) == (y == 1))) if len(y) else float("nan"),
            "ic": information_coefficient(p, ret)}
