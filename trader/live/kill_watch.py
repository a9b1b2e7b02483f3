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

import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from pathlib import Path

import structlog

from risk.killswitch import FileBackend, KillSwitchError, KillSwitchRecord

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
        self._file = FileBackend(self.path)
        self.extra = list(extra or [])
        self._version: Hashable = None
        self._file_state = KillState(False)

    def read(self) -> KillState:
        """Engaged if any source says so; a missing or unreadable flag file reads as before."""
        version = self._file.version()
        if version != self._version:
            self._version = version
            if version is not None:
                try:
                    rec = self._file.load()
                    if rec is not None:
                        self._file_state = KillState(rec.engaged, rec.reason, rec.who)
                except KillSwitchError as exc:
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
        """Persist a change made inside the daemon, in the format ``trader kill`` writes."""
        ts = time.time_ns()
        self._file.save(KillSwitchRecord(
            state.engaged, state.reason, ts, state.who or "daemon",
            time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts / 1e9)),
        ))
        self._file_state = state
        self._version = self._file.version()
