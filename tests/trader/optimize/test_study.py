"""Studies end to end on the shipped data: workers, resume, constraints, pruning, Pareto."""

from __future__ import annotations

import signal
import subprocess
import time
from pathlib import Path

import optuna
import pytest
from optimize_clone import TRADER, trader, write_experiment
from optuna.trial import TrialState

from trader.optimize.experiment import load_experiment
from trader.optimize.objective import RESULT
from trader.optimize.results import best, rows
from trader.optimize.run import run_experiment
from trader.optimize.study import storage_for

GRID = """\
name: grid
config: ../small.yaml
method: grid
params:
  models.qqq_sma.params.fast: [5, 10, 20]
  models.qqq_sma.params.slow: [40, 60]
"""


def _ranking(study: optuna.Study) -> list[tuple]:
    return [(tuple(sorted(r.params.items())), round(r.values[0], 12)) for r in rows(study)]


def test_a_grid_ranks_the_same_with_one_and_two_workers(clone: Path) -> None:
    exp = load_experiment(write_experiment(clone, "grid", GRID))
    one = run_experiment(exp, "memory", 1, report_dir=clone / "r1").study
    two = run_experiment(exp, f"sqlite:///{clone / 'two.db'}", 2, report_dir=clone / "r2").study
    assert len(_ranking(one)) == 6
    assert _ranking(one) == _ranking(two)
    # Every grid point once, and the worker processes did the work (not this one).
    done = two.get_trials(states=(TrialState.COMPLETE,))
    assert sorted(tuple(sorted(t.params.items())) for t in done) == sorted(
        {tuple(sorted(t.params.items())) for t in done})
    assert {t.user_attrs[RESULT]["worker"] for t in done}.isdisjoint(
        {t.user_attrs[RESULT]["worker"] for t in one.trials})
    assert (clone / "r2" / "report.html").stat().st_size > 1_000_000  # plotly.js embedded


def test_an_infeasible_trial_is_never_the_best(clone: Path) -> None:
    body = GRID + "constraints: {trades: {max: 10}}\n"
    exp = load_experiment(write_experiment(clone, "cons", body))
    study = run_experiment(exp, "memory", 1, report_dir=clone / "r").study
    ranked = rows(study)
    feasible = [r for r in ranked if r.metrics["trades"] <= 10]
    assert feasible and len(feasible) < len(ranked)  # the bound splits this grid
    assert [r.feasible for r in ranked] == [r.metrics["trades"] <= 10 for r in ranked]
    assert best(study)[0] == max(feasible, key=lambda r: r.values[0])
    # Infeasible trials rank after every feasible one, whatever their score.
    assert ranked[: len(feasible)] == sorted(feasible, key=lambda r: -r.values[0])


def test_an_invalid_combination_fails_its_trial_and_the_study_goes_on(clone: Path) -> None:
    body = GRID.replace("[5, 10, 20]", "[5, 50]")  # fast 50 >= slow 40: refused by SmaCross
    exp = load_experiment(write_experiment(clone, "inv", body))
    study = run_experiment(exp, "memory", 1, report_dir=clone / "r").study
    states = {(t.params["models.qqq_sma.params.fast"], t.params["models.qqq_sma.params.slow"]):
              t.state for t in study.trials}
    assert states[(50, 40)] == TrialState.FAIL
    assert states[(5, 40)] == states[(50, 60)] == TrialState.COMPLETE


def test_pareto_front_of_two_objectives_holds_no_dominated_trial(clone: Path) -> None:
    body = GRID.replace("method: grid", "method: evolutionary\ntrials: 8\npopulation: 4\n"
                        "objective: [sharpe, max_drawdown]").replace(
        "[5, 10, 20]", "{type: int, low: 3, high: 30}").replace(
        "[40, 60]", "{type: int, low: 35, high: 90}")
    exp = load_experiment(write_experiment(clone, "nsga", body))
    study = run_experiment(exp, "memory", 1, report_dir=clone / "r").study
    front = best(study)
    everyone = rows(study)
    assert front
    for f in front:  # nobody has a higher Sharpe and a lower drawdown
        assert not any(o.values[0] > f.values[0] and o.values[1] < f.values[1]
                       for o in everyone)


