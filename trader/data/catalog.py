"""The Parquet catalog: one file of bars per (venue, symbol, timeframe), with a manifest.

Layout::

    <root>/<venue>/<symbol>/<timeframe>.parquet       ts (timestamp[ns, UTC], bar open), OHLCV
    <root>/<venue>/<symbol>/<timeframe>.json          the manifest

The manifest says where the bars came from (``source``), the first and last
bar, the row count, the adjustments applied (corporate actions) and the
SHA-256 of the Parquet file, so a changed or truncated file is noticed.
Bars are labelled by their *open* time, as the historical feed expects, so an
entry is replayed by naming it in a config (``data: {catalog: venue/symbol}``).
Writes go to a temporary file that replaces the old one: an interrupted write
leaves the previous version whole.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from trader.core.events import Bar, ns_to_iso
from trader.core.timeframes import format_timeframe, parse_timeframe
from trader.data.layout import ROW_GROUP_ROWS

DEFAULT_ROOT = Path("data/catalog")
SCHEMA = pa.schema([("ts", pa.timestamp("ns", tz="UTC")), ("open", pa.float64()),
                    ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()),
                    ("volume", pa.float64())])
_UNSAFE = re.compile(r"[^A-Za-z0-9._=-]")


class CatalogError(ValueError):
    """A catalog entry that does not exist, or a name that cannot be one."""


def safe_name(text: str) -> str:
    """A symbol or venue as a folder name: ``BTC/USDT`` -> ``BTC-USDT``."""
    name = _UNSAFE.sub("-", text.strip())
    if not name.strip(".-"):
        raise CatalogError(f"{text!r} cannot name a catalog entry")
    return name


@dataclass(frozen=True)
class EntryKey:
    """Which series: venue, symbol and bar length (seconds)."""

    venue: str
    symbol: str
    timeframe: int

    @property
    def name(self) -> str:
        """``venue/symbol/timeframe``, the way commands print and accept an entry."""
        return f"{self.venue}/{self.symbol}/{format_timeframe(self.timeframe)}"


@dataclass
class Manifest:
    """What an entry holds and where it came from."""

    venue: str
    symbol: str
    timeframe: str
    source: str
    rows: int
    first: str | None
    last: str | None
    sha256: str
    adjustments: list[dict[str, Any]] = field(default_factory=list)
    venue_symbol: str | None = None  # the venue's own name of the symbol (e.g. BTC/USDT)


def table_from_bars(bars: list[Bar]) -> pa.Table:
    """Kernel bars (close-stamped) as a catalog table labelled by open time."""
    return pa.table([
        pa.array([b.ts_open for b in bars], pa.int64()).cast(SCHEMA.field("ts").type),
        *(pa.array([getattr(b, k) for b in bars], pa.float64())
          for k in ("open", "high", "low", "close", "volume")),
    ], schema=SCHEMA)


def ts_ns(table: pa.Table) -> np.ndarray:
    """A catalog table's ``ts`` as int64 ns."""
    return table.column("ts").cast(pa.int64()).to_numpy()


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def manifest_of_file(path: Path) -> Manifest | None:
    """The manifest beside a catalog file; None for a file that is not in a catalog."""
    side = Path(path).with_suffix(".json")
    if Path(path).suffix != ".parquet" or not side.exists():
        return None
    try:
        return Manifest(**json.loads(side.read_text()))
    except (ValueError, TypeError):
        return None


