"""The README's flows, run as a user runs them: its own commands, its own paths, shipped data.

The commands are read from the README's ``bash`` blocks (``.venv/bin/trader`` becomes
this interpreter's ``-m trader.cli``) and run in a fresh folder holding the shipped
``config/`` and ``data/``, as on a new clone.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = (REPO / "README.md").read_text()
TRADER = [sys.executable, "-m", "trader.cli"]


def bash_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", README, flags=re.S)


def trader_commands(block: str) -> list[list[str]]:
    """The ``trader`` command lines of a block (continuations joined, comments dropped);
    a ``for m in a b; do ... $m ...; done`` loop is unrolled."""
    text = block.replace("\\\n", " ")
    out: list[list[str]] = []
    for line in text.splitlines():
        line = line.split("  #")[0].strip()
        loop = re.match(r"for (\w+) in (.*?); do (.*?); done", line)
        if loop:
            var, items, body = loop.groups()
            for item in items.split():
                out += trader_commands(body.replace(f"${var}", item))
            continue
        if ".venv/bin/trader " in line:
            argv = shlex.split(line.replace('"$USER"', "tester"))
            out.append([*TRADER, *argv[1:]])
    return out


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    for d in ("config", "data"):
        shutil.copytree(REPO / d, tmp_path / d)
    return tmp_path


def run(argv: list[str], cwd: Path, timeout: float = 300) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items()
           if k not in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL", "NOTIFY_SOCKET")}
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def test_main_job_is_one_command_that_writes_the_reports(clone: Path) -> None:
    block = next(b for b in bash_blocks() if "trader backtest config/backtest.yaml" in b)
    (cmd,) = trader_commands(block)
    res = run(cmd, clone)
    assert res.returncode == 0, res.stderr[-3000:]
    out = clone / "runs" / "sample-multi-asset"
    for name in ("metrics.json", "trades.csv", "equity.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert json.loads((out / "metrics.json").read_text())["trades"] > 0
    # The run is recorded in the deployment's store (the config's data dir, var/).
    assert (clone / "var" / "trader.db").exists()


def _status(clone: Path) -> dict:
    """``trader status --json`` as the README runs it; {} before the daemon's first snapshot."""
    res = run([*TRADER, "status", "--config", "config/paper.yaml", "--json"], clone)
    try:
        return json.loads(res.stdout)
    except json.JSONDecodeError:
        return {}


