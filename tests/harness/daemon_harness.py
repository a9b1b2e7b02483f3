"""Helpers for the daemon tests: configs on the shipped data, a NOTIFY_SOCKET, subprocesses."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "data"


def write_config(
    tmp: Path,
    *,
    speed: float | str = "max",
    start: str = "2018-08-01",
    data_start: str = "2018-06-01",
    data_end: str | None = "2018-09-15",
    exit_at_end: bool = True,
    models: list[dict[str, Any]] | None = None,
    daemon: dict[str, Any] | None = None,
    name: str = "test-session",
    register: bool = True,
    gateways: dict[str, Any] | None = None,
) -> Path:
    """A paper config on BTC hourly + SPY daily from the shipped data."""
    if models is None:
        models = [
            {"name": "btc_fast", "model": "SmaCross", "stage": "paper", "budget": 0.3,
             "instruments": ["BTCUSD"], "timeframe": "1h", "params": {"fast": 3, "slow": 8}},
            {"name": "btc_4h", "model": "SmaCross", "stage": "paper", "budget": 0.3,
             "instruments": ["BTCUSD"], "timeframe": "4h",
             "params": {"fast": 3, "slow": 10, "allow_short": True}},
            {"name": "spy_daily", "model": "SmaCross", "stage": "paper", "budget": 0.3,
             "instruments": ["SPY"], "timeframe": "1d", "params": {"fast": 3, "slow": 12}},
        ]
    d = {"data_dir": str(tmp / "data"),
         "replay": {"speed": speed, "start": start, "exit_at_end": exit_at_end},
         "status_interval": 0.2, "shutdown_timeout": 10}
    d.update(daemon or {})
    cfg = {
        "name": name,
        "portfolio": {"initial_cash": 100000},
        "data": {"start": data_start, **({"end": data_end} if data_end else {})},
        "execution": {"slippage_bps": 2, "commission_bps": 1, "fee_per_order": 1.0},
        "instruments": [
            {"id": "BTCUSD", "symbol": "BTC/USD", "venue": "COINBASE", "tick_size": 0.01,
             "lot_step": 0.0001, "min_quantity": 0.0001, "asset_class": "crypto",
             "data": {"path": str(DATA / "btcusd_1h.parquet"), "timeframe": "1h"}},
            {"id": "SPY", "symbol": "SPY", "venue": "ARCA", "tick_size": 0.01, "lot_step": 1,
             "min_quantity": 1, "asset_class": "equity",
             "data": {"path": str(DATA / "spy_1d.parquet"), "timeframe": "1d"}},
        ],
        "models": models,
        "daemon": d,
        **({"gateways": gateways} if gateways else {}),
    }
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    if register:
        register_stages(path)
    return path


def register_stages(config: Path, data_dir: Path | None = None) -> None:
    """Put each model of ``config`` in the deployment's lifecycle registry at the stage its
    YAML names (forced, on record): sessions take stages from the registry only."""
    from models.lifecycle import STAGES
    from trader.engine.config import ConfigError, load_config, resolve_data_dir
    from trader.store import open_store
    from trader.store.lifecycle import Lifecycle

    try:
        cfg = load_config(config)
    except ConfigError:
        return  # a test of a bad config: the command under test reports it
    d = resolve_data_dir(cfg, data_dir)
    d.mkdir(parents=True, exist_ok=True)
    store = open_store(cfg.store, d)
    try:
        lc = Lifecycle(store)
        for m in cfg.models:
            while STAGES.index(lc.stage(m.name)) < STAGES.index(m.stage):
                lc.promote(m.name, "test set-up", "tests", confirm=True, force=True)
    finally:
        store.close()


class NotifyListener:
    """A Unix datagram socket standing in for systemd's NOTIFY_SOCKET."""

    def __init__(self, abstract: bool = False) -> None:
        self.messages: list[tuple[float, str]] = []
        self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            name = f"trader-test-{os.getpid()}-{time.monotonic_ns()}"
            self._sock.bind("\0" + name)
            self.address = "@" + name
        else:
            # AF_UNIX paths are limited to ~108 bytes: keep it short, not under tmp_path.
            self._dir = tempfile.mkdtemp(prefix="ntf", dir="/tmp")
            self.address = os.path.join(self._dir, "notify")
            self._sock.bind(self.address)
        self._sock.settimeout(0.1)
        self._stop = False
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self._stop:
            try:
                data = self._sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                return
            self.messages.append((time.monotonic(), data.decode()))

    def wait_for(self, assignment: str, timeout: float) -> float:
        """Wait until a datagram carries ``assignment``; return its arrival time."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t, msg in list(self.messages):
                if assignment in msg.split("\n"):
                    return t
            time.sleep(0.01)
        raise AssertionError(f"no {assignment!r} within {timeout}s; got {self.messages}")

    def count(self, assignment: str, since: float = 0.0) -> int:
        return sum(1 for t, m in list(self.messages) if t >= since and assignment in m.split("\n"))

    def close(self) -> None:
        self._stop = True
        self._sock.close()
        self._thread.join(timeout=1)


def start_daemon(config: Path, *, mode: str = "paper", extra_args: list[str] | None = None,
                 env: dict[str, str] | None = None, log_path: Path | None = None,
                 cwd: Path | None = None, stderr_path: Path | None = None
                 ) -> tuple[subprocess.Popen, Path]:
    """Start ``trader run`` as a child process (in ``cwd``, default the config's folder);
    stdout (the JSON log) and stderr go to a log file, stderr to ``stderr_path`` if given."""
    log_path = log_path or config.parent / "daemon.log"
    full_env = {k: v for k, v in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    full_env.update(env or {})
    fh = open(log_path, "wb")
    err = open(stderr_path, "wb") if stderr_path is not None else None
    proc = subprocess.Popen(
        [sys.executable, "-m", "trader.cli", "run", "--config", str(config), "--mode", mode,
         *(extra_args or [])],
        stdout=fh, stderr=err or subprocess.STDOUT, env=full_env, cwd=str(cwd or config.parent),
    )
    fh.close()
    if err is not None:
        err.close()
    return proc, log_path


def wait_for_exit(proc: subprocess.Popen, log_path: Path, timeout: float = 60) -> None:
    """Wait for a daemon that stops by itself; kill it if it does not; it must exit 0."""
    try:
        code = proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert code == 0, log_path.read_text()[-4000:]


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None,
            timeout: float = 60) -> subprocess.CompletedProcess:
    full_env = dict(os.environ)
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "trader.cli", *args], capture_output=True,
                          text=True, env=full_env, cwd=str(cwd) if cwd else None, timeout=timeout)


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The daemon's JSON log lines (any non-JSON line fails the test: logs must be JSON)."""
    out = []
    text = path.read_text()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]  # a line still being written by a running daemon
    for line in lines:
        if line.strip():
            out.append(json.loads(line))
    return out


def events(lines: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [x for x in lines if x.get("event") == name]
