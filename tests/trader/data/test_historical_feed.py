"""Historical feed: Parquet and CSV, merging, batching, and bad rows."""

from __future__ import annotations

import math
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from trader.core.events import DataEnded
from trader.data.feed import BarFile, DataError, FeedSpec, HistoricalFeed

NS = 1_000_000_000
HOUR = 3600
T0 = 1_704_067_200  # 2024-01-01T00:00:00Z in seconds


def rows(n: int, start: int = T0, step: int = HOUR, base: float = 100.0) -> list[tuple]:
    return [(start + i * step, base + i, base + i + 1, base + i - 1, base + i + 0.5, 10.0 + i)
            for i in range(n)]


def write_parquet(path: Path, data: list[tuple]) -> Path:
    cols = list(zip(*data, strict=True)) if data else [[]] * 6
    table = pa.table({
        "ts": pa.array([c * NS for c in cols[0]], pa.timestamp("ns", tz="UTC")),
        **{name: pa.array(cols[i + 1], pa.float64())
           for i, name in enumerate(("open", "high", "low", "close", "volume"))},
    })
    pq.write_table(table, path)
    return path


def write_csv(path: Path, data: list[tuple]) -> Path:
    import datetime as dt

    lines = ["ts,open,high,low,close,volume"]
    for ts, *vals in data:
        stamp = dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        lines.append(",".join([stamp, *("nan" if isinstance(v, float) and math.isnan(v)
                                        else repr(v) for v in vals)]))
    path.write_text("\n".join(lines) + "\n")
    return path


def bar_file(path: Path, inst: str = "X", **kw) -> BarFile:
    return BarFile(FeedSpec(inst, path, HOUR), **kw)


@pytest.mark.parametrize("writer", [write_parquet, write_csv])
def test_reads_bars_stamped_with_their_close_time(tmp_path: Path, writer) -> None:
    data = rows(5)
    path = writer(tmp_path / ("x.parquet" if writer is write_parquet else "x.csv"), data)
    bars = list(bar_file(path))
    assert [b.ts_open for b in bars] == [r[0] * NS for r in data]
    assert [b.ts for b in bars] == [(r[0] + HOUR) * NS for r in data]
    assert [(b.open, b.high, b.low, b.close, b.volume) for b in bars] == [r[1:] for r in data]
    assert all(b.instrument_id == "X" and b.timeframe == HOUR for b in bars)


def test_parquet_and_csv_give_identical_bars(tmp_path: Path) -> None:
    data = rows(50)
    a = list(bar_file(write_parquet(tmp_path / "a.parquet", data)))
    b = list(bar_file(write_csv(tmp_path / "a.csv", data)))
    assert a == b


def test_streams_in_small_batches_and_checks_order_across_batches(tmp_path: Path) -> None:
    data = rows(23)
    f = bar_file(write_parquet(tmp_path / "a.parquet", data), batch_size=4)
    it = iter(f)
    first = next(it)
    assert first.ts_open == data[0][0] * NS
    assert f.stats.rows == 4  # only the first batch has been read so far
    assert len(list(it)) == 22 and f.stats.rows == 23
    # A duplicate sitting right at a batch boundary is still caught.
    bad = data[:8] + [data[7]] + data[8:]
    with pytest.raises(DataError, match=r"row 9: duplicate ts"):
        list(bar_file(write_parquet(tmp_path / "b.parquet", bad), batch_size=8))


def test_merges_instruments_by_time_with_ties_by_instrument_id(tmp_path: Path) -> None:
    hourly = write_parquet(tmp_path / "h.parquet", rows(48))
    daily = BarFile(FeedSpec("D", write_parquet(tmp_path / "d.parquet", rows(2, step=86400)),
                             86400))
    same = write_parquet(tmp_path / "s.parquet", rows(48, base=50.0))
    feed = HistoricalFeed([bar_file(same, "B"), daily, bar_file(hourly, "A")])
    bars = list(feed)
    keys = [(b.ts, b.instrument_id) for b in bars]
    assert keys == sorted(keys)
    assert len(bars) == 48 * 2 + 2
    at_midnight = [b.instrument_id for b in bars if b.ts == (T0 + 86400) * NS]
    assert at_midnight == ["A", "B", "D"]