def _wait(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def test_paper_flow_status_kill_restart_and_one_daemon_per_data_dir(clone: Path) -> None:
    block = next(b for b in bash_blocks() if "--mode paper" in b and "promote" in b)
    *setup, start = trader_commands(block)
    for cmd in setup:  # backtest, then register the two models (forced, on record)
        res = run(cmd, clone)
        assert res.returncode == 0, (cmd, res.stderr[-3000:])
    history = run([*TRADER, "models", "history", "btc_sma", "--config", "config/paper.yaml"],
                  clone)
    assert "research" in history.stdout and "candidate" in history.stdout

    # Candidate is enough for paper: the README's own start command.
    log = open(clone / "paper.log", "wb")
    proc = subprocess.Popen(start, cwd=clone, stdout=log, stderr=subprocess.STDOUT)
    try:

        _wait(lambda: _status(clone).get("orders_submitted", 0) > 0, 60, "paper orders")
        # A second daemon on the same data dir is refused, naming the first.
        second = run(start, clone, timeout=60)
        assert second.returncode == 2
        assert f"pid {proc.pid}" in second.stderr and "one daemon per data directory" in \
            second.stderr
        # The README's kill command reaches this daemon (same data dir from the config).
        kill = next(c for b in bash_blocks() for c in trader_commands(b) if "kill" in c)
        res = run(kill, clone)
        assert res.returncode == 0 and "ENGAGED" in res.stdout, res.stderr
        assert "no daemon has ever used" not in res.stderr
        _wait(lambda: _status(clone).get("kill_switch") is True, 5, "the kill switch in the daemon")
        snap = _status(clone)
        assert snap["risk_state"] == "HALTED" and snap["store"]["kill_switch"]["engaged"]
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        log.close()

    # A restart keeps the switch engaged (released only by the command) and resumes the
    # replay after the bars the first session consumed.
    first_journal = _status(clone)["journal"]
    proc = subprocess.Popen(start, cwd=clone, stdout=open(clone / "paper2.log", "wb"),
                            stderr=subprocess.STDOUT)
    try:
        _wait(lambda: _status(clone).get("state") == "trading" and _status(clone).get("journal")
              != first_journal, 60, "the second session")
        snap = _status(clone)
        assert snap["kill_switch"] is True
        submitted = snap["orders_submitted"]
        time.sleep(1.0)
        assert _status(clone)["orders_submitted"] == submitted  # nothing but flattening passes
        res = run([*TRADER, "kill", "--config", "config/paper.yaml", "--release", "--reason",
                   "resume"], clone)
        assert res.returncode == 0 and "released" in res.stdout
        _wait(lambda: _status(clone).get("kill_switch") is False, 5, "the release")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()


def test_xgboost_flow_trains_backtests_later_bars_and_meets_the_gate(clone: Path) -> None:
    block = next(b for b in bash_blocks() if "trader models train config/btc_xgb" in b)
    train, backtest, promote = trader_commands(block)
    res = run(train, clone)
    assert res.returncode == 0, res.stderr[-3000:]
    meta = json.loads((clone / "artifacts" / "btc_xgb" / "artifact.json").read_text())
    assert len(meta["folds"]) == 4 and meta["data"]["end_ts"] <= 1554076800 * 10**9
    assert "recorded as run #1" in res.stdout
    res = run(backtest, clone)
    assert res.returncode == 0, res.stderr[-3000:]
    equity = (clone / "runs" / "btc-xgb" / "equity.csv").read_text().splitlines()
    assert equity[1].startswith("2019-04")  # the backtest starts where training stopped
    res = run(promote, clone)
    # No edge out of sample: the gate refuses, naming the stored out-of-sample run.
    assert res.returncode == 2, res.stdout + res.stderr
    assert "gate to candidate for btc_xgb: FAIL" in res.stderr
    assert "backtest_run: run #" in res.stderr

def test_optimisation_flow_grid_show_export_backtest_walk_forward(clone: Path) -> None:
    block = next(b for b in bash_blocks() if "trader optimize run config/experiments" in b)
    cmds = trader_commands(block)
    results = {}
    for cmd in cmds:
        res = run(cmd, clone)
        assert res.returncode == 0, (cmd, res.stderr[-3000:])
        results[" ".join(cmd[3:6])] = res.stdout
    grid = results["optimize run config/experiments/sma_grid.yaml"]
    for expected in ("Study sma-grid: top 5", "16 trials in", "trials/s"):
        assert expected in grid, grid
    assert (clone / "runs" / "optimize" / "sma-grid" / "report.html").exists()
    shown = results["optimize show sma-grid"]
    assert "Parameter importances" in shown and "deflated Sharpe" in shown
    # The exported best trial, replayed by `trader backtest`, scores what the study said.
    import optuna

    from trader.optimize.results import best
    from trader.optimize.study import storage_for

    storage = storage_for(f"sqlite:///{clone / 'runs' / 'optimize' / 'studies.db'}")
    top = best(optuna.load_study(study_name="sma-grid", storage=storage))[0]
    exported = (clone / "runs" / "optimize" / "sma-grid" / "best.yaml").read_text()
    assert f"trial {top.number}" in exported
    name = next(line.split(": ", 1)[1] for line in exported.splitlines()
                if line.startswith("name:"))
    metrics = json.loads((clone / "runs" / name / "metrics.json").read_text())
    assert metrics["bps"] == pytest.approx(top.values[0], abs=1e-9)
    wf = results["optimize show sma-wf"]
    assert "in-sample vs out-of-sample sharpe" in wf and "w5" in wf
    assert "sma-wf.w1" in results["optimize list"] and "sma-grid" in results["optimize list"]
