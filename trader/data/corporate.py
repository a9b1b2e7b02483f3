"""Corporate actions for equities: split and dividend back-adjustment from a factor file.

The factor file is LEAN's format (QuantConnect): one row per corporate action,
``yyyymmdd,price_factor,split_factor,reference_price``, oldest first.  For a
bar dated ``t`` the factors are those of the first row dated on or after ``t``;
the adjusted price is ``raw * price_factor * split_factor`` and the volume is
divided by the split factor (a share count), so prices and volumes line up
across a split.  The last row (factors 1, 1) covers everything after it.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

NS = 1_000_000_000


class FactorFileError(ValueError):
    """A factor file that cannot be read; the message names the file and row."""


@dataclass(frozen=True)
class FactorRow:
    """One row of a factor file."""

    date: int  # yyyymmdd
    price_factor: float
    split_factor: float
    reference_price: float


def read_factor_file(path: Path) -> list[FactorRow]:
    """The rows of a LEAN factor file, checked for order and sense."""
    rows: list[FactorRow] = []
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise FactorFileError(f"{path}: cannot read factor file: {exc}") from None
    for n, line in enumerate(lines, 1):
        if not line.strip() or line.startswith("#"):
            continue
        parts = line.split(",")
        try:
            row = FactorRow(int(parts[0]), float(parts[1]), float(parts[2]),
                            float(parts[3]) if len(parts) > 3 else 0.0)
            dt.date(row.date // 10000, row.date // 100 % 100, row.date % 100)
        except (ValueError, IndexError):
            raise FactorFileError(f"{path}: row {n}: expected yyyymmdd,price_factor,"
                                  f"split_factor,reference_price, got {line!r}") from None
        if row.price_factor <= 0 or row.split_factor <= 0:
            raise FactorFileError(f"{path}: row {n}: factors must be > 0, got {line!r}")
        if rows and row.date <= rows[-1].date:
            raise FactorFileError(f"{path}: row {n}: date {row.date} is not after "
                                  f"{rows[-1].date}")
        rows.append(row)
    if not rows:
        raise FactorFileError(f"{path}: no rows")
    return rows


def _yyyymmdd(ts_ns: np.ndarray) -> np.ndarray:
    days = ts_ns.astype("datetime64[ns]").astype("datetime64[D]")
    y = days.astype("datetime64[Y]").astype(int) + 1970
    m = days.astype("datetime64[M]").astype(int) % 12 + 1
    d = (days - days.astype("datetime64[M]")).astype(int) + 1
    return y * 10000 + m * 100 + d


def factors_for(ts_ns: np.ndarray, rows: list[FactorRow]) -> tuple[np.ndarray, np.ndarray]:
    """(price factor x split factor, split factor) for each bar time."""
    dates = np.array([r.date for r in rows])
    idx = np.searchsorted(dates, _yyyymmdd(ts_ns), side="left")
    idx = np.minimum(idx, len(rows) - 1)  # after the last row: its factors (1, 1)
    pf = np.array([r.price_factor for r in rows])[idx]
    sf = np.array([r.split_factor for r in rows])[idx]
    return pf * sf, sf


def back_adjust(table: pa.Table, rows: list[FactorRow], source: str) -> tuple[pa.Table,
                                                                          dict[str, Any]]:
    """A catalog table with back-adjusted prices and volumes, and the record of it."""
    ts = table.column("ts").cast(pa.int64()).to_numpy()
    price, split = factors_for(ts, rows)
    cols = {}
    for k in ("open", "high", "low", "close"):
        cols[k] = pa.array(table.column(k).to_numpy() * price)
    cols["volume"] = pa.array(table.column("volume").to_numpy() / split)
    out = table
    for k, arr in cols.items():
        out = out.set_column(out.schema.get_field_index(k), k, arr)
    applied = int(np.count_nonzero(np.diff(np.r_[price, 1.0]) != 0))
    record = {"kind": "back_adjusted", "source": source, "method": "lean_factor_file",
              "changes_in_range": applied}
    return out, record
