"""The data directory of a deployment: one daemon per directory, never created by accident,
and data paths in a config that resolve the same way wherever the config is copied.

Each test runs ``python -m trader.cli run`` as a child process, as systemd would.
"""

from __future__ import annotations

import configparser
import signal
import time
from pathlib import Path

import pytest
import yaml
from daemon_harness import (
    REPO,
    events,
    log_lines,
    register_stages,
    run_cli,
    start_daemon,
    write_config,
)

from trader.live.status import read_snapshot


def _wait_trading(data_dir: Path, pid: int, timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    snap: dict = {}
    while time.monotonic() < deadline:
        snap = read_snapshot(data_dir) or {}
        if snap.get("pid") == pid and snap.get("state") == "trading":
            return snap
        time.sleep(0.05)
    raise AssertionError(f"daemon {pid} not trading within {timeout}s: {snap}")


def _clean(stderr: str) -> None:
    assert "Traceback" not in stderr and "sqlalchemy." not in stderr, stderr


def _restart_prevent_status(unit: str) -> int:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string((REPO / "systemd" / unit).read_text())
    return int(parser["Service"]["RestartPreventExitStatus"])


def test_a_second_daemon_on_the_same_data_dir_is_refused_until_the_first_is_gone(tmp_path):
    cfg = write_config(tmp_path, exit_at_end=False)  # stays up after the file ends
    data_dir = tmp_path / "data"
    first, log1 = start_daemon(cfg, log_path=tmp_path / "first.log")
    try:
        _wait_trading(data_dir, first.pid)
        second = run_cli("run", "--config", str(cfg), "--mode", "paper", timeout=60)
        assert second.returncode == 2, second.stderr
        assert f"pid {first.pid}" in second.stderr and str(data_dir) in second.stderr
        _clean(second.stderr)
        assert read_snapshot(data_dir)["pid"] == first.pid  # the refused one wrote nothing
        assert first.poll() is None
        first.send_signal(signal.SIGKILL)  # a crash: the lock goes with the process
        first.wait(timeout=10)
        third, log3 = start_daemon(cfg, log_path=tmp_path / "third.log")
        try:
            _wait_trading(data_dir, third.pid)
            third.send_signal(signal.SIGTERM)  # a clean exit frees the directory too
            assert third.wait(timeout=30) == 0, log3.read_text()[-3000:]
        finally:
            if third.poll() is None:
                third.kill()
        fourth, log4 = start_daemon(cfg, log_path=tmp_path / "fourth.log")
        try:
            _wait_trading(data_dir, fourth.pid)
            fourth.send_signal(signal.SIGTERM)
            assert fourth.wait(timeout=30) == 0, log4.read_text()[-3000:]
        finally:
            if fourth.poll() is None:
                fourth.kill()
    finally:
        if first.poll() is None:
            first.kill()


def test_a_missing_data_dir_is_an_error_unless_created_on_purpose(tmp_path):
    cfg = write_config(tmp_path, start="2018-09-10", register=False)
    assert not Path("/nonexistent").exists()
    for missing in (Path("/nonexistent/dir/x"), tmp_path / "nope" / "x"):
        res = run_cli("run", "--config", str(cfg), "--mode", "paper", "--data-dir", str(missing))
        assert res.returncode == 2, res.stderr
        assert f"data directory {missing} does not exist" in res.stderr
        assert "--create-data-dir" in res.stderr
        _clean(res.stderr)
        assert not missing.parent.exists()  # nothing created, not even the parent
    # A relative daemon.data_dir is relative to the working directory: the message shows
    # which absolute directory that was, for the daemon and for every other command.
    raw = yaml.safe_load(cfg.read_text())
    raw["daemon"]["data_dir"] = "var/x"
    rel = tmp_path / "relative.yaml"
    rel.write_text(yaml.safe_dump(raw, sort_keys=False))
    for args in (("run", "--mode", "paper"), ("kill", "--status"), ("models", "list")):
        res = run_cli(*args, "--config", str(rel), cwd=tmp_path)
        assert res.returncode == 2, (args, res.stderr)
        assert f"relative to the working directory: {tmp_path / 'var' / 'x'}" in res.stderr
        _clean(res.stderr)
    assert not (tmp_path / "var").exists()
    new = tmp_path / "new" / "deployment"
    res = run_cli("run", "--config", str(cfg), "--mode", "paper", "--data-dir", str(new),
                  "--create-data-dir")
    # Created on purpose; this deployment's registry has no stages yet, so it refuses (2)
    # and names the command that fixes it (stages come from the registry, not the YAML).
    assert new.is_dir() and (new / "trader.db").exists()
    assert res.returncode == 2 and "not registered in the lifecycle registry" in res.stderr
    _clean(res.stderr)
    register_stages(cfg, new)
    res = run_cli("run", "--config", str(cfg), "--mode", "paper", "--data-dir", str(new))
    assert res.returncode == 0, res.stderr + res.stdout[-3000:]


def _etc_copy(tmp_path: Path) -> Path:
    """config/paper.yaml copied to another folder (as /etc/trader/paper.yaml), data paths
    untouched (relative); only the replay runs at full speed and stops at the end."""
    etc = tmp_path / "etc" / "trader"
    etc.mkdir(parents=True)
    cfg = yaml.safe_load((REPO / "config" / "paper.yaml").read_text())
    assert [i["data"]["path"] for i in cfg["instruments"]] == ["data/btcusd_1h.parquet",
                                                               "data/spy_1d.parquet"]
    cfg["daemon"]["replay"].update(speed="max", exit_at_end=True, start="2019-09-01")
    cfg["daemon"]["status_interval"] = 0.2
    path = etc / "paper.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return path


def test_a_config_copied_elsewhere_finds_its_data_from_the_working_directory(tmp_path):
    etc_cfg = _etc_copy(tmp_path)
    # Neither next to the copy nor one folder up: only WorkingDirectory=/opt/trader has data/.
    assert not (etc_cfg.parent / "data").exists() and not (etc_cfg.parent.parent / "data").exists()
    var = tmp_path / "var" / "lib" / "trader"
    register_stages(etc_cfg, var)
    proc, log_path = start_daemon(etc_cfg, extra_args=["--data-dir", str(var)], cwd=REPO)
    try:
        assert proc.wait(timeout=90) == 0, log_path.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
    lines = log_lines(log_path)
    assert events(lines, "warmup_done") and events(lines, "replay_exhausted_stopping")
    assert read_snapshot(var)["last_bar"]["BTCUSD"]["ts"] >= "2019-10"

    # A data path that exists nowhere: one paragraph naming it, exit = RestartPreventExitStatus.
    cfg = yaml.safe_load(etc_cfg.read_text())
    cfg["instruments"][0]["data"]["path"] = "data/btcusd_missing.parquet"
    etc_cfg.write_text(yaml.safe_dump(cfg, sort_keys=False))
    res = run_cli("run", "--config", str(etc_cfg), "--mode", "paper", "--data-dir", str(var),
                  cwd=REPO)
    for unit in ("trader.service", "trader@.service"):
        assert res.returncode == _restart_prevent_status(unit), res.stderr
    assert res.returncode != 0
    _clean(res.stderr)
    err = res.stderr.strip()
    assert err.startswith("error: ") and "\n\n" not in err
    assert "btcusd_missing.parquet" in err and "BTCUSD" in err
    assert str(REPO / "data" / "btcusd_missing.parquet") in err  # where it looked


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    # The deployment comes from the options, not from the environment of the test run.
    for name in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL"):
        monkeypatch.delenv(name, raising=False)
