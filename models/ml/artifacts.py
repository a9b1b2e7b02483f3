"""The artifact directory a training run writes and the inference model loads.

::

    artifact.json   feature set (name, params, hash, columns), instrument and timeframe,
                    data hash and range, labels, folds, booster params, calibrations,
                    per-fold metrics, the out-of-sample backtest
    model.ubj       the final booster (XGBoost's native UBJSON)
    fold_<k>.ubj    each fold's booster (its out-of-sample signals can be replayed)

Nothing in it depends on the wall clock: the same data and config write the
same bytes.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from models.ml.calibration import Calibrator
from models.ml.features import FeatureSetConfig

FORMAT = 1
META = "artifact.json"
FINAL = "model.ubj"


class ArtifactError(ValueError):
    """An artifact that cannot be used: missing, unreadable, or not what the config declares."""


@dataclass(frozen=True)
class Artifact:
    """An artifact's metadata and the booster (final or one fold's) with its calibrator."""

    path: Path
    meta: dict[str, Any]
    model: bytes
    calibrator: Calibrator


def data_hash(*arrays: np.ndarray) -> str:
    """sha256 of the arrays' bytes, in order: identifies the bars a model was trained on."""
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()


def fold_file(index: int) -> str:
    return f"fold_{index}.ubj"


def write_artifact(path: Path, meta: dict[str, Any], final: bytes,
                   folds: dict[int, bytes]) -> None:
    """Write the boosters and ``artifact.json`` (written last: its presence means complete)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / META).unlink(missing_ok=True)
    (path / FINAL).write_bytes(final)
    for k, model in folds.items():
        (path / fold_file(k)).write_bytes(model)
    text = json.dumps({"format": FORMAT, **meta}, indent=2, sort_keys=True, allow_nan=True)
    (path / META).write_text(text + "\n")


def read_meta(path: Path) -> dict[str, Any]:
    meta_file = path / META
    if not meta_file.is_file():
        raise ArtifactError(f"{path}: not a model artifact ({META} not found; train one with "
                            "`trader models train TRAIN.yaml`)")
    try:
        meta = json.loads(meta_file.read_text())
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{meta_file}: unreadable: {exc}") from None
    if meta.get("format") != FORMAT:
        raise ArtifactError(f"{meta_file}: artifact format {meta.get('format')!r}, this version "
                            f"reads format {FORMAT}; retrain the model")
    return meta


def check_features(meta: dict[str, Any], features: FeatureSetConfig, where: Path,
                   key: str) -> None:
    """Refuse an artifact trained on another feature set than ``key`` declares."""
    trained = meta["features"]["hash"]
    configured = features.hash()
    if trained != configured:
        raise ArtifactError(
            f"{where}: feature hash mismatch: the artifact was trained on feature set "
            f"{trained[:16]}, but {key} hashes to {configured[:16]} (artifact features: "
            f"{json.dumps(meta['features']['params'], sort_keys=True)}); set {key} to the "
            "artifact's features or retrain")


def load_artifact(path: Path, fold: int | None = None) -> Artifact:
    """The final booster, or fold ``fold``'s, with its calibrator."""
    meta = read_meta(path)
    if fold is None:
        file, cal = path / FINAL, meta["calibration"]
    else:
        folds = meta.get("folds", [])
        if not 0 <= fold < len(folds):
            raise ArtifactError(f"{path}: no fold {fold} (the artifact has {len(folds)})")
        file, cal = path / fold_file(fold), folds[fold]["calibration"]
    try:
        model = file.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{file}: cannot read the booster: {exc.strerror or exc}") from None
    return Artifact(path, meta, model, Calibrator.from_dict(cal))
