"""The daemon's status snapshot: written by the daemon, read by ``trader status``.

The daemon rewrites ``<data_dir>/status.json`` atomically (temp file + rename)
every ``status_interval`` and on every state change, so a reader never sees a
half-written file, and the last snapshot stays readable after the daemon has
stopped.  Whether the daemon is running is decided from its pid *and* the age of
the heartbeat, so a crashed daemon is not reported as running.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STATUS_FILE = "status.json"


@dataclass
class Snapshot:
    """Everything ``trader status`` shows."""

    mode: str
    state: str  # starting | warming_up | ready | trading | stopping | stopped | failed
    pid: int
    session_id: str
    config_name: str
    updated_wall_ns: int
    heartbeat_interval: float
    trading: bool = False
    kill_switch: bool = False
    risk_state: str = ""
    nav: float | None = None
    cash: float | None = None
    positions: dict[str, float] = field(default_factory=dict)
    open_orders: list[dict[str, Any]] = field(default_factory=list)
    last_bar: dict[str, dict[str, Any]] = field(default_factory=dict)
    stale_feeds: list[str] = field(default_factory=list)
    # gateway -> its last GatewayHealth: {"state", "reason", "ts"}
    feeds: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Why the market data source stopped delivering bars ("" while it delivers).
    feed_failed: str = ""
    models: list[dict[str, Any]] = field(default_factory=list)
    # regime -> {"state", "since" (the bar close it changed at)}; and the budget
    # multipliers in force by model (1 for the ones not listed); empty without regimes
    regimes: dict[str, dict[str, Any]] = field(default_factory=dict)
    budget_multipliers: dict[str, float] = field(default_factory=dict)
    orders_submitted: int = 0
    fills: int = 0
    events: int = 0
    queue_dropped: int = 0
    journal: str = ""


def write_snapshot(data_dir: Path, snap: Snapshot) -> None:
    """Atomically replace the status file."""
    data_dir.mkdir(parents=True, exist_ok=True)
    target = data_dir / STATUS_FILE
    tmp = data_dir / f".{STATUS_FILE}.{os.getpid()}.tmp"
    with open(tmp, "w") as fh:
        json.dump(asdict(snap), fh, indent=1, sort_keys=True, default=str)
    os.replace(tmp, target)


def read_snapshot(data_dir: Path) -> dict[str, Any] | None:
    """The last snapshot, or None if no daemon ever ran with this data dir."""
    path = data_dir / STATUS_FILE
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: unreadable status file: {exc}") from None


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by someone else
    return True


def liveness(snap: dict[str, Any], now_ns: int | None = None) -> tuple[bool, float]:
    """(running, heartbeat age in seconds): running needs a live pid and a fresh heartbeat."""
    now = time.time_ns() if now_ns is None else now_ns
    age = (now - int(snap.get("updated_wall_ns", 0))) / 1e9
    interval = float(snap.get("heartbeat_interval", 1.0))
    ended = snap.get("state") in ("stopped", "failed")
    running = not ended and _pid_alive(int(snap.get("pid", 0))) and age <= max(5.0, 5 * interval)
    return running, age
