"""Historical bar feed: Parquet and CSV files streamed in batches and merged by time.

Files hold bars labelled by their *open* time (``ts, open, high, low, close,
volume``); the feed converts once, here, to kernel bars stamped with their
close time.  Memory is bounded by the batch size, not by the length of history.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import chain, repeat
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import structlog

from trader.core.events import Bar, DataEnded, ns_to_iso
from trader.core.timeframes import NS, parse_timeframe
from trader.core.validation import BAR_RULES
from trader.data.arrays import column_numpy
from trader.data.layout import (
    BATCH_ROWS,
    BYTES_PER_ROW,
    LARGE_ROW_GROUP,
    MIN_FILE_BATCH_ROWS,
    OBJECT_ROWS,
    ROW_GROUP_ROWS,
)
from trader.data.timestamps import TimestampError, to_utc_ns

log = structlog.get_logger(__name__)

COLUMNS = ("ts", "open", "high", "low", "close", "volume")


class DataError(Exception):
    """A bar file that cannot be used; the message names file, row and problem."""


@dataclass(frozen=True)
class FeedSpec:
    instrument_id: str
    path: Path
    timeframe: int  # seconds


class BarColumns(NamedTuple):
    """A batch of one file's bars as columns: close and open times (ns), OHLCV."""

    ts: np.ndarray
    ts_open: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray


@dataclass
class FeedStats:
    """What reading one file found: rows, skipped bad rows, long gaps, the last bar kept."""

    rows: int = 0
    skipped: int = 0
    skipped_by_reason: dict[str, int] = field(default_factory=dict)
    gaps: list[tuple[int, int]] = field(default_factory=list)  # (last open, next open), ns
    last_open: int | None = None  # open time of the last bar replayed


def long_gap_ns(timeframe_s: int) -> int:
    """A hole between two bars that no trading calendar explains: longer than eight days
    (the longest market closures, such as NYSE after 9/11, last a week) and than 20 bars."""
    return max(8 * 86_400 * NS, 20 * timeframe_s * NS)


def _ts_to_ns(col: pa.ChunkedArray | pa.Array, path: Path, row0: int = 0) -> np.ndarray:
    """The ``ts`` column as int64 UTC ns; ``DataError`` names the file and first bad row."""
    try:
        return to_utc_ns(col, row0=row0)
    except TimestampError as exc:
        raise DataError(f"{path}: {exc}") from None


