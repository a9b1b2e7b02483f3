"""MLflow tracking against a real local store: backtests, studies with nested trials, evidence."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from optimize_clone import make_clone, trader, write_experiment

from trader.core.redaction import redact_url
from trader.tracking import Tracker, TrackingError, flatten

GRID = """\
name: tracked
config: ../small.yaml
method: grid
params:
  models.qqq_sma.params.fast: [5, 10, 20]
  models.qqq_sma.params.slow: [40, 60]
"""


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    return make_clone(tmp_path)


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(uri)


def test_a_study_logs_a_parent_run_and_one_nested_run_per_trial(clone: Path) -> None:
    uri = f"sqlite:///{clone / 'mlruns' / 'mlflow.db'}"
    path = write_experiment(clone, "tracked", GRID)
    res = trader(["optimize", "run", str(path), "--workers", "2", "--no-speed"], clone,
                 env={"MLFLOW_TRACKING_URI": uri})
    assert res.returncode == 0, res.stderr[-3000:]
    client = _client(uri)
    exp = client.get_experiment_by_name("tracked")
    runs = client.search_runs([exp.experiment_id], max_results=100)
    (parent,) = [r for r in runs if r.data.tags.get("trader.kind") == "study"]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert len(children) == 6 == len(runs) - 1
    assert f"tracked as MLflow run {parent.info.run_id}" in res.stdout
    points = {(c.data.params["models.qqq_sma.params.fast"],
               c.data.params["models.qqq_sma.params.slow"]) for c in children}
    assert points == {(f, s) for f in ("5", "10", "20") for s in ("40", "60")}
    for c in children:
        assert c.info.status == "FINISHED"
        assert {"bps", "sharpe", "max_drawdown", "trades"} <= set(c.data.metrics)
        assert len(c.data.tags["git_commit"]) >= 7 or c.data.tags["git_commit"] == "unknown"
        assert len(c.data.tags["data_hash"]) == 64 and len(c.data.tags["config_hash"]) == 64
        assert c.data.params["instruments.QQQ.data.timeframe"] == "1d"  # the flattened config
        names = {a.path for a in client.list_artifacts(c.info.run_id)}
        assert {"metrics.json", "trades.csv", "equity.csv"} <= names
    # The parent holds the study's report and the best trial's metrics.
    assert "report.html" in {a.path for a in client.list_artifacts(parent.info.run_id)}
    assert parent.data.metrics["bps"] == max(c.data.metrics["bps"] for c in children)
    assert parent.info.status == "FINISHED"


def test_a_tracked_backtest_is_evidence_for_a_promotion_on_record(clone: Path) -> None:
    uri = f"sqlite:///{clone / 'mlruns' / 'mlflow.db'}"
    cfg = clone / "config" / "small.yaml"
    cfg.write_text(cfg.read_text() + f"tracking: {{uri: '{uri}', experiment: bt}}\n")
    res = trader(["backtest", "config/small.yaml", "--no-progress"], clone)
    assert res.returncode == 0, res.stderr[-3000:]
    run_id = res.stdout.split("tracked as MLflow run ")[1].split()[0]
    client = _client(uri)
    run = client.get_run(run_id)
    assert run.data.tags["trader.kind"] == "backtest" and run.data.tags["models"] == "qqq_sma"
    names = {a.path for a in client.list_artifacts(run_id)}
    assert {"metrics.json", "trades.csv", "equity.csv", "report.html"} <= names

    res = trader(["models", "promote", "qqq_sma", "--config", "config/small.yaml", "--evidence",
                  run_id, "--reason", "tracked run", "--operator", "tester", "--force"], clone)
    assert res.returncode == 0, res.stderr
    assert f"evidence: mlflow run {run_id}" in res.stdout
    from trader.engine.config import load_config
    from trader.store import open_store
    from trader.store.lifecycle import Lifecycle

    store = open_store(load_config(cfg).store, clone / "var")
    try:
        (row,) = Lifecycle(store).history("qqq_sma")
    finally:
        store.close()
    assert run_id in row["gate_report"] and row["to_stage"] == "candidate"
    sharpe = run.data.metrics["sharpe"]
    assert f"sharpe: {sharpe:.3f}" in row["gate_report"]  # gated on that run's numbers

    bad = trader(["models", "promote", "qqq_sma", "--config", "config/small.yaml",
                  "--evidence", "0" * 32, "--reason", "x", "--operator", "t"], clone)
    assert bad.returncode == 2 and "no MLflow run" in bad.stderr


def test_without_a_tracking_uri_nothing_is_tracked(clone: Path) -> None:
    res = trader(["backtest", "config/small.yaml", "--no-progress"], clone)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "MLflow" not in res.stdout and not (clone / "mlruns").exists()


def test_a_missing_extra_names_the_install_command(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)
    monkeypatch.setitem(sys.modules, "mlflow.tracking", None)
    with pytest.raises(TrackingError, match=r"pip install 'trader-daemon\[tracking\]'"):
        Tracker("sqlite:///x.db", "e")


def test_flatten_and_redact() -> None:
    flat = flatten({"models": [{"name": "a", "params": {"fast": 5}}], "x": {"y": [1, 2]}})
    assert flat == {"models.a.name": "a", "models.a.params.fast": "5", "x.y": "[1, 2]"}
    assert redact_url("http://bob:pw@host:5000") == "http://bob:***@host:5000"
