"""``trader models train`` as an operator runs it: artifact, stored out-of-sample run, the
promotion gate reading it, and operator errors with exit status 2."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from daemon_harness import run_cli
from ml_example import write_example


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def test_train_writes_the_artifact_and_the_gate_reads_its_out_of_sample_run(
        tmp_path: Path) -> None:
    train, config = write_example(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlruns.db'}"
    res = run_cli("models", "train", str(train), "--walk-forward", timeout=300,
                  env={"MLFLOW_TRACKING_URI": uri})
    assert res.returncode == 0, res.stderr[-3000:]
    assert "out-of-sample folds" in res.stdout and "recorded as run #1" in res.stdout
    # tracked too: the training's run holds the out-of-sample figures and the artifact
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    [run] = client.search_runs([client.get_experiment_by_name("xgb").experiment_id])
    assert run.data.tags["trader.kind"] == "train" and run.info.run_id in res.stdout
    assert "oos_sharpe" in run.data.metrics and "folds_mean_auc" in run.data.metrics
    assert {"artifact.json", "model.ubj"} <= {a.path for a in client.list_artifacts(
        run.info.run_id)}
    meta = json.loads((tmp_path / "artifact" / "artifact.json").read_text())
    assert meta["cv"]["scheme"] == "walk_forward" and len(meta["folds"]) == 3
    assert (tmp_path / "artifact" / "model.ubj").stat().st_size > 1000

    gate = run_cli("models", "promote", "xgb", "--config", str(config), "--reason", "oos",
                   "--operator", "tester")
    # The stored run is the folds' out-of-sample backtest: the gate reads it, pass or fail.
    assert "backtest_run: run #1" in (gate.stdout + gate.stderr), gate.stderr
    sharpe = meta["oos_backtest"]["sharpe"]
    assert f"sharpe: {sharpe:.3f}" in (gate.stdout + gate.stderr)

    again = run_cli("models", "train", str(train))
    assert again.returncode == 2
    assert "an artifact is already there" in again.stderr and "--overwrite" in again.stderr

    backtest = run_cli("backtest", str(config), "--no-progress", "--out", str(tmp_path / "bt"))
    assert backtest.returncode == 0, backtest.stderr[-3000:]
    assert json.loads((tmp_path / "bt" / "metrics.json").read_text())["trades"] > 0


def test_operator_errors_name_the_place_and_exit_2(tmp_path: Path) -> None:
    train, config = write_example(tmp_path)
    raw = yaml.safe_load(train.read_text())
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**raw, "cv": {"folds": 1}}))
    res = run_cli("models", "train", str(bad))
    assert res.returncode == 2 and "cv.folds" in res.stderr and "Traceback" not in res.stderr
    bad.write_text(yaml.safe_dump({**raw, "model": "nope"}))
    res = run_cli("models", "train", str(bad))
    assert res.returncode == 2 and "model 'nope' is not in the config" in res.stderr

    # A config whose features differ from the artifact's: the backtest refuses, exit 2.
    run_cli("models", "train", str(train), "--no-record", timeout=300)
    cfg = yaml.safe_load(config.read_text())
    cfg["models"][0]["params"]["features"]["params"]["rsi"] = 9
    config.write_text(yaml.safe_dump(cfg))
    res = run_cli("backtest", str(config), "--no-progress", "--out", str(tmp_path / "bt"))
    assert res.returncode == 2, res.stderr[-2000:]
    assert "feature hash mismatch" in res.stderr and "params.features" in res.stderr


def test_models_train_help_imports_nothing_heavy() -> None:
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "trader.cli", "models",
                          "train", "--help"], capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "--walk-forward" in res.stdout
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "typer" in imported
    assert imported & {"xgboost", "numpy", "pyarrow", "sqlalchemy", "scipy"} == set()