class BarFile:
    """Streams one instrument's file as validated kernel bars."""

    def __init__(
        self,
        spec: FeedSpec,
        *,
        on_bad_row: str = "error",
        batch_size: int = BATCH_ROWS,
        start_ns: int | None = None,
        end_ns: int | None = None,
    ) -> None:
        self.spec = spec
        self.on_bad_row = on_bad_row
        self.batch_size = batch_size
        self.start_ns = start_ns
        self.end_ns = end_ns
        self.stats = FeedStats()
        self._last_ts: int | None = None
        if not spec.path.exists():
            raise DataError(f"{spec.path}: data file not found (instrument {spec.instrument_id})")

    def _batches(self) -> Iterator[pa.RecordBatch]:
        path = self.spec.path
        suffix = path.suffix.lower()
        try:
            if suffix == ".parquet":
                # pre_buffer would cache every row group read until the file is closed.
                pf = pq.ParquetFile(path, pre_buffer=False)
                missing = [c for c in COLUMNS if c not in pf.schema_arrow.names]
                if missing:
                    raise DataError(f"{path}: missing columns {missing}; expected {list(COLUMNS)}")
                yield from pf.iter_batches(batch_size=self.batch_size, columns=list(COLUMNS))
            elif suffix in (".csv", ".gz"):
                convert = pacsv.ConvertOptions(
                    column_types={c: pa.float64() for c in COLUMNS[1:]},
                    include_columns=list(COLUMNS),
                    timestamp_parsers=[pacsv.ISO8601],
                )
                reader = pacsv.open_csv(
                    path,
                    read_options=pacsv.ReadOptions(block_size=1 << 20),
                    convert_options=convert,
                )
                yield from reader
            else:
                raise DataError(f"{path}: unsupported file type {suffix!r} (use .parquet or .csv)")
        except (pa.ArrowInvalid, pa.ArrowKeyError, OSError) as exc:
            raise DataError(f"{path}: cannot read bars: {exc}") from None

    def total_rows(self) -> int | None:
        """Rows the replay will see (for the progress bar); None when only reading tells."""
        if self.spec.path.suffix.lower() != ".parquet":
            return None
        pf = pq.ParquetFile(self.spec.path)
        if self.start_ns is None and self.end_ns is None:
            return pf.metadata.num_rows
        # A start or end date: count the rows inside it, one column, batch by batch.
        n = 0
        for batch in pf.iter_batches(batch_size=self.batch_size, columns=["ts"]):
            ts = _ts_to_ns(batch.column(0), self.spec.path)
            keep = np.ones(len(ts), dtype=bool)
            if self.start_ns is not None:
                keep &= ts >= self.start_ns
            if self.end_ns is not None:
                keep &= ts < self.end_ns
            n += int(keep.sum())
        return n

    def largest_row_group(self) -> int | None:
        """Rows of the file's largest Parquet row group (None for CSV or an empty file)."""
        if self.spec.path.suffix.lower() != ".parquet":
            return None
        try:
            meta = pq.ParquetFile(self.spec.path).metadata
        except (pa.ArrowInvalid, OSError):
            return None  # reading the bars names the file and the problem
        return max((meta.row_group(i).num_rows for i in range(meta.num_row_groups)),
                   default=None)

    def _bad(self, row: int, problem: str) -> None:
        msg = f"{self.spec.path}: row {row}: {problem}"
        if self.on_bad_row == "error":
            raise DataError(msg)
        self.stats.skipped += 1
        key = problem.split(" (")[0]
        self.stats.skipped_by_reason[key] = self.stats.skipped_by_reason.get(key, 0) + 1
        log.warning("bad_bar_skipped", file=str(self.spec.path), row=row, problem=problem)

    def columns(self) -> Iterator[BarColumns]:
        """The file's validated bars a batch at a time, as columns (no batch is empty)."""
        spec = self.spec
        tf_ns = spec.timeframe * NS
        row0 = 0
        gap_ns = long_gap_ns(spec.timeframe)
        prev_open: int | None = None
        for batch in self._batches():
            n = batch.num_rows
            ts = _ts_to_ns(batch.column(0), spec.path, row0)
            o, h, lo, c, v = (
                column_numpy(batch.column(i)).astype(np.float64, copy=False)
                for i in range(1, 6)
            )
            bad = self._validate(ts, o, h, lo, c, v, row0)
            keep = ~bad
            if self.start_ns is not None:
                keep &= ts >= self.start_ns
            if self.end_ns is not None:
                keep &= ts < self.end_ns
            self.stats.rows += n
            row0 += n
            arrays = (ts, o, h, lo, c, v) if keep.all() else tuple(
                a[keep] for a in (ts, o, h, lo, c, v)
            )
            t_open = arrays[0]
            if len(t_open):
                prev_open = self._note_gaps(t_open, prev_open, gap_ns)
                yield BarColumns(t_open + tf_ns, t_open, *arrays[1:])
        if row0 == 0:
            raise DataError(f"{spec.path}: no bars (the file has a header but no rows); "
                            f"instrument {spec.instrument_id} needs at least one")

    def bars(self, cols: BarColumns, start: int = 0, stop: int | None = None) -> Iterator[Bar]:
        """Rows ``start:stop`` of a batch of this file's columns as kernel bars."""
        k = len(cols.ts) if stop is None else stop
        if k - start <= OBJECT_ROWS:
            return self._bars(cols, start, k)
        # A few thousand rows at a time become Python numbers (see OBJECT_ROWS).
        return chain.from_iterable(self._bars(cols, s, min(s + OBJECT_ROWS, k))
                                   for s in range(start, k, OBJECT_ROWS))

    def _bars(self, cols: BarColumns, start: int, stop: int) -> Iterator[Bar]:
        n = stop - start
        # Bars are built by ``map`` straight into the Bar constructor: no Python frame
        # per row, which is most of what a feed costs.
        return map(
            Bar, cols.ts[start:stop].tolist(), repeat(self.spec.instrument_id, n),
            repeat(self.spec.timeframe, n), cols.ts_open[start:stop].tolist(),
            *(a[start:stop].tolist() for a in (cols.open, cols.high, cols.low, cols.close,
                                                cols.volume)),
        )

    def __iter__(self) -> Iterator[Bar]:
        for cols in self.columns():
            yield from self.bars(cols)

    def _note_gaps(self, t_open: np.ndarray, prev: int | None, gap_ns: int) -> int:
        """Record holes longer than ``gap_ns`` (vectorised; warned once each)."""
        edges = t_open if prev is None else np.concatenate(([prev], t_open))
        for i in np.flatnonzero(np.diff(edges) > gap_ns):
            a, b = int(edges[i]), int(edges[i + 1])
            self.stats.gaps.append((a, b))
            log.warning("data_gap", file=str(self.spec.path), instrument=self.spec.instrument_id,
                        after=ns_to_iso(a), next=ns_to_iso(b), days=round((b - a) / 86_400e9, 1))
        last = int(t_open[-1])
        self.stats.last_open = last
        return last

    def _validate(self, ts, o, h, lo, c, v, row0: int) -> np.ndarray:
        """Mark bad rows of a batch; report each (first) problem per row."""
        n = len(ts)
        bad = np.zeros(n, dtype=bool)
        # The same rules every gateway's bars pass (trader.core.validation), on whole arrays.
        for problem, rule in BAR_RULES:
            new = rule(o, h, lo, c, v) & ~bad
            if new.any():
                for i in np.flatnonzero(new):
                    vals = f"o={o[i]} h={h[i]} l={lo[i]} c={c[i]} v={v[i]}"
                    self._bad(row0 + int(i) + 1, f"{problem} ({vals})")
                bad |= new
        # Time order, including across batch boundaries, among the rows still kept.
        last = self._last_ts
        good_idx = np.flatnonzero(~bad)
        if len(good_idx):
            gts = ts[good_idx]
            prev = np.empty_like(gts)
            prev[0] = last if last is not None else np.iinfo(np.int64).min
            prev[1:] = gts[:-1]
            disorder = gts <= prev
            if disorder.any():
                # Walk the (rare) problem rows in order so each is judged against
                # the last row actually kept.
                for j, i in enumerate(good_idx):
                    t = int(ts[i])
                    if last is not None and t <= last:
                        kind = "duplicate ts" if t == last else "out-of-order ts"
                        self._bad(row0 + int(i) + 1, f"{kind} ({t} after {last})")
                        bad[i] = True
                    else:
                        last = t
                    del j
            else:
                last = int(gts[-1])
        self._last_ts = last
        return bad


