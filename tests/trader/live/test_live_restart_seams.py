"""Restarts of the paper daemon: a killed fill is FILLED, backtests never leak in."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import (
    events,
    log_lines,
    register_stages,
    run_cli,
    start_daemon,
    wait_for_exit,
    write_config,
)
from pg_server import pg_schema_url

from trader.engine.config import StoreConfig
from trader.store import open_store

HARNESS = Path(__file__).resolve().parents[2] / "harness"


def test_kill_after_a_fill_is_stored_then_restart_leaves_the_order_filled(tmp_path):
    cfg = write_config(tmp_path, data_end="2018-08-10")
    out = subprocess.run([sys.executable, str(HARNESS / "crash_paper.py"), "run", "--config",
                          str(cfg), "--mode", "paper"], capture_output=True, text=True,
                         timeout=60, cwd=str(tmp_path))
    assert out.returncode == -9, out.stdout[-2000:] + out.stderr[-2000:]
    coid = re.search(r"KILLED_AFTER_FILL (\S+)", out.stdout).group(1)
    with open_store(None, tmp_path / "data", migrate=False) as store:
        assert store.order_row(coid)["status"] != "FILLED"  # the crash came in between
        assert store.fills(coid)
    proc, log_path = start_daemon(cfg, log_path=tmp_path / "two.log")
    wait_for_exit(proc, log_path)
    with open_store(None, tmp_path / "data", migrate=False) as store:
        row = store.order_row(coid)
    assert row["status"] == "FILLED", row
    assert events(log_lines(log_path), "reconciled")


@pytest.fixture(params=["sqlite", "postgresql"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path):
    """A database shared by a backtest and a paper daemon: status reads SQLite with the
    standard library and PostgreSQL through the store, and both must show the same."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'shared.db'}"
    else:
        yield from pg_schema_url()


def test_backtest_fills_in_the_same_database_never_reach_a_paper_session(tmp_path, monkeypatch,
                                                                         shared_url):
    cfg = write_config(tmp_path, data_end="2018-08-10", register=False)
    url = shared_url
    env = {"TRADER_DATABASE_URL": url}
    monkeypatch.setenv("TRADER_DATABASE_URL", url)
    register_stages(cfg)  # in the shared database, where the daemon looks
    bt = run_cli("backtest", str(cfg), "--store", env=env, cwd=tmp_path, timeout=120)
    assert bt.returncode == 0, bt.stdout + bt.stderr
    with open_store(StoreConfig(database_url=url), migrate=False) as store:
        assert store.positions()  # the backtest left positions in the shared database
        assert store.positions(mode="paper") == {}  # none of them is a paper position
    proc, log_path = start_daemon(cfg, env=env, log_path=tmp_path / "paper.log")
    wait_for_exit(proc, log_path)
    lines = log_lines(log_path)
    assert not events(lines, "state_restored")  # nothing of the backtest is restored
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json", env=env).stdout)
    assert snap["state"] == "stopped"
    # `trader status` shows the session's own positions from the store, not the backtest's.
    assert snap["positions"] and snap["store"]["positions"] == pytest.approx(snap["positions"])
    assert snap["store"]["database"].split("?")[0] == url.split("?")[0]
    assert snap["store"]["stages"] == {"btc_fast": "paper", "btc_4h": "paper", "spy_daily": "paper"}


def _live_bars(journal: str) -> list[tuple[str, int]]:
    """The bars a session traded on: those after its journal turned trading on."""
    from trader.core.events import Bar
    from trader.live.journal import JournalControl, read_journal

    out, trading = [], False
    for rec in read_journal(journal).records:
        if isinstance(rec, JournalControl) and rec.kind == "trading":
            trading = bool(rec.value)
        elif isinstance(rec, Bar) and trading:
            out.append((rec.instrument_id, rec.ts))
    return out


def test_a_restart_resumes_the_replay_feed_after_the_last_consumed_bar(tmp_path):
    cfg = write_config(tmp_path, data_end="2018-08-10")
    proc, log1 = start_daemon(cfg, log_path=tmp_path / "one.log")
    wait_for_exit(proc, log1)
    snap1 = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    cfg = write_config(tmp_path, data_end="2018-08-20")  # new data arrived meanwhile
    proc, log2 = start_daemon(cfg, log_path=tmp_path / "two.log")
    wait_for_exit(proc, log2)
    snap2 = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    first, second = _live_bars(snap1["journal"]), _live_bars(snap2["journal"])
    assert first and second
    assert not set(first) & set(second)  # no bar traded twice
    last = {}
    for inst, ts in first:
        last[inst] = max(ts, last.get(inst, ts))
    assert all(ts > last.get(inst, -1) for inst, ts in second)
    assert events(log_lines(log2), "replay_feed_resumes")