def test_pruning_stops_trials_below_the_median_of_their_checkpoint(clone: Path) -> None:
    body = GRID.replace("method: grid", "method: random\ntrials: 12\nseed: 3").replace(
        "[5, 10, 20]", "{type: int, low: 2, high: 30}").replace(
        "[40, 60]", "{type: int, low: 31, high: 120}") + (
        "pruning: {checkpoints: 8, warmup_checkpoints: 1, startup_trials: 3}\n")
    exp = load_experiment(write_experiment(clone, "prune", body))
    study = run_experiment(exp, "memory", 1, report_dir=clone / "r").study
    pruned = study.get_trials(states=(TrialState.PRUNED,))
    assert pruned, "no trial was pruned"
    for t in pruned:
        step = max(t.intermediate_values)
        earlier = [o.intermediate_values[step] for o in study.trials
                   if o.number < t.number and step in o.intermediate_values
                   and o.state == TrialState.COMPLETE]
        assert earlier and t.intermediate_values[step] < sorted(earlier)[len(earlier) // 2] \
            + 1e-12


def test_cmaes_searches_numeric_ranges(clone: Path) -> None:
    body = GRID.replace("method: grid", "method: cmaes\ntrials: 4").replace(
        "[5, 10, 20]", "{type: int, low: 3, high: 30}").replace(
        "[40, 60]", "{type: int, low: 35, high: 90}")
    exp = load_experiment(write_experiment(clone, "cma", body))
    study = run_experiment(exp, "memory", 1, report_dir=clone / "r").study
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 4


def test_a_tpe_study_resumes_after_ctrl_c(clone: Path) -> None:
    body = """\
name: tpe
config: ../slow.yaml
method: tpe
trials: 10
seed: 11
params:
  models.btc_sma.params.fast: {type: int, low: 3, high: 30}
  models.btc_sma.params.slow: {type: int, low: 40, high: 200}
"""
    exp_path = write_experiment(clone, "tpe", body)
    url = f"sqlite:///{clone / 'tpe.db'}"
    args = ["optimize", "run", str(exp_path), "--workers", "1", "--storage", url, "--no-speed"]
    proc = subprocess.Popen([*TRADER, *args], cwd=clone, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    storage = storage_for(url)

    def complete() -> int:
        try:
            st = optuna.load_study(study_name="tpe", storage=storage)
        except KeyError:
            return 0
        return len(st.get_trials(states=(TrialState.COMPLETE,)))

    deadline = time.monotonic() + 180
    while complete() < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err[-2000:]
    assert "resumes the study" in out
    first = {t.number: t.params for t in optuna.load_study(
        study_name="tpe", storage=storage).get_trials(states=(TrialState.COMPLETE,))}
    assert 2 <= len(first) < 10

    res = trader(args, clone)
    assert res.returncode == 0, res.stderr[-2000:]
    study = optuna.load_study(study_name="tpe", storage=storage)
    done = {t.number: t.params for t in study.get_trials(states=(TrialState.COMPLETE,))}
    assert len(done) == 10
    assert all(done[n] == p for n, p in first.items())  # the earlier trials were kept
    assert f"{10 - len(first)} trials in" in res.stdout or "trials in" in res.stdout


def test_a_conditional_parameter_is_sampled_only_when_its_condition_holds(clone: Path) -> None:
    body = """\
name: cond
config: ../small.yaml
method: tpe
trials: 8
seed: 2
params:
  models.qqq_sma.params.allow_short: [false, true]
  models.qqq_sma.params.fast:
    {type: int, low: 3, high: 9, when: {models.qqq_sma.params.allow_short: true}}
"""
    exp = load_experiment(write_experiment(clone, "cond", body))
    study = run_experiment(exp, "memory", 1, report_dir=clone / "r").study
    from trader.replay.backtest import run_backtest

    long_only = run_backtest(exp.variant({"models.qqq_sma.params.allow_short": False}),
                             None).metrics["bps"]
    seen = set()
    for t in study.get_trials(states=(TrialState.COMPLETE,)):
        short = t.params["models.qqq_sma.params.allow_short"]
        seen.add(short)
        assert ("models.qqq_sma.params.fast" in t.params) == short
        if not short:  # the base's fast (10) stays where the condition does not hold
            assert t.values[0] == pytest.approx(long_only)
    assert seen == {False, True}


def test_a_trial_opened_after_the_grid_is_exhausted_runs_nothing_and_is_not_counted(
        clone: Path) -> None:
    """Two workers racing for the last grid point can open one trial too many: it is
    pruned before it samples anything, and the study's count of trials run leaves it out."""
    from trader.optimize.objective import SURPLUS, TrialRunner
    from trader.optimize.run import _count
    from trader.optimize.study import create_study

    exp = load_experiment(write_experiment(clone, "surplus", GRID))
    url = f"sqlite:///{clone / 'surplus.db'}"
    study = create_study(exp, storage_for(url), seed=exp.spec.seed)
    runner = TrialRunner(exp)
    study.optimize(runner, n_trials=6)
    assert _count(study) == 6
    study.optimize(runner, n_trials=1)  # what a racing worker does once the grid is done
    (surplus,) = [t for t in study.trials if t.user_attrs.get(SURPLUS)]
    assert surplus.number == 6 and surplus.state == TrialState.PRUNED and not surplus.params
    assert _count(study) == 6
