"""The XGBoost inference model: replays training's out-of-sample signals; refuses skew."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from trader.core.events import Bar
from trader.engine.config import ConfigError, load_config


def _replay_weights(config: Path, **params: Any) -> tuple[dict[int, float], dict[int, float]]:
    """Per decision bar of a replay: the model's weight and probability after the bar."""
    from trader.engine.build import build_models
    from trader.replay.backtest import run_backtest

    cfg = load_config(config)
    mc = cfg.models[0]
    cfg = cfg.model_copy(update={"models": [mc.model_copy(
        update={"params": {**mc.params, **params}})]})
    (model,) = build_models(cfg)
    weights: dict[int, float] = {}
    probs: dict[int, float] = {}
    inner = model.on_bar

    def tap(bar: Bar) -> dict[str, float] | None:
        out = inner(bar)
        if bar.timeframe == model.timeframe and "BTCUSD" in model.last_prob:
            weights[bar.ts] = model._weight["BTCUSD"]
            probs[bar.ts] = model.last_prob["BTCUSD"]
        return out

    model.on_bar = tap  # type: ignore[method-assign]
    run_backtest(cfg, models=[model])
    return weights, probs


@pytest.mark.parametrize("fold", [0, 2])
def test_the_model_in_replay_gives_the_training_pipelines_out_of_sample_signals(
        example: dict[str, Any], fold: int) -> None:
    expected = example["meta"]["oos_signals"][fold]
    expected_p = example["meta"]["oos_probabilities"][fold]
    weights, probs = _replay_weights(example["config"], fold=fold)
    assert len(expected) > 100
    assert {ts: probs[ts] for ts in expected_p} == expected_p
    assert {ts: weights[ts] for ts in expected} == expected
    assert len(set(expected.values())) > 1  # the signals do move: the comparison can fail


def test_a_feature_set_other_than_the_artifacts_is_refused_naming_both_hashes(
        example: dict[str, Any]) -> None:
    from trader.engine.build import build_models

    cfg = load_config(example["config"])
    mc = cfg.models[0]
    other = {"name": "technical", "params": {"slow_timeframe": "1d", "rsi": 9}}
    cfg = cfg.model_copy(update={"models": [mc.model_copy(
        update={"params": {**mc.params, "features": other}})]})
    with pytest.raises(ConfigError) as err:
        build_models(cfg)
    text = str(err.value)
    trained = example["meta"]["features"]["hash"][:16]
    assert "feature hash mismatch" in text and "params.features" in text
    assert trained in text and cfg.models[0].name in text
    from models.ml.features import FeatureSetConfig

    assert FeatureSetConfig.model_validate(other).hash()[:16] in text


def test_a_missing_artifact_is_a_config_error_naming_the_directory(tmp_path: Path) -> None:
    from ml_example import write_example

    from trader.engine.build import build_models

    _, config = write_example(tmp_path)
    with pytest.raises(ConfigError, match=r"artifact.*not a model artifact"):
        build_models(load_config(config))


def test_the_model_reads_its_features_from_closed_bars_of_both_timeframes(
        example: dict[str, Any]) -> None:
    from trader.engine.build import build_models

    (model,) = build_models(load_config(example["config"]))
    assert sorted(model.subscriptions()) == [("BTCUSD", 4 * 3600), ("BTCUSD", 86_400)]
    assert model.warmup_bars() >= 22 * 6  # 20-day slow windows on 4-hour decisions


def test_meta_labelled_model_trades_the_primary_side_as_training_did(tmp_path: Path) -> None:
    from ml_example import write_example

    from trader.cli.train import train_model

    primary = {"model": "SmaCross", "params": {"fast": 5, "slow": 20, "allow_short": True}}
    train, config = write_example(tmp_path, labels={"primary": primary})
    meta = train_model(train, record=False)
    assert meta["labels"]["primary"] == primary
    expected = meta["oos_signals"][1]
    weights, _ = _replay_weights(config, fold=1)
    assert {ts: weights[ts] for ts in expected} == expected
    # Both sides occur, each only where the classifier agreed to act.
    assert min(expected.values()) < 0 < max(expected.values())
    assert 0.0 in expected.values()
