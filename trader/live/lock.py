"""One daemon per data directory: an ``fcntl`` lock on ``<data_dir>/daemon.lock``.

The kernel releases the lock when the process dies, however it dies (kill -9
included), so a stale lock file never blocks a restart; the file only carries
the holder's PID for the refusal message.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

LOCK_FILE = "daemon.lock"


class DataDirLocked(Exception):
    """Another daemon holds the data directory."""


class DataDirLock:
    """Held for the life of a daemon; ``acquire`` refuses while another process holds it."""

    def __init__(self, data_dir: Path) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self._fd: int | None = None

    def acquire(self) -> None:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o640)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise DataDirLocked(
                f"another daemon (pid {holder}) is running on data directory "
                f"{self.path.parent}: one daemon per data directory; stop it first "
                f"(`trader status --data-dir {self.path.parent}` shows it)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None

