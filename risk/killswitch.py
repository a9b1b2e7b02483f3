"""The kill switch: stops all new exposure until it is explicitly released.

This is the only kill-switch module.  The switch's state lives in a pluggable
``KillSwitchBackend``: the JSON flag file ``trader kill`` writes
(``FileBackend``), a row in the store's database (``DatabaseBackend``, which
every process sharing the database sees) or memory (``MemoryBackend``, so
replays stay reproducible).  ``KillSwitch`` is the switch itself; a trading
daemon keeps an in-memory one inside its kernel and feeds it from the
persistent ones through ``KillSwitchWatch``, which reads the flag file and the
database row and writes a halt the engine decided back to both.

Fail-safe rules: only an explicit release releases.  A flag file that vanished
while the database says engaged reads as engaged; a flag file that cannot be
parsed refuses a start (``KillSwitchWatch.read_at_start``) and, later, keeps the
last good reading.
"""

from __future__ import annotations

import getpass
import os
import socket
import tempfile
import time
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any, Protocol

import msgspec

from trader.core.clock import Clock
from trader.core.events import ns_to_iso


def log() -> Any:
    """This module's logger, imported when a line is logged: the store reads kill switch
    records for `trader status`, which never logs from here and need not load structlog."""
    import structlog

    return structlog.get_logger(__name__)

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


def flag_path(data_dir: str | Path, configured: str | Path | None = None) -> Path:
    """The flag file of a deployment: ``risk.kill_switch.path`` if set, else in its data dir."""
    return Path(configured) if configured is not None else Path(data_dir) / FLAG_FILE


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
    """The backend a replay's engine reads (``risk.kill_switch.backend``)."""
    if kind == "file":
        return FileBackend(path if path is not None else Path(FLAG_FILE))
    return MemoryBackend()


class KillSwitchRows(Protocol):
    """Storage of kill switch rows (``trader.store.Store`` implements it)."""

    def load_kill_switch(self, scope: str) -> KillSwitchRecord | None: ...

    def save_kill_switch(self, record: KillSwitchRecord, scope: str) -> None: ...


class DatabaseBackend:
    """The switch as a database row: every process sharing the database sees one truth."""

    def __init__(self, rows: KillSwitchRows, scope: str = "default") -> None:
        self.rows = rows
        self.scope = scope

    def load(self) -> KillSwitchRecord | None:
        return self.rows.load_kill_switch(self.scope)

    def save(self, record: KillSwitchRecord) -> None:
        self.rows.save_kill_switch(record, self.scope)

    def version(self) -> Hashable:
        rec = self.load()
        return None if rec is None else (rec.engaged, rec.ts, rec.reason)


def latest(*records: KillSwitchRecord | None) -> KillSwitchRecord | None:
    """The most recent of several readings of one switch (file and database)."""
    found = [r for r in records if r is not None]
    return max(found, key=lambda r: r.ts) if found else None


class KillSwitchWatch:
    """The persistent switch of a deployment: its flag file and, when open, its database row.

    The most recent record of the two is the truth, so a release written to both
    by ``trader kill --release`` releases, while a flag file that was deleted (or
    never written back) cannot release what the database holds engaged.
    """

    def __init__(self, path: Path, database: DatabaseBackend | None = None) -> None:
        self.path = Path(path)
        self.file = FileBackend(self.path)
        self.database = database
        self._file_version: Hashable = None
        self._file_record: KillSwitchRecord | None = None
        self._db_version: Hashable = None
        self._db_record: KillSwitchRecord | None = None

    def read_at_start(self) -> KillSwitchRecord | None:
        """The switch before a start; a corrupt flag file raises ``KillSwitchError``.

        A start must not trade on a switch it cannot read.  When the flag file is
        missing but the database holds the switch engaged, the file is written
        back so that ``trader kill --status`` and the daemon agree.
        """
        self._file_record = self.file.load()  # raises on a corrupt file
        self._file_version = self.file.version()
        self._read_database()
        record = latest(self._file_record, self._db_record)
        if record is not None and record.engaged and self._file_record is None:
            self.file.save(record)
            self._file_record, self._file_version = record, self.file.version()
        return record

    def read(self) -> KillSwitchRecord | None:
        """The switch now (cheap: files are re-read only when their stat changes).

        An unreadable file keeps the last good reading: `trader kill` replaces it
        atomically, and a spurious halt would cancel and flatten.
        """
        version = self.file.version()
        if version != self._file_version:
            self._file_version = version
            if version is not None:
                try:
                    self._file_record = self.file.load() or self._file_record
                except KillSwitchError as exc:
                    log().error("kill_switch_file_unreadable", path=str(self.path), error=str(exc))
        self._read_database()
        return latest(self._file_record, self._db_record)

    def _read_database(self) -> None:
        if self.database is None:
            return
        try:
            self._db_record = self.database.load()
        except Exception as exc:  # a database outage must not stop the watch
            log().error("kill_switch_database_unreadable", error=str(exc))

    def write(self, record: KillSwitchRecord) -> None:
        """Persist a change made inside the daemon (a halt) to the file, then the database."""
        self.file.save(record)
        self._file_record, self._file_version = record, self.file.version()
        if self.database is not None:
            self.database.save(record)
            self._db_record = record