class HistoricalFeed:
    """Merges many instruments' bars by close time; ties broken by instrument id.

    With ``announce_end`` (a backtest sets it), an instrument whose bars end while others
    go on gets a ``DataEnded`` event, just before the first later bar of another one.
    """

    def __init__(self, files: list[BarFile], *, announce_end: bool = False) -> None:
        self.files = sorted(files, key=lambda f: f.spec.instrument_id)
        self.announce_end = announce_end

    def total_rows(self) -> int | None:
        totals = [f.total_rows() for f in self.files]
        return None if any(t is None for t in totals) else sum(totals)  # type: ignore[arg-type]

    @property
    def stats(self) -> dict[str, FeedStats]:
        return {f.spec.instrument_id: f.stats for f in self.files}

    def __iter__(self) -> Iterator[Bar | DataEnded]:
        if len(self.files) == 1:
            return iter(self.files[0])
        self._warn_large_row_groups()
        return self._merged()

    def _warn_large_row_groups(self) -> None:
        """Name each merged file whose row groups make it hold far more than a batch."""
        for f in self.files:
            rows = f.largest_row_group()
            if rows is not None and rows > LARGE_ROW_GROUP:
                log.warning("data_row_groups_large", file=str(f.spec.path),
                            instrument=f.spec.instrument_id, row_group_rows=rows,
                            memory_mb=round(rows * BYTES_PER_ROW / 1e6),
                            hint="a replay of several files holds one decoded row group of "
                                 "each; rewrite the file with smaller row groups (trader data "
                                 "import does, or pyarrow's row_group_size="
                                 f"{ROW_GROUP_ROWS})")

    def _merged(self) -> Iterator[Bar | DataEnded]:
        """All files' bars in (close time, instrument id) order, merged a block at a time.

        Each step takes, from every file, the rows up to a horizon no file can go back
        before (the earliest of the files' block ends), and orders that block with one
        sort of its columns; the bars themselves are only yielded, so a bar costs the
        same whether one file or a hundred are merged (a heap merge pays log n Python
        comparisons and two generator hops per bar).
        """
        # Rows taken from one file per step: the block (about 16k bars however many
        # files) bounds the bars alive at once; the per-file work of a step (a search
        # and a few slices) stays small next to the bars it yields.
        step = max(64, 16_384 // len(self.files))
        cursors = [c for c in (_Cursor(f, rank) for rank, f in enumerate(self.files))
                   if c.advance()]
        ended: list[DataEnded] = []  # files that ran out, oldest last bar first
        while cursors:
            horizon = min(int(c.cols.ts[min(c.pos + step, c.size) - 1]) for c in cursors)
            blocks: list[list[Bar]] = []
            stamps: list[np.ndarray] = []
            ranks: list[np.ndarray] = []
            for c in cursors:
                stop = c.pos + int(np.searchsorted(c.cols.ts[c.pos:], horizon, side="right"))
                if stop > c.pos:
                    blocks.append(list(c.file.bars(c.cols, c.pos, stop)))
                    stamps.append(c.cols.ts[c.pos:stop])
                    ranks.append(np.full(stop - c.pos, c.rank))
                    c.pos = stop
            if len(blocks) == 1:
                block = blocks[0]
            else:
                # Ties in close time go by instrument id: the files' ranks.
                order = np.lexsort((np.concatenate(ranks), np.concatenate(stamps)))
                every = [b for part in blocks for b in part]
                block = [every[i] for i in order.tolist()]
            if ended:
                for bar in block:
                    while ended and ended[0].ts < bar.ts:
                        yield ended.pop(0)
                    yield bar
            else:
                yield from block
            running = []
            for c in cursors:
                if c.pos < c.size or c.advance():
                    running.append(c)
                elif self.announce_end:
                    # Announced just before the first later bar of another file.
                    ended.append(c.last)
                    ended.sort(key=lambda e: (e.ts, e.instrument_id))
            cursors = running


class _Cursor:
    """Where the merge is in one file: its current batch of columns and the next row."""

    def __init__(self, file: BarFile, rank: int) -> None:
        self.file = file
        self.rank = rank
        self._batches = file.columns()
        self.cols: BarColumns
        self.size = 0
        self.pos = 0

    def advance(self) -> bool:
        """Load the file's next batch; False when the file has no more bars."""
        cols = next(self._batches, None)
        if cols is None:
            return False
        self.cols = cols
        self.size = len(cols.ts)
        self.pos = 0
        return True

    @property
    def last(self) -> DataEnded:
        """The end of the file's data: its last bar's close time and close."""
        i = self.size - 1
        return DataEnded(int(self.cols.ts[i]), self.file.spec.instrument_id,
                         float(self.cols.close[i]))


def parse_time(text: str | None) -> int | None:
    if text is None:
        return None
    import datetime as dt

    try:
        d = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise DataError(f"{text!r} is not a valid date/time ({exc}); expected ISO 8601 such "
                        "as 2019-01-01 or 2019-01-01T00:00:00Z") from None
    if d.tzinfo is None:
        d = d.replace(tzinfo=dt.UTC)
    return int(d.timestamp()) * NS


def file_batch_rows(batch_size: int, files: int) -> int:
    """Rows each of ``files`` files reads at a time when they share ``batch_size``."""
    return min(batch_size, max(MIN_FILE_BATCH_ROWS, batch_size // max(files, 1)))


def feed_from_config(cfg) -> HistoricalFeed:  # cfg: trader.engine.config.AppConfig
    files = []
    with_data = [inst for inst in cfg.instruments if inst.data is not None]
    # A replay holds a batch of every file at once: the files share the batch size.
    batch = file_batch_rows(cfg.data.batch_size, len(with_data))
    for inst in with_data:
        if inst.data.path is None:
            raise DataError(getattr(inst.data, "_missing", None) or
                            f"instrument {inst.id}: catalog entry {inst.data.catalog!r} was "
                            "not resolved to a file (load the config with load_config)")
        searched = getattr(inst.data, "_searched", ())
        if searched and not inst.data.path.exists():
            raise DataError(
                f"instrument {inst.id}: data file {inst.data.path.name!r} not found; a relative "
                f"data path is looked for next to the config, one folder up, then in the "
                f"working directory: {', '.join(str(p) for p in searched)}")
        spec = FeedSpec(inst.id, inst.data.path, parse_timeframe(inst.data.timeframe))
        files.append(
            BarFile(
                spec,
                on_bad_row=cfg.data.on_bad_row,
                batch_size=batch,
                start_ns=parse_time(cfg.data.start),
                end_ns=parse_time(cfg.data.end),
            )
        )
    if not files:
        raise DataError("no instrument has a data file configured (instruments[*].data.path)")
    return HistoricalFeed(files)