def heap_merged(files: list[BarFile], announce_end: bool) -> list:
    """The reference order: a heap merge by (close time, instrument id), a file's end
    announced just before the first later bar of another file."""
    import heapq

    ended: list = []

    def keyed(f: BarFile):
        last = None
        for b in f:
            last = b
            yield b.ts, b.instrument_id, b
        if last is not None and announce_end:
            ended.append(last)

    out: list = []
    for ts, _, bar in heapq.merge(*(keyed(f) for f in sorted(files,
                                                            key=lambda f: f.spec.instrument_id))):
        while ended and ended[0].ts < ts:
            last = ended.pop(0)
            out.append(DataEnded(last.ts, last.instrument_id, last.close))
        out.append(bar)
    return out


@pytest.mark.parametrize("seed", range(12))
def test_block_merge_matches_a_heap_merge(tmp_path: Path, seed: int) -> None:
    """Many files of different lengths, starts, holes and timeframes, read in small
    batches: the merged stream (bars and end announcements) is the heap merge's, event
    for event, whatever block the merge takes at a time."""
    import random

    rng = random.Random(seed)
    specs = []
    for k in range(rng.randint(2, 9)):
        step = rng.choice([HOUR, HOUR, 4 * HOUR, 86400])
        start = T0 + rng.randint(0, 30) * HOUR
        data = [r for r in rows(rng.randint(1, 120), start=start, step=step, base=10.0 + k)
                if rng.random() > 0.15] or rows(1, start=start, step=step)
        path = write_parquet(tmp_path / f"{k}.parquet", data)
        specs.append((FeedSpec(f"I{rng.randint(0, 99):02d}-{k}", path, step),
                      rng.choice([3, 7, 64, 65_536])))

    def files() -> list[BarFile]:
        return [BarFile(spec, batch_size=batch) for spec, batch in specs]

    ends: list[int] = []
    for announce in (False, True):
        got = list(HistoricalFeed(files(), announce_end=announce))
        assert got == heap_merged(files(), announce)
        ends.append(sum(type(e) is DataEnded for e in got))
    assert ends[0] == 0



def test_merge_reads_each_file_a_batch_at_a_time(tmp_path: Path) -> None:
    """Memory is bounded by the batches, not by history: after the first merged bar each
    file has read one batch, and a block never runs ahead of the slowest file."""
    files = [bar_file(write_parquet(tmp_path / f"{k}.parquet", rows(40, base=10.0 * (k + 1))),
                      f"I{k}", batch_size=5) for k in range(3)]
    it = iter(HistoricalFeed(files))
    first = next(it)
    assert first.instrument_id == "I0"
    assert [f.stats.rows for f in files] == [5, 5, 5]
    rest = list(it)
    assert len(rest) == 3 * 40 - 1 and [f.stats.rows for f in files] == [40, 40, 40]


BAD_CASES = [
    ("NaN value", lambda r: (r[0], math.nan, *r[2:])),
    ("price <= 0", lambda r: (r[0], 0.0, r[2], r[3], r[4], r[5])),
    ("price <= 0", lambda r: (r[0], r[1], r[2], -1.0, r[4], r[5])),
    ("high < low", lambda r: (r[0], r[1], r[3] - 1, r[3], r[4], r[5])),
    ("open outside [low, high]", lambda r: (r[0], r[2] + 1, r[2], r[3], r[4], r[5])),
    ("close outside [low, high]", lambda r: (r[0], r[1], r[2], r[3], r[3] - 0.5, r[5])),
]


@pytest.mark.parametrize("writer", [write_parquet, write_csv])
@pytest.mark.parametrize(("problem", "spoil"), BAD_CASES)
def test_bad_values_name_file_row_and_problem(tmp_path: Path, writer, problem, spoil) -> None:
    data = rows(6)
    data[3] = spoil(data[3])
    path = writer(tmp_path / ("b.parquet" if writer is write_parquet else "b.csv"), data)
    with pytest.raises(DataError) as exc:
        list(bar_file(path))
    msg = str(exc.value)
    assert str(path) in msg and "row 4:" in msg and problem in msg


