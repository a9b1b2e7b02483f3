"""A timestamp column of any common shape as int64 UTC nanoseconds.

Bar files label bars with a timestamp column (naive or with a time zone), a
date (``date32``, as pyarrow reads ``2020-01-01`` in a CSV), ISO-8601 text
with or without an offset, or epoch numbers in seconds, milliseconds,
microseconds or nanoseconds.  The feed and ``trader data import`` both read
through ``to_utc_ns`` so a file that imports also replays.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from trader.data.arrays import column_numpy

# pyarrow.compute builds a wrapper for each of its hundreds of functions when imported:
# it is imported where a column needs it (time zones, text, epochs, nulls), so a replay
# of timestamp columns in UTC (the shipped data, what `trader data import` writes) starts
# without it.

NS = 1_000_000_000

UNITS = {"s": NS, "ms": 1_000_000, "us": 1_000, "ns": 1}
_EXPECTED = ("expected a timestamp, a date, ISO-8601 text (2020-01-01, 2020-01-01T09:30:00, "
             "optionally with an offset such as Z or +01:00) or epoch s/ms/us/ns")


class TimestampError(ValueError):
    """A timestamp that cannot be read; the message names the row and quotes the value."""


def epoch_unit(top: float | None) -> str:
    """The epoch unit a column's largest value implies (data after 1973 and before 5138)."""
    if top is None or abs(top) < 10**11:
        return "s"
    if abs(top) < 10**14:
        return "ms"
    if abs(top) < 10**17:
        return "us"
    return "ns"


def to_utc_ns(col: pa.ChunkedArray | pa.Array, *, row0: int = 0, tz: str | None = None,
              unit: str | None = None, column: str = "ts") -> np.ndarray:
    """``col`` as int64 UTC ns.  Naive times are in ``tz`` (default UTC); dates are
    00:00 UTC labels whatever ``tz`` says (a daily bar's date is not an instant).
    ``TimestampError`` names the first unreadable row (counted from ``row0 + 1``)."""
    t = col.type
    if pa.types.is_timestamp(t):
        if t.tz is None and tz not in (None, "UTC"):
            import pyarrow.compute as pc

            col = pc.assume_timezone(col, tz)
        if col.type.unit == "ns":
            # Stored as UTC ns already (a zone only labels them): the values themselves,
            # without a cast (a cast is a compute function, and imports pyarrow.compute).
            out = _as_int64(col)
        else:
            out = col.cast(pa.timestamp("ns", tz=col.type.tz)).cast(pa.int64())
    elif pa.types.is_date(t):
        out = col.cast(pa.timestamp("ns")).cast(pa.int64())
    elif pa.types.is_integer(t) or pa.types.is_floating(t):
        out = _epoch(col, unit)
    elif pa.types.is_string(t) or pa.types.is_large_string(t):
        out = _text(col, row0, tz, column)
    else:
        raise TimestampError(f"column {column!r} has type {t}; {_EXPECTED}")
    if out.null_count:
        import pyarrow.compute as pc

        first = int(np.flatnonzero(pc.is_null(out).to_numpy(zero_copy_only=False))[0])
        raise TimestampError(f"row {row0 + first + 1}: missing {column} "
                             f"(column {column!r} is empty)")
    return column_numpy(out)


def _as_int64(col: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """A column of 64-bit values (timestamp[ns]) read as int64, sharing its memory."""
    if isinstance(col, pa.ChunkedArray):
        return pa.chunked_array([c.view(pa.int64()) for c in col.chunks], pa.int64())
    return col.view(pa.int64())


def _epoch(col: pa.ChunkedArray | pa.Array, unit: str | None) -> pa.Array:
    import pyarrow.compute as pc

    if unit is not None and unit not in UNITS:
        raise TimestampError(f"unknown epoch unit {unit!r} (use one of {sorted(UNITS)})")
    u = unit or epoch_unit(pc.max(pc.abs(col)).as_py())
    if pa.types.is_floating(col.type):
        # epoch seconds with a fraction (e.g. 1577836800.5): scale before rounding
        return pc.round(pc.multiply(col, float(UNITS[u]))).cast(pa.int64())
    out = col.cast(pa.int64())
    return out if u == "ns" else pc.multiply(out, UNITS[u])


def _text(col: pa.ChunkedArray | pa.Array, row0: int, tz: str | None,
          column: str) -> pa.Array:
    import pyarrow.compute as pc

    # the common case (ISO without offset) parses in one vectorised pass
    try:
        naive = pc.cast(col, pa.timestamp("ns"))
    except pa.ArrowInvalid:
        naive = None
    if naive is not None:
        if tz not in (None, "UTC"):
            naive = pc.assume_timezone(naive, tz)
        return naive.cast(pa.int64())
    try:  # every row has an offset (Z, +01:00): an instant, whatever ``tz`` says
        return pc.cast(col, pa.timestamp("ns", tz="UTC")).cast(pa.int64())
    except pa.ArrowInvalid:
        pass
    # mixed or broken: row by row, so the message names the right row and value
    values = col.to_pylist()
    out: list[int | None] = []
    for i, text in enumerate(values):
        if text is None:
            out.append(None)
            continue
        out.append(_one(text, tz, row0 + i + 1, column))
    return pa.array(out, pa.int64())


def _one(text: str, tz: str | None, row: int, column: str) -> int:
    import pyarrow.compute as pc

    for target in (pa.timestamp("ns"), pa.timestamp("ns", tz="UTC")):
        try:
            v = pc.cast(pa.array([text]), target)
        except pa.ArrowInvalid:
            continue
        if target.tz is None and tz not in (None, "UTC"):
            v = pc.assume_timezone(v, tz)
        return int(v.cast(pa.int64())[0].as_py())
    raise TimestampError(f"row {row}: unreadable {column} {text!r} (column {column!r}; "
                         f"{_EXPECTED})")
