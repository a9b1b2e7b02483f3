"""Walk-forward: each window's choice is made in-sample and scored on the dates after it."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
from optimize_clone import trader, write_experiment

from trader.optimize.experiment import load_experiment
from trader.optimize.results import best
from trader.optimize.study import storage_for
from trader.replay.backtest import run_backtest

WF = """\
name: wf
config: ../small.yaml
method: random
trials: 3
seed: 5
objective: sharpe
params:
  models.qqq_sma.params.fast: {type: int, low: 3, high: 20}
  models.qqq_sma.params.slow: {type: int, low: 25, high: 60}
walk_forward: {start: "2016-01-01", end: "2018-01-01", in_sample_days: 270,
               out_of_sample_days: 120}
"""


def test_walk_forward_shows_in_and_out_of_sample_per_window(clone: Path) -> None:
    path = write_experiment(clone, "wf", WF)
    url = f"sqlite:///{clone / 'wf.db'}"
    res = trader(["optimize", "run", str(path), "--workers", "1", "--storage", url,
                  "--no-speed"], clone)
    assert res.returncode == 0, res.stderr[-2000:]
    shown = trader(["optimize", "show", "wf", "--storage", url], clone)
    assert shown.returncode == 0, shown.stderr
    assert "in-sample vs out-of-sample sharpe" in shown.stdout
    assert "out-of-sample, windows chained" in shown.stdout

    exp = load_experiment(path)
    storage = storage_for(url)
    main = optuna.load_study(study_name="wf", storage=storage)
    windows = main.user_attrs["walk_forward"]
    assert [w["window"] for w in windows] == [1, 2, 3]
    for w, (start, split, end) in zip(windows, exp.spec.walk_forward.windows(), strict=True):
        assert w["in_sample"] == [start, split] and w["out_of_sample"] == [split, end]
        assert f"w{w['window']}" in shown.stdout
        # In-sample: the window's own study, and its best trial is the one carried forward.
        study = optuna.load_study(study_name=f"wf.w{w['window']}", storage=storage)
        assert len(study.trials) == 3
        chosen = best(study)[0]
        assert w["params"] == chosen.params
        assert w["in_sample_metrics"]["sharpe"] == pytest.approx(chosen.values[0])
        # Out-of-sample: the same parameters replayed on the following dates only.
        oos = run_backtest(exp.variant(chosen.params, start=split, end=end), None).metrics
        assert w["out_of_sample_metrics"]["sharpe"] == pytest.approx(oos["sharpe"])
        assert w["out_of_sample_metrics"]["bars"] == oos["bars"] < 120
    assert main.user_attrs["oos_metrics"]["trades"] == sum(
        w["out_of_sample_metrics"]["trades"] for w in windows)


def test_a_walk_forward_result_is_promotion_evidence_and_an_in_sample_one_is_not(
        clone: Path) -> None:
    url = f"sqlite:///{clone / 'wf.db'}"
    path = write_experiment(clone, "wf", WF.replace("trials: 3", "trials: 2"))
    assert trader(["optimize", "run", str(path), "--workers", "1", "--storage", url,
                   "--no-speed"], clone).returncode == 0
    (clone / "var").mkdir()
    promote = ["models", "promote", "qqq_sma", "--config", "config/small.yaml", "--reason",
               "walk-forward", "--operator", "tester", "--storage", url]
    res = trader([*promote, "--evidence", "study:wf.w1"], clone)
    assert res.returncode == 2 and "no out-of-sample result" in res.stderr
    res = trader([*promote, "--evidence", "study:wf", "--force"], clone)
    assert res.returncode == 0, res.stderr
    oos = optuna.load_study(study_name="wf", storage=storage_for(url)).user_attrs["oos_metrics"]
    assert "evidence: study wf (out-of-sample, 3 windows)" in res.stdout
    assert f"trades: {oos['trades']:.0f}" in res.stdout  # the gate read the chained OOS
