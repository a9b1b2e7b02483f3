"""Every command finds the same deployment from the same ``--config``, start-up failures are
one paragraph naming the cause, the report works offline and ``trader --help`` is light.

All of it through ``python -m trader.cli ...`` child processes on the shipped data.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time

import pytest
import yaml
from daemon_harness import events, log_lines, run_cli, start_daemon, write_config

UNREACHABLE = "postgresql+psycopg://x@127.0.0.1:1/db"


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for name in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)


def _one_paragraph(res: subprocess.CompletedProcess, *words: str) -> str:
    err = res.stderr.strip()
    assert "Traceback" not in res.stderr and "sqlalchemy." not in res.stderr, res.stderr
    assert err.startswith("error: "), res.stderr + res.stdout[-2000:]
    assert "\n\n" not in err and len(err.splitlines()) <= 3, err
    for w in words:
        assert w in err, (w, err)
    return err


def test_models_db_status_kill_and_run_use_the_same_store_from_the_config(tmp_path):
    cfg = write_config(tmp_path, start="2018-09-01", register=False)
    data_dir = tmp_path / "data"
    data_dir.mkdir()  # as StateDirectory= would
    elsewhere = tmp_path / "elsewhere"  # the operator's shell is not in the config's folder
    elsewhere.mkdir()

    def cli(*args: str) -> subprocess.CompletedProcess:
        return run_cli(*args, "--config", str(cfg), cwd=elsewhere)

    db = cli("db", "current")
    assert db.returncode == 0, db.stderr
    assert f"sqlite:///{data_dir / 'trader.db'}" in db.stdout

    refused = run_cli("run", "--config", str(cfg), "--mode", "paper", cwd=elsewhere)
    assert refused.returncode == 2
    _one_paragraph(refused, "btc_fast", "not registered")

    names = ("btc_fast", "btc_4h", "spy_daily")
    for name in names:
        for _ in ("candidate", "paper"):
            res = cli("models", "promote", name, "--reason", "test", "--operator", "tests",
                      "--force")
            assert res.returncode == 0, res.stderr + res.stdout
    listed = cli("models", "list")
    assert all(re.search(rf"{n}\s.*paper", listed.stdout) for n in names), listed.stdout

    proc, log_path = start_daemon(cfg, cwd=elsewhere)  # reads the stages promote wrote
    assert proc.wait(timeout=60) == 0, log_path.read_text()[-3000:]
    assert events(log_lines(log_path), "daemon_ready")

    status = cli("status", "--json")
    assert status.returncode == 0, status.stderr
    snap = json.loads(status.stdout)
    assert snap["store"]["database"] == f"sqlite:///{data_dir / 'trader.db'}"
    assert snap["store"]["stages"] == {n: "paper" for n in names}
    assert {m["name"]: m["stage"] for m in snap["models"]} == {n: "paper" for n in names}
    shown = cli("kill", "--status")
    assert shown.returncode == 0 and str(data_dir / "kill_switch.json") in shown.stdout


def test_a_bad_start_date_is_named(tmp_path):
    cfg = write_config(tmp_path, data_start="2019-13-45", register=False)
    res = run_cli("run", "--config", str(cfg), "--mode", "paper", "--create-data-dir")
    assert res.returncode == 2
    _one_paragraph(res, "data.start", "2019-13-45", str(cfg))
    assert not (tmp_path / "data").exists()  # refused before the data dir was touched
    raw = yaml.safe_load(cfg.read_text())
    raw["data"]["start"] = "2018-06-01"
    raw["daemon"]["replay"]["start"] = "yesterday"
    cfg.write_text(yaml.safe_dump(raw))
    res = run_cli("backtest", str(cfg), "--out", str(tmp_path / "out"))
    assert res.returncode == 2
    _one_paragraph(res, "daemon.replay.start", "yesterday")


def test_a_locked_sqlite_store_is_one_paragraph(tmp_path):
    cfg = write_config(tmp_path, start="2018-09-10")
    db_file = tmp_path / "data" / "trader.db"
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sqlite3, sys, time; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
         "c.execute('BEGIN EXCLUSIVE'); print('locked', flush=True); time.sleep(60)",
         str(db_file)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        t0 = time.monotonic()
        res = run_cli("run", "--config", str(cfg), "--mode", "paper", timeout=90)
        assert time.monotonic() - t0 < 60
    finally:
        holder.kill()
        holder.wait()
    assert res.returncode == 1  # transient: a restart may succeed (not RestartPrevent)
    _one_paragraph(res, str(db_file), "locked", "another process")


def test_an_unreachable_database_is_one_paragraph_for_run_db_and_models(tmp_path):
    cfg = write_config(tmp_path, start="2018-09-10", register=False)
    (tmp_path / "data").mkdir()
    env = {"TRADER_DATABASE_URL": UNREACHABLE}
    res = run_cli("run", "--config", str(cfg), "--mode", "paper", env=env)
    assert res.returncode == 1
    _one_paragraph(res, "postgresql+psycopg://x@127.0.0.1:1/db", "Connection refused")
    for args in (("db", "current"), ("db", "upgrade"), ("models", "list")):
        res = run_cli(*args, "--config", str(cfg), env=env)
        assert res.returncode == 2, (args, res.stderr)
        _one_paragraph(res, "127.0.0.1:1/db", "Connection refused")


def test_the_report_works_offline(tmp_path):
    from plotly.offline import get_plotlyjs

    cfg = write_config(tmp_path, register=False)
    out = tmp_path / "run"
    res = run_cli("backtest", str(cfg), "--out", str(out), "--no-progress")
    assert res.returncode == 0, res.stderr
    html = (out / "report.html").read_text()
    srcs = re.findall(r"<script[^>]*\ssrc=[\"']?([^\"'\s>]+)", html)
    assert not [s for s in srcs if re.match(r"(https?:)?//", s)], srcs
    bundle = get_plotlyjs()
    assert bundle[:300] in html and bundle[-300:] in html  # the whole bundle, inline
    assert '"equity"' in html and "Plotly.newPlot" in html


HEAVY = {"sqlalchemy", "alembic", "ccxt", "pandas", "pyarrow", "numpy"}


@pytest.mark.parametrize("args", [["--help"], ["run", "--help"], ["db", "--help"],
                                  ["data", "--help"], ["data", "download", "--help"]])
def test_help_imports_nothing_heavy(args):
    res = subprocess.run([sys.executable, "-X", "importtime", "-m", "trader.cli", *args],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr[-2000:]
    assert "Usage" in res.stdout
    imported = {line.split("|")[-1].strip().split(".")[0]
                for line in res.stderr.splitlines() if line.startswith("import time:")}
    assert {"typer", "trader"} <= imported  # the listing is what it claims to be
    assert imported & HEAVY == set()
