"""``trader optimize``: light help, operator errors as one paragraph (exit 2), compare/export."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from optimize_clone import make_clone, trader, write_experiment

HEAVY = {"optuna", "mlflow", "sqlalchemy", "pyarrow", "numpy", "pandas", "plotly"}

GRID = """\
name: {name}
config: ../small.yaml
method: grid
constraints: {{trades: {{min: {min_trades}}}}}
params:
  models.qqq_sma.params.fast: [5, 20]
  models.qqq_sma.params.slow: [40]
"""


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    return make_clone(tmp_path)


@pytest.mark.parametrize("args", [["optimize", "--help"], ["optimize", "run", "--help"]])
def test_help_imports_nothing_heavy(args: list[str]) -> None:
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "trader.cli", *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and "Usage" in res.stdout
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert "trader" in imported and imported & HEAVY == set()


def test_compare_export_and_their_errors(clone: Path) -> None:
    url = f"sqlite:///{clone / 's.db'}"
    for name, min_trades in (("a", 1), ("none-feasible", 10_000)):
        path = write_experiment(clone, name, GRID.format(name=name, min_trades=min_trades))
        res = trader(["optimize", "run", str(path), "--workers", "1", "--storage", url,
                      "--no-speed"], clone)
        assert res.returncode == 0, res.stderr[-2000:]

    res = trader(["optimize", "compare", "a", "none-feasible", "--storage", url], clone)
    assert res.returncode == 0, res.stderr
    assert "a" in res.stdout and "none-feasible" in res.stdout

    res = trader(["optimize", "export", "a", "--trial", "1", "--out", "t1.yaml", "--storage",
                  url], clone)
    assert res.returncode == 0, res.stderr
    exported = yaml.safe_load((clone / "t1.yaml").read_text())
    assert exported["models"][0]["params"]["slow"] == 40
    assert Path(exported["instruments"][0]["data"]["path"]).is_absolute()

    res = trader(["optimize", "export", "none-feasible", "--best", "--storage", url], clone)
    assert res.returncode == 2 and "no completed feasible trial" in res.stderr

    res = trader(["optimize", "show", "nope", "--storage", url], clone)
    assert res.returncode == 2
    assert "no study 'nope'" in res.stderr and "none-feasible" in res.stderr


def test_a_second_experiment_under_the_same_name_is_refused(clone: Path) -> None:
    url = f"sqlite:///{clone / 's.db'}"
    first = write_experiment(clone, "one", GRID.format(name="same", min_trades=1))
    res = trader(["optimize", "run", str(first), "--workers", "1", "--storage", url,
                  "--no-speed"], clone)
    assert res.returncode == 0, res.stderr[-2000:]
    other = write_experiment(clone, "two", GRID.format(name="same", min_trades=2))
    res = trader(["optimize", "run", str(other), "--workers", "1", "--storage", url,
                  "--no-speed"], clone)
    assert res.returncode == 2
    assert "study 'same' already exists with another experiment" in res.stderr


def test_in_memory_storage_needs_one_worker(clone: Path) -> None:
    path = write_experiment(clone, "m", GRID.format(name="m", min_trades=1))
    res = trader(["optimize", "run", str(path), "--workers", "2", "--storage", "memory"], clone)
    assert res.returncode == 2 and "in-memory study lives in one process" in res.stderr
