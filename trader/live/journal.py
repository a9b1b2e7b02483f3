"""The session journal: every event a live session consumed, append-only, one file per session.

Format: a sequence of records, each ``<u32 little-endian length><u32 crc32><msgpack payload>``.
The first record is a ``JournalHeader``; then kernel events (``Bar``, ``OrderUpdate``,
``Fill``, ...) in the exact order the kernel dispatched them, interleaved with
``JournalControl`` records for the session's own decisions that change what the
kernel does with later events (trading on/off, halts, model reloads), and the
``OrderRequest`` records the session handed to its gateways (its *outputs*,
written before the order left; a replay does not dispatch them, it compares
against them).  Replaying the records reproduces the session's orders.

Durability policy:

* records are buffered in memory and written to the OS (``write``) when an order
  is about to leave (the router's write-ahead hook calls ``flush``), when the
  buffer passes ``buffer_bytes``, and on the daemon's periodic flush
  (``flush_interval``, default 0.2 s).  A crash of the *process* therefore never
  loses an event that led to an order, and at most ``flush_interval`` of others;
* ``fsync`` runs every ``fsync_interval`` seconds (default 1 s) and at shutdown,
  which bounds what a crash of the *machine* can lose.

A torn last record (crash mid-write) is detected by its length or checksum and
ignored by the reader, which reports it; a bad record elsewhere is an error.
"""

from __future__ import annotations

import os
import struct
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from trader.core.events import (
    Bar,
    BarCorrection,
    CancelRequest,
    Fill,
    FillCorrection,
    GatewayHealth,
    OrderRequest,
    OrderUpdate,
    Timer,
)

_HEAD = struct.Struct("<II")
MAGIC_VERSION = 1


class JournalError(Exception):
    """A journal file that cannot be replayed; the message names the file and record."""


class JournalHeader(msgspec.Struct, frozen=True, tag="header"):
    """Describes the session so a replay can rebuild the same starting point."""

    version: int
    session_id: str
    mode: str
    config_name: str
    started_wall_ns: int
    id_prefix: str
    start_seq: int = 0
    # Gateways whose fills the kernel simulated itself (replay simulates them again);
    # events from every other gateway are in the journal and are replayed as recorded.
    simulated_gateways: tuple[str, ...] = ("sim",)
    initial_cash: float | None = None
    positions: dict[str, float] = {}
    models: list[dict[str, Any]] = []
    # The whole validated config (it holds no secrets: those come from the environment),
    # so a journal replays without the original file.
    config: dict[str, Any] = {}
    # State restored at start-up (from the store, and by reconciliation): every fill so
    # far, in order, and the orders still open, so a replay starts where the session did.
    fills: list[Fill] = []
    open_orders: list[OrderRequest] = []
    open_filled: dict[str, float] = {}


class JournalControl(msgspec.Struct, frozen=True, tag="control"):
    """A session decision applied between two events (``kind`` says which)."""

    ts: int
    kind: str  # "trading" | "accepting" | "halt" | "reload" | "note"
    value: Any = None


Record = (JournalHeader | JournalControl | Bar | OrderUpdate | Fill | OrderRequest
          | CancelRequest | Timer | BarCorrection | GatewayHealth | FillCorrection)


@dataclass
class ReadResult:
    header: JournalHeader
    records: list[Any]
    torn_tail: bool = False
    torn_bytes: int = 0
    notes: list[str] = field(default_factory=list)


