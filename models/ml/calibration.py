"""Probability calibration: isotonic regression (pool adjacent violators) or Platt scaling.

Both are fitted on predictions the booster made out of sample, and both are
plain numbers in the artifact (``to_dict``/``from_dict``), applied the same way
to one bar live and to a whole fold in training.  They are small enough to
write here, which keeps scikit-learn (and its compiled stack) out of the
service's dependencies.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

Method = Literal["none", "isotonic", "platt"]


@dataclass(frozen=True)
class Calibrator:
    """A fitted map from raw probability to calibrated probability."""

    method: Method
    x: tuple[float, ...] = ()   # isotonic: block edges (ascending raw scores)
    y: tuple[float, ...] = ()   # isotonic: calibrated value at each edge
    a: float = 1.0              # platt: p = sigmoid(a * logit(raw) + b)
    b: float = 0.0

    def apply(self, p: np.ndarray) -> np.ndarray:
        p = np.asarray(p, dtype=np.float64)
        if self.method == "isotonic":
            return np.interp(p, self.x, self.y)
        if self.method == "platt":
            return _sigmoid(self.a * _logit(p) + self.b)
        return p

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "x": list(self.x), "y": list(self.y),
                "a": self.a, "b": self.b}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Calibrator:
        return cls(d["method"], tuple(d.get("x", ())), tuple(d.get("y", ())),
                   float(d.get("a", 1.0)), float(d.get("b", 0.0)))


IDENTITY = Calibrator("none")


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(q / (1 - q))


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


def fit_isotonic(p: np.ndarray, y: np.ndarray, w: np.ndarray | None = None) -> Calibrator:
    """Non-decreasing step fit of ``y`` on ``p`` (weighted pool adjacent violators)."""
    order = np.argsort(p, kind="stable")
    ps, ys = np.asarray(p, float)[order], np.asarray(y, float)[order]
    ws = np.ones(len(ps)) if w is None else np.asarray(w, float)[order]
    # Blocks: [weighted mean, weight, lowest p, highest p]; merge while they decrease.
    blocks: list[list[float]] = []
    for pi, yi, wi in zip(ps, ys, ws, strict=True):
        blocks.append([yi, wi, pi, pi])
        while len(blocks) > 1 and blocks[-2][0] >= blocks[-1][0]:
            m2, w2, _, hi2 = blocks.pop()
            m1, w1, lo1, _ = blocks[-1]
            wt = w1 + w2
            blocks[-1] = [(m1 * w1 + m2 * w2) / wt if wt > 0 else m1, wt, lo1, hi2]
    xs: list[float] = []
    vs: list[float] = []
    for mean, _, lo, hi in blocks:
        xs += [lo, hi] if hi > lo else [lo]
        vs += [mean, mean] if hi > lo else [mean]
    return Calibrator("isotonic", tuple(xs), tuple(vs))


def fit_platt(p: np.ndarray, y: np.ndarray, w: np.ndarray | None = None,
              iterations: int = 50) -> Calibrator:
    """Logistic regression of ``y`` on logit(``p``) by Newton's method."""
    z = _logit(np.asarray(p, float))
    yv = np.asarray(y, float)
    wv = np.ones(len(z)) if w is None else np.asarray(w, float)
    a, b = 1.0, 0.0
    for _ in range(iterations):
        q = _sigmoid(a * z + b)
        r = wv * (q - yv)
        h = wv * q * (1 - q) + 1e-12
        g = np.array([np.sum(r * z), np.sum(r)])
        hess = np.array([[np.sum(h * z * z), np.sum(h * z)], [np.sum(h * z), np.sum(h)]])
        try:
            step = np.linalg.solve(hess + 1e-9 * np.eye(2), g)
        except np.linalg.LinAlgError:
            break
        a, b = a - step[0], b - step[1]
        if max(abs(step[0]), abs(step[1])) < 1e-10:
            break
    if not (math.isfinite(a) and math.isfinite(b)):
        return IDENTITY
    return Calibrator("platt", a=float(a), b=float(b))


def fit(method: Method, p: np.ndarray, y: np.ndarray,
        w: np.ndarray | None = None) -> Calibrator:
    """The calibrator ``method`` names; identity for ``none`` or too few samples."""
    if method == "none" or len(p) < 2 or len(np.unique(y)) < 2:
        return IDENTITY
    return fit_isotonic(p, y, w) if method == "isotonic" else fit_platt(p, y, w)