@pytest.mark.parametrize(
    ("problem", "reorder"),
    [
        ("duplicate ts", lambda d: d[:3] + [d[2]] + d[3:]),
        ("out-of-order ts", lambda d: d[:2] + [d[3], d[2]] + d[4:]),
    ],
)
def test_time_order_problems_name_file_row_and_problem(tmp_path: Path, problem, reorder) -> None:
    path = write_csv(tmp_path / "t.csv", reorder(rows(6)))
    with pytest.raises(DataError) as exc:
        list(bar_file(path))
    assert f"{path}: row 4: {problem}" in str(exc.value)


def test_skip_mode_skips_counts_and_warns(tmp_path: Path) -> None:
    data = rows(10)
    data[1] = (data[1][0], math.nan, *data[1][2:])
    data[4] = (data[4][0], data[4][1], data[4][3] - 1, *data[4][3:])  # high < low
    data[6] = (data[5][0], *data[6][1:])  # duplicate ts
    path = write_parquet(tmp_path / "s.parquet", data)
    f = bar_file(path, on_bad_row="skip", batch_size=3)
    with capture_logs() as logs:
        bars = list(f)
    assert len(bars) == 7
    assert f.stats.skipped == 3 and f.stats.rows == 10
    assert f.stats.skipped_by_reason == {"NaN value": 1, "high < low": 1, "duplicate ts": 1}
    warned = [e for e in logs if e["event"] == "bad_bar_skipped"]
    assert [e["row"] for e in warned] == [2, 5, 7]
    assert all(e["log_level"] == "warning" and e["file"] == str(path) for e in warned)
    ts = [b.ts for b in bars]
    assert ts == sorted(set(ts))


