"""Reading a user's bar file (CSV or Parquet) into the catalog's shape.

Columns are found by name, case-insensitively: ``ts`` or one of ``date``,
``datetime``, ``time``, ``timestamp``, ``open_time``; ``open``, ``high``,
``low``, ``close``; ``volume`` or ``vol`` (a file without volume gets 0).
So a Yahoo download (``Date,Open,High,Low,Close,Adj Close,Volume``) needs no
mapping; ``--columns Date=ts,Last=close`` renames what the guess gets wrong.
``adjust_close`` uses Yahoo's ``Adj Close``: every price of a row is scaled by
``adj_close / close`` (splits and dividends back-adjusted).

Every problem names the file, the row (data rows counted from 1) and the
column, and says what was expected.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from trader.core.validation import BAR_RULES
from trader.data.catalog import SCHEMA
from trader.data.timestamps import TimestampError, to_utc_ns

PRICES = ("open", "high", "low", "close")
ALIASES: dict[str, tuple[str, ...]] = {
    "ts": ("ts", "date", "datetime", "time", "timestamp", "open_time", "date_time", "gmt time",
           "local time"),
    "open": ("open", "o"),
    "high": ("high", "h"),
    "low": ("low", "l"),
    "close": ("close", "c", "last"),
    "volume": ("volume", "vol", "v", "tick_volume", "tickvol"),
    "adj_close": ("adj close", "adj_close", "adjclose", "adjusted_close"),
}


class BarImportError(ValueError):
    """A user file that cannot be imported; the message names file, row and column."""


@dataclass
class ImportResult:
    """The bars read, and what was done to them."""

    table: pa.Table
    mapping: dict[str, str]  # target column -> the file's column
    dropped_bad: list[str] = field(default_factory=list)
    adjustments: list[dict[str, object]] = field(default_factory=list)


def parse_mapping(text: str | None) -> dict[str, str]:
    """``--columns Date=ts,Open=open`` as {file column: target column}."""
    if not text:
        return {}
    out: dict[str, str] = {}
    for part in text.split(","):
        src, sep, dst = part.partition("=")
        dst = dst.strip().lower()
        if not sep or not src.strip() or dst not in ALIASES:
            raise BarImportError(f"--columns: {part.strip()!r} is not FILE_COLUMN=TARGET with "
                               f"TARGET one of {sorted(ALIASES)}")
        out[src.strip()] = dst
    return out


def resolve_columns(names: list[str], explicit: dict[str, str], path: Path) -> dict[str, str]:
    """Target column -> the file's column: the explicit mapping first, then the aliases."""
    missing_src = [s for s in explicit if s not in names]
    if missing_src:
        raise BarImportError(f"{path}: --columns names {missing_src}, but the file's columns are "
                           f"{names}")
    out = {dst: src for src, dst in explicit.items()}
    lowered = {n.strip().lower(): n for n in names}
    for target, aliases in ALIASES.items():
        if target in out:
            continue
        for a in aliases:
            if a in lowered and lowered[a] not in out.values():
                out[target] = lowered[a]
                break
    need = [t for t in ("ts", *PRICES) if t not in out]
    if need:
        raise BarImportError(f"{path}: no column for {need} among the file's columns {names}; "
                           "map them with --columns FILE_COLUMN=TARGET,... (targets: ts, open, "
                           "high, low, close, volume, adj_close)")
    return out


def read_table(path: Path) -> pa.Table:
    """A CSV (any delimiter pyarrow sniffs as ``,``/``;``/tab) or Parquet file, as read."""
    if not path.exists():
        raise BarImportError(f"{path}: file not found")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    try:
        if suffix == ".parquet":
            return pq.read_table(path)
        if suffix in (".csv", ".txt", ".csv.gz", ".tsv"):
            first = path.open("rt", errors="replace").readline() if suffix != ".csv.gz" else ","
            delim = max(",;\t", key=first.count)
            return pacsv.read_csv(path, parse_options=pacsv.ParseOptions(delimiter=delim),
                                  convert_options=pacsv.ConvertOptions(
                                      timestamp_parsers=[pacsv.ISO8601]))
    except (pa.ArrowInvalid, OSError) as exc:
        raise BarImportError(f"{path}: cannot read: {exc}") from None
    raise BarImportError(f"{path}: unsupported file type {path.suffix!r} (use .csv or .parquet)")


