"""``resample`` cuts history into the same windows as the kernel's aggregator: tested equal."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from trader.core.events import Bar
from trader.core.timeframes import NS, window_start
from trader.data.catalog import SCHEMA, ts_ns
from trader.data.resample import ResampleError, resample
from trader.engine.aggregator import BarAggregator

T0 = 1_704_067_200  # 2024-01-01T00:00:00Z, a Monday


def hourly(n: int, skip: set[int] = frozenset()) -> pa.Table:  # type: ignore[assignment]
    rng = np.random.default_rng(7)
    idx = [i for i in range(n) if i not in skip]
    close = 100 + np.cumsum(rng.normal(0, 1, n))
    o = close - rng.normal(0, 0.5, n)
    h = np.maximum(o, close) + 0.3
    lo = np.minimum(o, close) - 0.3
    ts = pa.array([(T0 + 3600 * i) * NS for i in idx]).cast(SCHEMA.field("ts").type)
    return pa.table([ts, *(pa.array(a[idx]) for a in (o, h, lo, close, rng.uniform(1, 9, n)))],
                    schema=SCHEMA)


def aggregated(table: pa.Table, base: int, target: int) -> list[tuple]:
    out: list[Bar] = []
    agg = BarAggregator(out.append)
    agg.add("X", base, target)
    for i, t in enumerate(ts_ns(table)):
        vals = [table.column(k)[i].as_py() for k in ("open", "high", "low", "close", "volume")]
        agg.on_bar(Bar(int(t) + base * NS, "X", base, int(t), *vals))
    return [(b.ts_open, b.open, b.high, b.low, b.close, pytest.approx(b.volume)) for b in out]


def rows(table: pa.Table) -> list[tuple]:
    return [(int(t), *(table.column(k)[i].as_py() for k in ("open", "high", "low", "close")),
             table.column("volume")[i].as_py()) for i, t in enumerate(ts_ns(table))]


@pytest.mark.parametrize("target", [4 * 3600, 86_400, 7 * 86_400])
def test_resample_equals_the_kernel_aggregator(target: int) -> None:
    # 23 days with holes (a missing morning, a missing whole day) and an unfinished last window
    table = hourly(24 * 23 - 5, skip={30, 31, 32, *range(24 * 9, 24 * 10)})
    got = rows(resample(table, 3600, target))
    want = aggregated(table, 3600, target)
    assert got == want and len(got) > 2


def test_weekly_windows_start_on_monday_and_the_last_open_window_is_dropped() -> None:
    table = hourly(24 * 10)  # Monday 1 Jan .. Wednesday 10 Jan: the second week is open
    out = resample(table, 3600, 7 * 86_400)
    assert ts_ns(out).tolist() == [T0 * NS]
    assert int(window_start(np.int64((T0 + 3 * 86_400) * NS), 7 * 86_400)) == T0 * NS


def test_a_timeframe_that_is_not_a_multiple_is_refused() -> None:
    with pytest.raises(ResampleError, match="not a multiple"):
        resample(hourly(10), 3600, 5400)
