"""Watches the persistent kill switch for the daemon (engaged by ``trader kill`` elsewhere).

The kill switch inside the kernel is an in-memory copy: the daemon polls the
persistent one (the risk package's JSON flag file, and the store's row when a
store is open) on a wall-clock timer, and turns each change into a journaled
control record, so a replay of the journal sees the change at the same point
in the event stream without reading any file.  The in-memory switch engaged
by the risk engine itself (drawdown halt) is written back, so it survives a
restart.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)

FLAG_FILE = "kill_switch.json"  # the risk package's file name (``trader kill``)


@dataclass(frozen=True)
class KillState:
    engaged: bool
    reason: str = ""
    who: str = ""


class KillSwitchWatch:
    """Reads the flag file (cheaply: only when its stat changes) and optional extra sources."""

    def __init__(self, path: Path, extra: list[Callable[[], tuple[bool, str]]] | None = None
                 ) -> None:
        self.path = Path(path)
        self.extra = list(extra or [])
        self._version: tuple[int, int, int] | None = None
        self._file_state = KillState(False)

    def read(self) -> KillState:
        """Engaged if any source says so; a missing or unreadable flag file reads as before."""
        try:
            st = self.path.stat()
            version = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            version = None
        if version != self._version:
            self._version = version
            if version is not None:
                try:
                    raw = json.loads(self.path.read_bytes())
                    self._file_state = KillState(bool(raw.get("engaged")),
                                                 str(raw.get("reason", "")),
                                                 str(raw.get("who", "")))
                except (OSError, ValueError, AttributeError) as exc:
                    # `trader kill` replaces the file atomically; anything else is logged and
                    # the last good reading kept (a spurious halt would cancel and flatten).
                    log.error("kill_switch_file_unreadable", path=str(self.path), error=str(exc))
        state = self._file_state
        for source in self.extra:
            engaged, reason = source()
            if engaged and not state.engaged:
                state = KillState(True, reason, "store")
        return state

    def write(self, state: KillState) -> None:
        """Persist a change made inside the daemon (atomic replace, like ``trader kill``)."""
        ts = time.time_ns()
        record = {"engaged": state.engaged, "reason": state.reason, "ts": ts,
                  "who": state.who or "daemon",
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts / 1e9))}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "w") as fh:
                json.dump(record, fh, indent=2)
                fh.write("\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self._file_state = state
        try:
            st = self.path.stat()
            self._version = (st.st_mtime_ns, st.st_size, st.st_ino)
        except FileNotFoundError:
            self._version = None