def _floats(table: pa.Table, col: str, target: str, path: Path) -> np.ndarray:
    arr = table.column(col)
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        values = arr.to_pylist()
        out = np.empty(len(values))
        for i, v in enumerate(values):
            try:
                out[i] = float(v) if v not in (None, "") else np.nan
            except ValueError:
                raise BarImportError(f"{path}: row {i + 1}: column {col!r} ({target}) has "
                                   f"{v!r}; expected a number") from None
        return out
    if not (pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type)
            or pa.types.is_decimal(arr.type) or pa.types.is_null(arr.type)):
        raise BarImportError(f"{path}: column {col!r} ({target}) has type {arr.type}; expected "
                           "numbers")
    return pc.cast(arr, pa.float64()).to_numpy(zero_copy_only=False)


@dataclass
class RawBars:
    """A file's bars in file order, before any check: what ``validate`` looks at."""

    ts: np.ndarray
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    adj_close: np.ndarray | None
    mapping: dict[str, str]


def read_bars(path: Path, *, columns: dict[str, str] | None = None, tz: str | None = None,
              unit: str | None = None) -> RawBars:
    """The bar columns of ``path`` as numpy arrays (UTC ns times), in file order."""
    raw = read_table(path)
    mapping = resolve_columns(raw.column_names, columns or {}, path)
    if raw.num_rows == 0:
        raise BarImportError(f"{path}: no rows (a header only)")
    try:
        ts = to_utc_ns(raw.column(mapping["ts"]), tz=tz, unit=unit, column=mapping["ts"])
    except TimestampError as exc:
        raise BarImportError(f"{path}: {exc}") from None
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
        raise BarImportError(f"{path}: column {mapping['ts']!r}: {exc}") from None
    vals = {t: _floats(raw, mapping[t], t, path) for t in PRICES}
    vol = (_floats(raw, mapping["volume"], "volume", path) if "volume" in mapping
           else np.zeros(raw.num_rows))
    adj = _floats(raw, mapping["adj_close"], "adj_close", path) if "adj_close" in mapping else None
    return RawBars(ts, vals["open"], vals["high"], vals["low"], vals["close"], vol, adj, mapping)


def import_bars(path: Path, *, columns: dict[str, str] | None = None, tz: str | None = None,
                unit: str | None = None, adjust_close: bool = False,
                on_bad_row: str = "error") -> ImportResult:
    """Read ``path`` into a catalog table: UTC open times, sorted, validated.

    ``tz`` is the zone of naive times (default UTC); ``unit`` forces the epoch
    unit of numeric times.  Bad rows (the feed's rules, duplicate times) stop
    the import with their row, or are dropped and listed with ``on_bad_row="skip"``.
    """
    raw = read_bars(path, columns=columns, tz=tz, unit=unit)
    mapping = raw.mapping
    ts = raw.ts
    vals = {"open": raw.open, "high": raw.high, "low": raw.low, "close": raw.close,
            "volume": raw.volume}
    adjustments: list[dict[str, object]] = []
    if adjust_close:
        if raw.adj_close is None:
            raise BarImportError(f"{path}: --adjusted needs an adjusted close column (e.g. 'Adj "
                                 "Close'); map it with --columns NAME=adj_close")
        factor = raw.adj_close / raw.close
        for k in PRICES:
            vals[k] = vals[k] * factor
        adjustments.append({"kind": "back_adjusted", "source": f"column {mapping['adj_close']}"})
    order = np.argsort(ts, kind="stable")
    rows = order + 1  # the file's row numbers, for messages
    ts = ts[order]
    o, h, lo, c, v = (vals[k][order] for k in (*PRICES, "volume"))
    bad = np.zeros(len(ts), dtype=bool)
    problems: list[str] = []
    for problem, rule in BAR_RULES:
        new = rule(o, h, lo, c, v) & ~bad
        for i in np.flatnonzero(new):
            problems.append(f"{path}: row {rows[i]}: {problem} (o={o[i]} h={h[i]} l={lo[i]} "
                            f"c={c[i]} v={v[i]})")
        bad |= new
    dup = np.zeros(len(ts), dtype=bool)
    dup[1:] = ts[1:] == ts[:-1]
    for i in np.flatnonzero(dup & ~bad):
        problems.append(f"{path}: row {rows[i]}: duplicate time (same as row {rows[i - 1]}, "
                        f"column {mapping['ts']!r})")
    bad |= dup
    if problems and on_bad_row == "error":
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise BarImportError(problems[0] + more)
    keep = ~bad
    table = pa.table([pa.array(ts[keep]).cast(pa.timestamp("ns", tz="UTC")), *(
        pa.array(a[keep]) for a in (o, h, lo, c, v))], schema=SCHEMA)
    if table.num_rows == 0:
        raise BarImportError(f"{path}: every row is bad")
    return ImportResult(table, mapping, problems, adjustments)
