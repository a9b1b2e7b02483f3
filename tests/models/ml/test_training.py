"""Training: byte-identical models from identical inputs, and the fold scores."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from models.ml.training import auc, information_coefficient, score


def test_training_twice_gives_the_same_model_bytes(example: dict[str, Any],
                                                   tmp_path: Path) -> None:
    from trader.cli.train import train_model

    again = tmp_path / "again"
    train_model(example["train"], out=again, record=False)
    first = example["artifact"]
    names = sorted(p.name for p in first.iterdir())
    assert names == ["artifact.json", "fold_0.ubj", "fold_1.ubj", "fold_2.ubj", "model.ubj"]
    for name in names:
        assert (first / name).read_bytes() == (again / name).read_bytes(), name


def test_the_artifact_records_features_data_and_per_fold_metrics(example: dict[str, Any]) -> None:
    meta = example["meta"]
    assert len(meta["features"]["hash"]) == 64 and "slow_rsi" in meta["features"]["names"]
    assert meta["data"]["bars"] > 800 and len(meta["data"]["hash"]) == 64
    # the last bar opens before the training end; its close time is at most the end
    assert meta["data"]["end_ts"] <= np.datetime64("2018-06-01", "ns").astype(np.int64)
    assert [f["index"] for f in meta["folds"]] == [0, 1, 2]
    for f in meta["folds"]:
        assert set(f["metrics"]) >= {"auc", "log_loss", "hit_rate", "ic"}
        assert f["calibration"]["method"] == "platt"
        assert f["test_start_ts"] < f["test_end_ts"]
    starts = [f["test_start_ts"] for f in meta["folds"]]
    assert starts == sorted(starts)
    assert meta["oos_backtest"]["trades"] > 0


def test_scores_on_known_cases() -> None:
    y = np.array([0, 0, 1, 1])
    assert auc(y, np.array([0.1, 0.2, 0.8, 0.9])) == 1.0
    assert auc(y, np.array([0.9, 0.8, 0.2, 0.1])) == 0.0
    assert auc(y, np.full(4, 0.5)) == 0.5
    assert np.isclose(information_coefficient(np.array([1, 2, 3.0]), np.array([3, 5, 9.0])), 1)
    s = score(y, np.array([0.4, 0.6, 0.7, 0.3]), np.array([-1, -1, 1, 1.0]))
    assert s["hit_rate"] == 0.5
