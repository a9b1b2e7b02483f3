"""The session journal: every event a live session consumed, append-only, one file per session.

Format: a sequence of records, each ``<u32 little-endian length><u32 crc32><msgpack payload>``.
The first record is a ``JournalHeader``; then kernel events (``Bar``, ``OrderUpdate``,
``Fill``, ...) in the exact order the kernel dispatched them, interleaved with
``JournalControl`` records for the session's own decisions that change what the
kernel does with later events (trading on/off, halts, model reloads), and the
``OrderRequest`` records the session handed to its gateways and its budget
decisions, the ``RegimeChanged`` of its regime engine and the ``OverlayEvent`` of
its overlays (its *outputs*, written when they happened; a replay does not
dispatch them, it compares against them).  Replaying
the records reproduces the session's orders.

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
    OverlayEvent,
    RegimeChanged,
    Timer,
)

_HEAD = struct.Struct("<II")
MAGIC_VERSION = 2


class JournalError(Exception):
    """A journal file that cannot be replayed; the message names the file and record."""


class NoHeaderError(JournalError):
    """The journal holds no complete header: its session was killed before writing one."""


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
    # Version 1 only: every fill of every earlier session, in order (read, never written).
    fills: list[Fill] = []
    # The orders still open after start-up, so a replay starts where the session did.
    open_orders: list[OrderRequest] = []
    open_filled: dict[str, float] = {}
    # Version 2: the state restored at start-up (store and reconciliation), compact
    # (``trader.live.start_state``), and the id and content hash it is stored under.
    state: dict[str, Any] = {}
    state_id: int | None = None
    state_hash: str = ""


class JournalControl(msgspec.Struct, frozen=True, tag="control"):
    """A session decision applied between two events (``kind`` says which)."""

    ts: int
    kind: str  # "trading" | "accepting" | "halt" | "reload" | "note"
    value: Any = None


Record = (JournalHeader | JournalControl | Bar | OrderUpdate | Fill | OrderRequest
          | CancelRequest | Timer | BarCorrection | GatewayHealth | FillCorrection
          | RegimeChanged | OverlayEvent)


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
    """Yield ``(offset, record)``; a torn tail yields ``(offset, JournalError)`` and stops.

    Only the last record can be torn (a crash mid-write): a record that fails its
    length or checksum with a valid record somewhere after it is corruption, and
    raises ``JournalError`` naming its byte offset.
    """
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
            later = _next_valid_record(data, pos + 1)
            if later is None:
                # Nothing valid follows: a crash mid-write of the last record, tolerated.
                yield pos, JournalError(f"{p}: record {index} at byte {pos}: {problem}")
                return
            raise JournalError(
                f"{p}: record {index} at byte {pos} is corrupt ({problem}; length field "
                f"{length}) but valid records follow (from byte {later}): the journal is "
                "damaged in the middle, not torn at the end; refusing to replay part of it")
        try:
            rec = _DECODER.decode(payload)
        except msgspec.DecodeError as exc:
            raise JournalError(f"{p}: record {index} at byte {pos}: cannot decode: {exc}") from None
        yield pos, rec
        pos = start + length
        index += 1


def _next_valid_record(data: bytes, pos: int) -> int | None:
    """The first offset at or after ``pos`` where a whole record checks out, or None.

    Only run when a record fails: a scan over the rest of the file is affordable then.
    """
    end = len(data)
    head = _HEAD.size
    while pos + head <= end:
        length, crc = _HEAD.unpack_from(data, pos)
        stop = pos + head + length
        if 0 < length and stop <= end and zlib.crc32(data[pos + head:stop]) == crc:
            try:
                _DECODER.decode(data[pos + head:stop])
                return pos
            except msgspec.DecodeError:
                pass
        pos += 1
    return None


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
        raise NoHeaderError(f"{path}: journal has no header (the session was killed before "
                            "writing it); nothing to replay")
    return ReadResult(header, records, result_torn, torn_bytes, notes)


def journal_files(folder: Path) -> tuple[list[Path], list[str]]:
    """The replayable journals in ``folder`` (by name), and a note for each one skipped.

    A file whose session died before its header was written is not unreadable
    history, just an empty session: it is skipped with a note.
    """
    found, notes = [], []
    for path in sorted(Path(folder).glob("*.journal")):
        try:
            header_of(path)
        except NoHeaderError as exc:
            notes.append(f"skipped {exc}")
            continue
        found.append(path)
    return found, notes


def header_of(path: Path) -> JournalHeader:
    """The header of a journal, reading no further than its first record."""
    with open(path, "rb") as fh:
        head = fh.read(_HEAD.size)
        length, crc = _HEAD.unpack(head) if len(head) == _HEAD.size else (0, 0)
        payload = fh.read(length)
    rec: Any = None
    if length and len(payload) == length and zlib.crc32(payload) == crc:
        try:
            rec = _DECODER.decode(payload)
        except msgspec.DecodeError:
            rec = None
    if not isinstance(rec, JournalHeader):
        raise NoHeaderError(f"{path}: journal has no header (the session was killed before "
                            "writing it); nothing to replay")
    return rec
