"""User files: timestamps of every shape, column mapping, time zones, messages that help."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trader.data.importer import BarImportError, import_bars, parse_mapping
from trader.data.timestamps import TimestampError, to_utc_ns

NS = 1_000_000_000
JAN2 = 1_577_923_200 * NS  # 2020-01-02T00:00:00Z


@pytest.mark.parametrize("values", [
    pa.array([1_577_923_200]), pa.array([1_577_923_200_000]), pa.array([1_577_923_200_000_000]),
    pa.array([JAN2]), pa.array([1_577_923_200.0]), pa.array(["2020-01-02"]),
    pa.array(["2020-01-02T00:00:00"]), pa.array(["2020-01-02 01:00:00+01:00"]),
    pa.array(["2020-01-02T00:00:00Z"]), pa.array([JAN2]).cast(pa.timestamp("ns", tz="UTC")),
    pa.array([JAN2 // 1000]).cast(pa.timestamp("us", tz="Asia/Tokyo")),
    pa.array([18263], pa.date32()),
    pa.array([JAN2]).cast(pa.timestamp("ns", tz="Asia/Tokyo")),  # a zone only labels UTC
    pa.chunked_array([pa.array([JAN2]).cast(pa.timestamp("ns", tz="UTC"))]),
])
def test_every_timestamp_shape_reads_as_utc(values: pa.Array) -> None:
    assert to_utc_ns(values).tolist() == [JAN2]


def test_naive_times_take_the_time_zone_and_dates_do_not() -> None:
    ny = to_utc_ns(pa.array(["2020-01-01T19:00:00"]), tz="America/New_York")
    assert ny.tolist() == [JAN2]  # 19:00 New York (EST) is midnight UTC
    assert to_utc_ns(pa.array([18263], pa.date32()), tz="America/New_York").tolist() == [JAN2]
    naive_ns = pa.array([JAN2 - 5 * 3600 * NS]).cast(pa.timestamp("ns"))
    assert to_utc_ns(naive_ns, tz="America/New_York").tolist() == [JAN2]
    assert to_utc_ns(naive_ns).tolist() == [JAN2 - 5 * 3600 * NS]  # naive is UTC by default


def test_the_bad_row_is_named_and_quoted() -> None:
    with pytest.raises(TimestampError, match=r"row 13: unreadable ts '2020-13-01'"):
        to_utc_ns(pa.array(["2020-01-01T00:00:00"] * 2 + ["2020-13-01"]), row0=10)


def test_a_yahoo_file_needs_no_mapping(tmp_path: Path) -> None:
    (tmp_path / "y.csv").write_text("Date,Open,High,Low,Close,Adj Close,Volume\n"
                                    "2020-01-03,2,3,1,2.5,2.0,10\n2020-01-02,1,2,0.5,1.5,1.2,10\n")
    res = import_bars(tmp_path / "y.csv")
    assert res.mapping["ts"] == "Date" and res.mapping["adj_close"] == "Adj Close"
    assert res.table.column("ts").cast(pa.int64()).to_pylist() == [JAN2, JAN2 + 86_400 * NS]
    assert res.table.column("close").to_pylist() == [1.5, 2.5]  # sorted by time
    adj = import_bars(tmp_path / "y.csv", adjust_close=True).table
    assert adj.column("close").to_pylist() == pytest.approx([1.2, 2.0])
    assert adj.column("open").to_pylist() == pytest.approx([1 * 1.2 / 1.5, 2 * 2.0 / 2.5])


def test_mapping_semicolons_and_epoch_milliseconds(tmp_path: Path) -> None:
    (tmp_path / "m.csv").write_text("t;a;b;c;d\n1577923200000;1;2;0.5;1.5\n")
    res = import_bars(tmp_path / "m.csv", columns=parse_mapping("t=ts,a=open,b=high,c=low,d=close"))
    assert res.table.column("ts").cast(pa.int64()).to_pylist() == [JAN2]
    assert res.table.column("volume").to_pylist() == [0.0]


def test_problems_name_file_row_and_column(tmp_path: Path) -> None:
    p = tmp_path / "bad.csv"
    p.write_text("ts,open,high,low,close,volume\n2020-01-02,1,2,0.5,1.5,1\n"
                 "2020-01-03,1,0.2,0.5,1.5,1\n")
    with pytest.raises(BarImportError, match=r"bad.csv: row 2: high < low"):
        import_bars(p)
    res = import_bars(p, on_bad_row="skip")
    assert res.table.num_rows == 1 and "row 2" in res.dropped_bad[0]
    p.write_text("ts,open,high,low,close,volume\n2020-01-02,1,2,0.5,abc,1\n")
    with pytest.raises(BarImportError, match=r"row 1: column 'close' \(close\) has 'abc'; "
                                             "expected a number"):
        import_bars(p)
    p.write_text("ts,open,high,low,close,volume\n2020-01-02,1,2,0.5,1,1\n2020-01-02,1,2,0.5,1,1\n")
    with pytest.raises(BarImportError, match=r"row 2: duplicate time \(same as row 1"):
        import_bars(p)
    with pytest.raises(BarImportError, match="not FILE_COLUMN=TARGET"):
        parse_mapping("Date=when")
    pq.write_table(pa.table({"ts": pa.array([], pa.int64()), "open": pa.array([], pa.float64()),
                             "high": pa.array([], pa.float64()), "low": pa.array([], pa.float64()),
                             "close": pa.array([], pa.float64())}), tmp_path / "e.parquet")
    with pytest.raises(BarImportError, match=r"e.parquet: no rows"):
        import_bars(tmp_path / "e.parquet")
