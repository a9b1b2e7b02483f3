"""Two hosts' worth of workers: two ``trader optimize worker`` processes on one PostgreSQL study.

Needs the PostgreSQL server on 127.0.0.1:5432 (fails in CI when it is down).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import optuna
import pytest
from optimize_clone import TRADER, trader, write_experiment
from optuna.trial import TrialState
from pg_server import pg_schema_url

from trader.optimize.experiment import load_experiment
from trader.optimize.objective import RESULT, SURPLUS
from trader.optimize.study import create_study, storage_for

pytestmark = pytest.mark.postgres

GRID = """\
name: pg-grid
config: ../slow.yaml
method: grid
params:
  models.btc_sma.params.fast: [4, 8, 12, 16]
  models.btc_sma.params.slow: [60, 120, 180]
"""


@pytest.fixture()
def pg_url() -> Iterator[str]:
    yield from pg_schema_url()


def test_two_worker_processes_share_one_study_with_no_duplicated_grid_point(
        clone: Path, pg_url: str) -> None:
    exp = load_experiment(write_experiment(clone, "pg", GRID))
    create_study(exp, storage_for(pg_url))  # as `trader optimize run` would, before its work
    cmd = [*TRADER, "optimize", "worker", "--study", "pg-grid", "--storage", pg_url]
    procs = [subprocess.Popen(cmd, cwd=clone, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    for p, (out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
        assert "worker done: study pg-grid" in out

    study = optuna.load_study(study_name="pg-grid", storage=storage_for(pg_url))
    done = study.get_trials(states=(TrialState.COMPLETE,))
    points = [tuple(sorted(t.params.items())) for t in done]
    assert len(points) == 12 == len(set(points))  # the whole grid, each point once
    # Nothing failed.  A worker racing the other for the last grid point may open one
    # trial more, pruned before it samples anything and marked as surplus.
    assert all(t.state == TrialState.COMPLETE
               or (t.state == TrialState.PRUNED and t.user_attrs.get(SURPLUS))
               for t in study.trials)
    assert len(study.trials) - len(done) <= 2  # at most one per worker
    assert len({t.user_attrs[RESULT]["worker"] for t in done}) == 2  # both did trials

    # The listing and the report read the shared study like any other.
    res = trader(["optimize", "show", "pg-grid", "--storage", pg_url], clone)
    assert res.returncode == 0, res.stderr
    assert "Study pg-grid" in res.stdout


def test_a_storage_password_is_never_printed(clone: Path) -> None:
    url = "postgresql://trader:s3cr3t-pw@127.0.0.1:1/optuna"
    res = trader(["optimize", "list", "--storage", url], clone, timeout=120)
    assert res.returncode == 2
    assert "s3cr3t-pw" not in res.stdout + res.stderr
    assert "127.0.0.1:1" in res.stderr and "***" in res.stderr
