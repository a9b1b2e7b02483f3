"""The kill switch: stops all new exposure until it is explicitly released.

Its state lives in a pluggable ``KillSwitchBackend`` so that another process
can engage it: the flag file written by ``trader kill`` (``FileBackend``) is
polled by the engine; a database-row backend can implement the same three
methods.  ``MemoryBackend`` keeps replays reproducible.
"""

from __future__ import annotations

import getpass
import os
import socket
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Protocol

import msgspec

from trader.core.clock import Clock
from trader.core.events import ns_to_iso

FLAG_FILE = "kill_switch.json"


class KillSwitchError(Exception):
    """A kill switch request or flag file that cannot be used."""


class KillSwitchRecord(msgspec.Struct, frozen=True):
    """The last change of the switch: engaged or released, why, when and by whom."""

    engaged: bool
    reason: str
    ts: int
    who: str
    time: str = ""


class KillSwitchBackend(Protocol):
    """Where the switch is persisted (flag file today, a database row later)."""

    def load(self) -> KillSwitchRecord | None:
        """The stored record, or None if the switch was never set."""
        ...

    def save(self, record: KillSwitchRecord) -> None:
        """Store ``record`` so that a crash right after leaves either the old or the new one."""
        ...

    def version(self) -> Hashable:
        """A cheap token that changes whenever the stored record may have changed."""
        ...


class MemoryBackend:
    """Keeps the record in the process; for replays and tests."""

    def __init__(self, record: KillSwitchRecord | None = None) -> None:
        self._record = record
        self._version = 0

    def load(self) -> KillSwitchRecord | None:
        return self._record

    def save(self, record: KillSwitchRecord) -> None:
        self._record = record
        self._version += 1

    def version(self) -> Hashable:
        return self._version


_decoder = msgspec.json.Decoder(KillSwitchRecord)


class FileBackend:
    """A JSON flag file, replaced atomically (write a temp file, fsync, rename)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def load(self) -> KillSwitchRecord | None:
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KillSwitchError(f"{self.path}: cannot read kill switch file: {exc}") from None
        try:
            return _decoder.decode(raw)
        except msgspec.DecodeError as exc:
            raise KillSwitchError(f"{self.path}: not a valid kill switch file: {exc}") from None

    def save(self, record: KillSwitchRecord) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = msgspec.json.format(msgspec.json.encode(record), indent=2) + b"\n"
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        try:  # make the rename itself durable
            dfd = os.open(self.path.parent, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)

    def version(self) -> Hashable:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)


def default_state_dir() -> Path:
    """Runtime state directory: ``$TRADER_STATE_DIR`` or ``./var``."""
    return Path(os.environ.get("TRADER_STATE_DIR") or "var")


def default_flag_path(state_dir: str | Path | None = None) -> Path:
    return Path(state_dir if state_dir is not None else default_state_dir()) / FLAG_FILE


def operator() -> str:
    """``user@host`` of whoever runs this process (recorded with each change)."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry in some containers
        user = str(os.getuid())
    return f"{user}@{socket.gethostname()}"


class _WallClock:
    def now(self) -> int:
        return time.time_ns()


Listener = Callable[[KillSwitchRecord], None]


class KillSwitch:
    """Engaged by API, by the CLI (through the backend) or by the drawdown halt.

    Listeners hear every change, whether it came from this process
    (``engage``/``release``) or from another one (``poll``).
    """

    def __init__(self, backend: KillSwitchBackend | None = None, clock: Clock | None = None,
                 who: str = "api") -> None:
        self.backend: KillSwitchBackend = backend if backend is not None else MemoryBackend()
        self.clock = clock or _WallClock()
        self.who = who
        self.listeners: list[Listener] = []
        self._version = self.backend.version()
        self.record = self.backend.load()
        self.engaged = bool(self.record and self.record.engaged)

    def engage(self, reason: str, who: str | None = None) -> KillSwitchRecord:
        """Engage (or re-engage with a new reason); stays engaged until ``release``."""
        return self._set(True, reason, who)

    def release(self, reason: str, who: str | None = None) -> KillSwitchRecord:
        return self._set(False, reason, who)

    def _set(self, engaged: bool, reason: str, who: str | None) -> KillSwitchRecord:
        reason = (reason or "").strip()
        if not reason:
            verb = "engaging" if engaged else "releasing"
            raise KillSwitchError(f"a reason is required for {verb} the kill switch")
        ts = self.clock.now()
        record = KillSwitchRecord(engaged, reason, ts, who or self.who, ns_to_iso(ts))
        self.backend.save(record)
        self._version = self.backend.version()
        changed = engaged != self.engaged
        self.record = record
        self.engaged = engaged
        if changed:
            self._notify(record)
        return record

    def poll(self) -> bool:
        """Pick up a change made by another process; True if the switch flipped."""
        version = self.backend.version()
        if version == self._version:
            return False
        self._version = version
        record = self.backend.load()
        if record is None:
            # A vanished flag file is not a release: only an explicit release is.
            return False
        self.record = record
        if record.engaged == self.engaged:
            return False
        self.engaged = record.engaged
        self._notify(record)
        return True

    def _notify(self, record: KillSwitchRecord) -> None:
        for listener in self.listeners:
            listener(record)


def backend_from_config(kind: str, path: Path | None) -> KillSwitchBackend:
    if kind == "file":
        return FileBackend(path if path is not None else default_flag_path())
    return MemoryBackend()