class JournalWriter:
    """Appends records to one session file; see the module doc for the flush policy."""

    def __init__(self, path: Path, header: JournalHeader, *, buffer_bytes: int = 1 << 16,
                 fsync_interval: float = 1.0) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # O_APPEND|O_EXCL: a session never reuses (or clobbers) another's file.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_APPEND, 0o640)
        self._enc = msgspec.msgpack.Encoder()
        self._buf = bytearray()
        self._buffer_bytes = buffer_bytes
        self._fsync_interval = fsync_interval
        self._last_fsync = time.monotonic()
        self.records = 0
        self.bytes_written = 0
        self.append(header)
        self.flush(sync=True)

    def append(self, record: Any) -> None:
        """Buffer one record (an event or a control record)."""
        payload = self._enc.encode(record)
        buf = self._buf
        buf += _HEAD.pack(len(payload), zlib.crc32(payload))
        buf += payload
        self.records += 1
        if len(buf) >= self._buffer_bytes:
            self.flush()

    # The kernel's consumer hook.
    __call__ = append

    def control(self, ts: int, kind: str, value: Any = None) -> None:
        self.append(JournalControl(ts, kind, value))

    def flush(self, sync: bool = False) -> None:
        """Hand buffered records to the OS (``write``); with ``sync`` also ``fsync``.

        The order path calls this without ``sync``: an fsync can stall for
        milliseconds, so it runs from the periodic task (``sync_due``/``sync``),
        off the event loop.
        """
        if self._fd < 0:
            return
        if self._buf:
            with memoryview(self._buf) as whole:
                done = 0
                while done < len(whole):
                    done += os.write(self._fd, whole[done:])
            self.bytes_written += len(self._buf)
            self._buf.clear()
        if sync:
            self.sync()

    def sync_due(self) -> bool:
        return self._fd >= 0 and time.monotonic() - self._last_fsync >= self._fsync_interval

    def sync(self) -> None:
        """fsync what was written so far (safe to call from a worker thread)."""
        fd = self._fd
        if fd >= 0:
            self._last_fsync = time.monotonic()
            os.fsync(fd)

    def close(self) -> None:
        if self._fd >= 0:
            self.flush(sync=True)
            os.close(self._fd)
            self._fd = -1


_DECODER = msgspec.msgpack.Decoder(Record)


def iter_records(path: Path) -> Iterator[tuple[int, Any] | tuple[int, JournalError]]:
    """Yield ``(offset, record)``; a torn tail yields ``(offset, JournalError)`` and stops."""
    p = Path(path)
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise JournalError(f"{p}: cannot read journal: {exc.strerror or exc}") from None
    pos, end, index = 0, len(data), 0
    while pos < end:
        if end - pos < _HEAD.size:
            yield pos, JournalError(f"{p}: torn record header at byte {pos} (record {index})")
            return
        length, crc = _HEAD.unpack_from(data, pos)
        start = pos + _HEAD.size
        payload = data[start:start + length]
        if len(payload) < length or zlib.crc32(payload) != crc:
            problem = "truncated" if len(payload) < length else "checksum mismatch"
            err = JournalError(f"{p}: record {index} at byte {pos}: {problem}")
            if start + length >= end:
                yield pos, err  # the last record: a crash mid-write, tolerated
                return
            raise err
        try:
            rec = _DECODER.decode(payload)
        except msgspec.DecodeError as exc:
            raise JournalError(f"{p}: record {index} at byte {pos}: cannot decode: {exc}") from None
        yield pos, rec
        pos = start + length
        index += 1


def read_journal(path: Path) -> ReadResult:
    """Read a whole journal; the header must come first, a torn last record is dropped."""
    records: list[Any] = []
    header: JournalHeader | None = None
    result_torn, torn_bytes, notes = False, 0, []
    size = Path(path).stat().st_size if Path(path).exists() else 0
    for offset, rec in iter_records(path):
        if isinstance(rec, JournalError):
            result_torn, torn_bytes = True, size - offset
            notes.append(str(rec))
            break
        if header is None:
            if not isinstance(rec, JournalHeader):
                raise JournalError(f"{path}: first record is {type(rec).__name__}, not a header")
            if rec.version > MAGIC_VERSION:
                raise JournalError(f"{path}: journal version {rec.version} is newer than "
                                   f"this program understands ({MAGIC_VERSION})")
            header = rec
            continue
        records.append(rec)
    if header is None:
        raise JournalError(f"{path}: empty journal (no header record)")
    return ReadResult(header, records, result_torn, torn_bytes, notes)
