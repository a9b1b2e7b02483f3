"""bench/replay_instructions.py: callgrind counts the replay loops, and only them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from bench.replay_instructions import count
from bench.replay_throughput import make_bars


def test_counts_the_warm_loops_of_floor_and_kernel(tmp_path: Path) -> None:
    if shutil.which("valgrind") is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("valgrind is required in CI (apt-get install valgrind)")
        pytest.skip("valgrind is not installed")
    small, large = tmp_path / "small.parquet", tmp_path / "large.parquet"
    make_bars(small, 1_000)
    make_bars(large, 3_000)
    floor = [count("floor", p, None, tmp_path / f"floor{i}.out") for i, p in
             enumerate((small, large))]
    kernel = count("kernel", small, None, tmp_path / "kernel.out")
    # Only the loop is counted (imports alone are hundreds of millions of instructions):
    # three times the bars, about three times the instructions.
    assert 2.5 < floor[1] / floor[0] < 3.5
    per_bar = floor[0] / 1_000
    assert 500 < per_bar < 20_000
    # The kernel does far more per bar than the plain loop, and not absurdly more.
    assert 3 < kernel / floor[0] < 40


def test_a_missing_dump_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import bench.replay_instructions as ri

    # The child without callgrind (its output-file option dropped): it runs, dumps nothing.
    monkeypatch.setattr(ri, "CALLGRIND", ["sh", "-c", 'shift; exec "$@"', "sh"])
    make_bars(tmp_path / "b.parquet", 100)
    with pytest.raises(SystemExit, match="wrote no dump at gc.unfreeze"):
        ri.count("floor", tmp_path / "b.parquet", None, tmp_path / "x.out")
