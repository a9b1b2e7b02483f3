"""README "Writing a model": the template, its own tests, and a backtest of it, as a user
runs them on a fresh clone."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from test_readme_flows import bash_blocks, clone, run, trader_commands  # noqa: F401

__all__ = ["clone"]


def test_new_model_template_tests_and_backtests(clone: Path) -> None:  # noqa: F811
    block = next(b for b in bash_blocks() if "models new" in b)
    new, backtest = trader_commands(block)
    res = run(new, clone)
    assert res.returncode == 0, res.stderr
    assert (clone / "strategies" / "my_trend.py").exists()
    # The template's own test, as the README's second line runs it.
    assert ".venv/bin/python -m pytest -q strategies" in block
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                            "strategies"], cwd=clone, capture_output=True, text=True,
                           timeout=300)
    assert tests.returncode == 0, tests.stdout[-3000:]
    assert "2 passed" in tests.stdout
    res = run(backtest, clone)
    assert res.returncode == 0, res.stderr[-3000:]
    metrics = json.loads((clone / "runs" / "my-trend" / "metrics.json").read_text())
    assert metrics["trades"] > 0 and "spy_breakout" in metrics["model_pnl"]
    # Writing over an existing model is refused, as an operator error.
    again = run(new, clone)
    assert again.returncode == 2 and "already exists" in again.stderr