def test_missing_file_columns_and_unknown_type_are_data_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="data file not found"):
        bar_file(tmp_path / "none.parquet")
    pq.write_table(pa.table({"ts": [1], "open": [1.0]}), tmp_path / "cols.parquet")
    with pytest.raises(DataError, match=r"missing columns \['high', 'low', 'close', 'volume'\]"):
        list(bar_file(tmp_path / "cols.parquet"))
    (tmp_path / "x.json").write_text("{}")
    with pytest.raises(DataError, match="unsupported file type"):
        list(bar_file(tmp_path / "x.json"))
    (tmp_path / "broken.csv").write_text("ts,open,high,low,close,volume\nyesterday,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"broken.csv: row 1: unreadable ts 'yesterday'"):
        list(bar_file(tmp_path / "broken.csv"))
    (tmp_path / "gap.csv").write_text(
        "ts,open,high,low,close,volume\n2024-01-01T00:00:00Z,1,1,1,1,1\n,1,1,1,1,1\n")
    with pytest.raises(DataError, match=r"gap.csv: row 2: missing ts"):
        list(bar_file(tmp_path / "gap.csv"))


def test_start_and_end_bound_the_replay(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", rows(10))
    f = bar_file(path, start_ns=(T0 + 2 * HOUR) * NS, end_ns=(T0 + 5 * HOUR) * NS)
    assert [b.ts_open // NS - T0 for b in f] == [2 * HOUR, 3 * HOUR, 4 * HOUR]


def test_total_rows_counts_what_the_replay_will_see(tmp_path: Path) -> None:
    path = write_parquet(tmp_path / "a.parquet", rows(10))
    assert bar_file(path).total_rows() == 10
    f = bar_file(path, start_ns=(T0 + 2 * HOUR) * NS, end_ns=(T0 + 5 * HOUR) * NS, batch_size=4)
    assert f.total_rows() == 3 == len(list(f))
    assert bar_file(write_csv(tmp_path / "a.csv", rows(3))).total_rows() is None


@pytest.mark.parametrize("scale", [1, 1_000, 1_000_000, 1_000_000_000])
def test_integer_epoch_timestamps_in_any_unit(tmp_path: Path, scale: int) -> None:
    data = rows(3)
    table = pa.table({"ts": pa.array([r[0] * scale for r in data], pa.int64()),
                      **{k: [r[i + 1] for r in data]
                         for i, k in enumerate(("open", "high", "low", "close", "volume"))}})
    pq.write_table(table, tmp_path / "i.parquet")
    assert [b.ts_open for b in bar_file(tmp_path / "i.parquet")] == [r[0] * NS for r in data]


def test_a_merge_names_files_whose_row_groups_are_large(tmp_path: Path) -> None:
    """pyarrow decodes a whole row group at a time: a replay of several files warns about
    each file whose row groups would hold far more than a batch, and reads it all the same."""
    from trader.data.layout import LARGE_ROW_GROUP

    n = LARGE_ROW_GROUP + 1
    big = pa.table({"ts": pa.array([(T0 + i * 60) * NS for i in range(n)],
                                   pa.timestamp("ns", tz="UTC")),
                    **{c: pa.array([100.0] * n) for c in ("open", "high", "low", "close")},
                    "volume": pa.array([1.0] * n)})
    pq.write_table(big, tmp_path / "big.parquet", row_group_size=n)
    pq.write_table(big, tmp_path / "small.parquet", row_group_size=LARGE_ROW_GROUP)
    write_csv(tmp_path / "c.csv", rows(3))
    spec = {"A": "big.parquet", "B": "small.parquet", "C": "c.csv"}

    def feed(*names: str) -> HistoricalFeed:
        return HistoricalFeed([BarFile(FeedSpec(i, tmp_path / spec[i], 60)) for i in names])

    with capture_logs() as logs:
        merged = iter(feed("A", "B", "C"))
    (warn,) = [e for e in logs if e["event"] == "data_row_groups_large"]
    assert warn["log_level"] == "warning" and warn["instrument"] == "A"
    assert warn["file"] == str(tmp_path / "big.parquet") and warn["row_group_rows"] == n
    assert "row_group_size=16384" in warn["hint"]
    assert sum(1 for _ in merged) == 2 * n + 3
    with capture_logs() as logs:
        iter(feed("A"))  # one file: nothing is merged, one row group at a time is the floor
        iter(feed("B", "C"))
    assert not [e for e in logs if e["event"] == "data_row_groups_large"]


def test_the_files_of_a_replay_share_the_batch_size(tmp_path: Path) -> None:
    """Every file holds a batch at once, so a replay of many files reads less of each."""
    from trader.data.feed import feed_from_config, file_batch_rows
    from trader.data.layout import MIN_FILE_BATCH_ROWS
    from trader.engine.config import AppConfig

    assert file_batch_rows(65_536, 1) == 65_536
    assert file_batch_rows(65_536, 4) == 16_384
    assert file_batch_rows(65_536, 100) == MIN_FILE_BATCH_ROWS  # never smaller than this
    assert file_batch_rows(1_000, 3) == 1_000  # nor larger than the whole
    path = write_parquet(tmp_path / "x.parquet", rows(3))

    def batches(n: int, **data) -> set[int]:
        cfg = AppConfig.model_validate({
            "name": "t", "data": data,
            "instruments": [{"id": f"I{i}", "symbol": f"I{i}", "venue": "SIM",
                             "asset_class": "equity",
                             "data": {"path": str(path), "timeframe": "1h"}} for i in range(n)],
        })
        return {f.batch_size for f in feed_from_config(cfg).files}

    assert batches(1) == {65_536} and batches(4) == {16_384}
    assert batches(2, batch_size=20_000) == {10_000}


def test_a_batch_becomes_bars_a_few_thousand_rows_at_a_time(tmp_path: Path) -> None:
    """Rows are turned into Python numbers OBJECT_ROWS at a time; every row still comes
    out once, in order, whatever slice of a batch is asked for."""
    from trader.data.layout import OBJECT_ROWS

    n = 2 * OBJECT_ROWS + 123
    data = rows(n)
    f = bar_file(write_parquet(tmp_path / "x.parquet", data), batch_size=n)
    (cols,) = list(f.columns())
    assert len(cols.ts) == n
    want = [(r[0] * NS, r[1], r[4]) for r in data]
    for start, stop in ((0, None), (5, n - 7), (OBJECT_ROWS - 1, OBJECT_ROWS + 1),
                        (OBJECT_ROWS, 2 * OBJECT_ROWS), (n - 3, n)):
        got = [(b.ts_open, b.open, b.close) for b in f.bars(cols, start, stop)]
        assert got == want[start:stop], (start, stop)
    fresh = bar_file(tmp_path / "x.parquet", batch_size=n)  # a file is read once
    assert [b.ts_open for b in fresh] == [r[0] * NS for r in data]
