"""Experiment files: what they accept, and a clear message naming file and key otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest
from optimize_clone import trader, write_experiment

from trader.optimize.experiment import ExperimentError, load_experiment

GOOD = """\
name: t
config: ../small.yaml
method: grid
params:
  models.qqq_sma.params.fast: [5, 10]
  models.qqq_sma.params.slow: {type: int, low: 40, high: 60, step: 10}
"""


def _error(clone: Path, body: str) -> str:
    path = write_experiment(clone, "bad", body)
    with pytest.raises(ExperimentError) as err:
        load_experiment(path)
    text = str(err.value)
    assert str(path) in text  # every message names the file
    return text


def test_a_grid_experiment_loads_with_its_grid_and_defaults(clone: Path) -> None:
    exp = load_experiment(write_experiment(clone, "good", GOOD))
    assert exp.spec.grid() == {"models.qqq_sma.params.fast": [5, 10],
                               "models.qqq_sma.params.slow": [40, 50, 60]}
    assert exp.spec.n_trials() == 6
    assert [(o.metric, o.direction) for o in exp.spec.objective] == [("bps", "maximize")]
    cfg = exp.variant({"models.qqq_sma.params.fast": 5}, start="2017-01-01")
    assert cfg.models[0].params == {"fast": 5, "slow": 50}
    assert cfg.data.start == "2017-01-01"
    assert exp.base.models[0].params == {"fast": 10, "slow": 50}  # the base is untouched


def test_objective_directions_follow_the_metric_or_a_minus_sign(clone: Path) -> None:
    body = GOOD.replace("method: grid", "method: evolutionary\ntrials: 4\n"
                        "objective: [sharpe, max_drawdown, -trades]")
    exp = load_experiment(write_experiment(clone, "multi", body))
    assert exp.spec.directions == ["maximize", "minimize", "minimize"]
    assert exp.spec.multi


def test_malformed_yaml_names_the_line(clone: Path) -> None:
    text = _error(clone, "name: t\nparams: [unclosed\n")
    assert "not valid YAML" in text and "line" in text


def test_unknown_metric_is_named_with_the_known_ones(clone: Path) -> None:
    text = _error(clone, GOOD.replace("method: grid", "method: grid\nobjective: sharp"))
    assert "objective.0: unknown metric 'sharp'" in text and "sharpe" in text


def test_unknown_constraint_metric(clone: Path) -> None:
    text = _error(clone, GOOD + "constraints: {drawdown: {max: 0.2}}\n")
    assert "constraints.drawdown: unknown metric" in text


def test_unknown_model_in_a_config_path(clone: Path) -> None:
    text = _error(clone, GOOD.replace("models.qqq_sma.params.fast", "models.spy.params.fast"))
    assert "params.models.spy.params.fast" in text and "no item named 'spy'" in text
    assert "qqq_sma" in text  # the names that exist


def test_unknown_model_parameter(clone: Path) -> None:
    text = _error(clone, GOOD.replace("params.fast", "params.fst"))
    assert "params.models.qqq_sma.params.fst" in text and "unknown parameter" in text


def test_unknown_config_key(clone: Path) -> None:
    text = _error(clone, GOOD + "  execution.slipage_bps: [1, 2]\n")
    assert "params.execution.slipage_bps" in text and "unknown key" in text


def test_grid_needs_discrete_values(clone: Path) -> None:
    body = GOOD.replace("{type: int, low: 40, high: 60, step: 10}",
                        "{type: float, low: 0.1, high: 1.0, log: true}")
    text = _error(clone, body)
    assert "params.models.qqq_sma.params.slow" in text and "discrete" in text


def test_sampling_methods_need_a_trial_count(clone: Path) -> None:
    assert "trials: required" in _error(clone, GOOD.replace("method: grid", "method: tpe"))


def test_a_condition_must_name_an_earlier_parameter(clone: Path) -> None:
    body = GOOD.replace("method: grid", "method: tpe\ntrials: 3") + \
        "  models.qqq_sma.params.allow_short: {type: categorical, choices: [true], " \
        "when: {models.qqq_sma.params.nope: 1}}\n"
    assert "when" in _error(clone, body)


def test_a_password_in_the_storage_url_is_refused_and_not_echoed(clone: Path) -> None:
    text = _error(clone, GOOD + "storage: postgresql://trader:hunter2@db/optuna\n")
    assert "TRADER_OPTIMIZE_STORAGE" in text and "hunter2" not in text


def test_missing_base_config(clone: Path) -> None:
    assert "config: file ../nope.yaml not found" in _error(
        clone, GOOD.replace("../small.yaml", "../nope.yaml"))


def test_walk_forward_windows_roll_by_the_out_of_sample_length(clone: Path) -> None:
    body = GOOD.replace("method: grid", "method: random\ntrials: 2") + (
        "walk_forward: {start: '2016-01-01', end: '2017-01-01', in_sample_days: 180, "
        "out_of_sample_days: 90}\n")
    wf = load_experiment(write_experiment(clone, "wf", body)).spec.walk_forward
    assert wf is not None
    assert wf.windows() == [("2016-01-01", "2016-06-29", "2016-09-27"),
                            ("2016-03-31", "2016-09-27", "2016-12-26")]


def test_the_cli_prints_one_paragraph_and_exits_2(clone: Path) -> None:
    path = write_experiment(clone, "bad", GOOD.replace("method: grid", "method: sideways"))
    res = trader(["optimize", "run", str(path), "--workers", "1"], clone, timeout=120)
    assert res.returncode == 2
    assert "Traceback" not in res.stderr
    assert f"{path}: invalid experiment" in res.stderr and "at method" in res.stderr