class Catalog:
    """Bars on disk under one root folder."""

    def __init__(self, root: Path | str = DEFAULT_ROOT) -> None:
        self.root = Path(root)

    # -- naming ---------------------------------------------------------------------------
    def key(self, venue: str, symbol: str, timeframe: str | int) -> EntryKey:
        """The entry of ``symbol`` at ``venue`` with bars of ``timeframe``."""
        return EntryKey(safe_name(venue), safe_name(symbol), parse_timeframe(timeframe))

    def path(self, key: EntryKey) -> Path:
        """The Parquet file of an entry (it may not exist yet)."""
        return self.root / key.venue / key.symbol / f"{format_timeframe(key.timeframe)}.parquet"

    def manifest_path(self, key: EntryKey) -> Path:
        return self.path(key).with_suffix(".json")

    def find(self, name: str, timeframe: str | int | None = None) -> EntryKey:
        """The entry a config names: ``venue/symbol[/timeframe]`` or a bare ``symbol`` that
        only one venue holds; the timeframe may come separately."""
        parts = name.strip("/").split("/")
        tf = parse_timeframe(parts.pop()) if len(parts) == 3 else None
        if tf is None and timeframe is not None:
            tf = parse_timeframe(timeframe)
        if len(parts) == 2:
            matches = [k for k in self.entries() if (k.venue, k.symbol) == (parts[0], parts[1])]
        elif len(parts) == 1:
            matches = [k for k in self.entries() if k.symbol == safe_name(parts[0])]
        else:
            raise CatalogError(f"catalog entry {name!r}: expected venue/symbol[/timeframe] "
                               "or a symbol")
        if tf is not None:
            matches = [k for k in matches if k.timeframe == tf]
        if not matches:
            known = ", ".join(k.name for k in self.entries()) or "none"
            raise CatalogError(f"catalog {self.root}: no entry {name!r}"
                               f"{f' with timeframe {format_timeframe(tf)}' if tf else ''} "
                               f"(entries: {known}); fill it with `trader data download` "
                               "or `trader data import`")
        if len({(k.venue, k.symbol, k.timeframe) for k in matches}) > 1:
            raise CatalogError(f"catalog entry {name!r} is ambiguous: "
                               f"{', '.join(k.name for k in matches)}; name venue/symbol/timeframe")
        return matches[0]

    def entries(self) -> list[EntryKey]:
        """Every entry, sorted by name."""
        out = []
        for p in sorted(self.root.glob("*/*/*.parquet")):
            try:
                out.append(EntryKey(p.parent.parent.name, p.parent.name,
                                    parse_timeframe(p.stem)))
            except ValueError:
                continue  # not a catalog file
        return out

    # -- reading --------------------------------------------------------------------------
    def exists(self, key: EntryKey) -> bool:
        return self.path(key).exists()

    def read(self, key: EntryKey) -> pa.Table:
        """The whole series (empty table if the entry does not exist)."""
        path = self.path(key)
        if not path.exists():
            return SCHEMA.empty_table()
        return pq.read_table(path).select(SCHEMA.names).cast(SCHEMA)

    def manifest(self, key: EntryKey) -> Manifest | None:
        path = self.manifest_path(key)
        if not path.exists():
            return None
        return Manifest(**json.loads(path.read_text()))

    def last_open(self, key: EntryKey) -> int | None:
        """Open time (ns) of the last stored bar: where a download resumes."""
        path = self.path(key)
        if not path.exists():
            return None
        ts = pq.read_table(path, columns=["ts"]).column("ts")
        return int(ts.cast(pa.int64())[-1].as_py()) if len(ts) else None

    def iter_keys(self) -> Iterator[tuple[EntryKey, Manifest | None]]:
        for k in self.entries():
            yield k, self.manifest(k)

    # -- writing --------------------------------------------------------------------------
    def write(self, key: EntryKey, table: pa.Table, *, source: str,
              adjustments: list[dict[str, Any]] | None = None,
              venue_symbol: str | None = None) -> Manifest:
        """Replace an entry with ``table`` (sorted by ``ts``, no duplicates), atomically."""
        table = table.select(SCHEMA.names).cast(SCHEMA)
        ts = ts_ns(table)
        if len(ts) > 1 and not (np.diff(ts) > 0).all():
            raise CatalogError(f"{key.name}: bars must be strictly increasing in time")
        path = self.path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd", row_group_size=ROW_GROUP_ROWS)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        old = self.manifest(key)
        man = Manifest(
            venue=key.venue, symbol=key.symbol, timeframe=format_timeframe(key.timeframe),
            source=source, rows=len(ts),
            first=ns_to_iso(int(ts[0])) if len(ts) else None,
            last=ns_to_iso(int(ts[-1])) if len(ts) else None,
            sha256=_sha256(path),
            adjustments=adjustments if adjustments is not None else
            (old.adjustments if old is not None else []),
            venue_symbol=venue_symbol or (old.venue_symbol if old is not None else None),
        )
        mtmp = self.manifest_path(key).with_suffix(".json.tmp")
        mtmp.write_text(json.dumps(asdict(man), indent=2) + "\n")
        os.replace(mtmp, self.manifest_path(key))
        return man

    def append(self, key: EntryKey, new: pa.Table, *, source: str,
               venue_symbol: str | None = None) -> int:
        """Add the bars of ``new`` that open after the last stored bar; return how many."""
        new = new.select(SCHEMA.names).cast(SCHEMA)
        last = self.last_open(key)
        if last is not None:
            keep = ts_ns(new) > last
            new = new.filter(pa.array(keep))
        if new.num_rows == 0:
            return 0
        old = self.read(key)
        self.write(key, pa.concat_tables([old, new]) if old.num_rows else new, source=source,
                   venue_symbol=venue_symbol)
        return new.num_rows

    def verify(self, key: EntryKey) -> str | None:
        """Why the entry's file does not match its manifest, or None if it does."""
        man = self.manifest(key)
        if man is None:
            return f"{key.name}: no manifest"
        digest = _sha256(self.path(key))
        if digest != man.sha256:
            return f"{key.name}: file changed since its manifest was written (sha256 differs)"
        return None
