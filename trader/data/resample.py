"""Resampling bars to a higher timeframe with the kernel aggregator's windows.

``trader.core.timeframes.window_start`` cuts time into windows (UTC-aligned,
weeks from Monday) for both this function and ``trader.engine.aggregator``;
the window's bar takes the first open, the highest high, the lowest low, the
last close and the summed volume of the bars inside.  As in the kernel, a
window is published only once closed: the last window is dropped unless its
last bar ends it.  Windows without a bar yield no bar.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from trader.core.timeframes import NS, window_start
from trader.data.catalog import SCHEMA, ts_ns


class ResampleError(ValueError):
    """A target timeframe that cannot be built from the source bars."""


def resample(table: pa.Table, base_s: int, target_s: int) -> pa.Table:
    """Bars of ``target_s`` seconds built from ``table``'s bars of ``base_s`` seconds."""
    if target_s % base_s:
        raise ResampleError(f"timeframe {target_s}s is not a multiple of the base timeframe "
                            f"{base_s}s")
    ts = ts_ns(table)
    if len(ts) == 0:
        return SCHEMA.empty_table()
    o, h, lo, c, v = (table.column(k).to_numpy() for k in ("open", "high", "low", "close",
                                                            "volume"))
    win = window_start(ts, target_s)
    starts = np.flatnonzero(np.r_[True, win[1:] != win[:-1]])
    ends = np.r_[starts[1:], len(ts)] - 1
    cols = [win[starts], o[starts], np.maximum.reduceat(h, starts),
            np.minimum.reduceat(lo, starts), c[ends], np.add.reduceat(v, starts)]
    # the last window is closed only if its last base bar ends where the window ends
    if ts[-1] + base_s * NS < win[-1] + target_s * NS:
        cols = [a[:-1] for a in cols]
    return pa.table([pa.array(cols[0]).cast(SCHEMA.field("ts").type),
                     *(pa.array(a, pa.float64()) for a in cols[1:])], schema=SCHEMA)
