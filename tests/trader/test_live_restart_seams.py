"""Restarts of the paper daemon: a killed fill is FILLED, backtests never leak in."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from daemon_harness import events, log_lines, run_cli, start_daemon, wait_for_exit, write_config

from trader.engine.config import StoreConfig
from trader.store import open_store

HERE = Path(__file__).parent


def test_kill_after_a_fill_is_stored_then_restart_leaves_the_order_filled(tmp_path):
    cfg = write_config(tmp_path, data_end="2018-08-10")
    out = subprocess.run([sys.executable, str(HERE / "crash_paper.py"), "run", "--config",
                          str(cfg), "--mode", "paper"], capture_output=True, text=True,
                         timeout=60, cwd=str(tmp_path))
    assert out.returncode == -9, out.stdout[-2000:] + out.stderr[-2000:]
    coid = re.search(r"KILLED_AFTER_FILL (\S+)", out.stdout).group(1)
    with open_store(StoreConfig(data_dir=tmp_path / "data"), migrate=False) as store:
        assert store.order_row(coid)["status"] != "FILLED"  # the crash came in between
        assert store.fills(coid)
    proc, log_path = start_daemon(cfg, log_path=tmp_path / "two.log")
    wait_for_exit(proc, log_path)
    with open_store(StoreConfig(data_dir=tmp_path / "data"), migrate=False) as store:
        row = store.order_row(coid)
    assert row["status"] == "FILLED", row
    assert events(log_lines(log_path), "reconciled")


def test_backtest_fills_in_the_same_database_never_reach_a_paper_session(tmp_path):
    cfg = write_config(tmp_path, data_end="2018-08-10")
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    env = {"TRADER_DATABASE_URL": url}
    bt = run_cli("backtest", str(cfg), "--store", env=env, cwd=tmp_path, timeout=120)
    assert bt.returncode == 0, bt.stdout + bt.stderr
    with open_store(StoreConfig(database_url=url), migrate=False) as store:
        assert store.positions()  # the backtest left positions in the shared database
    proc, log_path = start_daemon(cfg, env=env, log_path=tmp_path / "paper.log")
    wait_for_exit(proc, log_path)
    lines = log_lines(log_path)
    assert not events(lines, "state_restored")  # nothing of the backtest is restored
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json", env=env).stdout)
    assert snap["state"] == "stopped"
