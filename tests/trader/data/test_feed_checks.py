"""The feed's own checks: dates and zones read, inf/header-only/long gaps reported, the bad
timestamp's own row named and quoted (issue 14, item 7 and 8)."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from structlog.testing import capture_logs

from trader.data.feed import BarFile, DataError, FeedSpec

NS = 1_000_000_000
DAY = 86_400
HEADER = "ts,open,high,low,close,volume\n"


def daily(path: Path) -> BarFile:
    return BarFile(FeedSpec("X", path, DAY))


def test_a_csv_of_dates_reads_as_midnight_utc(tmp_path: Path) -> None:
    (tmp_path / "d.csv").write_text(HEADER + "2020-01-02,1,2,0.5,1.5,10\n"
                                    "2020-01-03,1,2,0.5,1.5,1\n")
    bars = list(daily(tmp_path / "d.csv"))
    assert [b.ts_open for b in bars] == [1_577_923_200 * NS, 1_578_009_600 * NS]
    assert bars[0].ts == bars[0].ts_open + DAY * NS


def test_parquet_timestamps_with_a_zone_and_date32(tmp_path: Path) -> None:
    tokyo = pa.array([1_577_923_200 * NS]).cast(pa.timestamp("ns", tz="Asia/Tokyo"))
    dates = pa.array([18263], pa.date32())
    for name, ts in (("z.parquet", tokyo), ("d.parquet", dates)):
        pq.write_table(pa.table({"ts": ts, "open": [1.0], "high": [2.0], "low": [0.5],
                                 "close": [1.5], "volume": [1.0]}), tmp_path / name)
        assert [b.ts_open for b in daily(tmp_path / name)] == [1_577_923_200 * NS]


def test_an_infinite_price_is_a_bad_row(tmp_path: Path) -> None:
    (tmp_path / "i.csv").write_text(HEADER + "2020-01-02,1,2,0.5,1.5,10\n"
                                    "2020-01-03,inf,inf,1,1.5,1\n")
    with pytest.raises(DataError, match=r"i.csv: row 2: infinite value"):
        list(daily(tmp_path / "i.csv"))


def test_a_header_only_file_is_reported(tmp_path: Path) -> None:
    (tmp_path / "h.csv").write_text(HEADER)
    with pytest.raises(DataError, match=r"h.csv: no bars \(the file has a header but no rows\)"):
        list(daily(tmp_path / "h.csv"))


def test_the_unreadable_timestamp_names_its_own_row_and_value(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(HEADER + "2020-01-02T00:00:00,1,2,0.5,1.5,1\n"
                                    "2020-01-03T00:00:00,1,2,0.5,1.5,1\nxx-bad,1,2,0.5,1.5,1\n")
    with pytest.raises(DataError, match=r"t.csv: row 3: unreadable ts 'xx-bad'"):
        list(daily(tmp_path / "t.csv"))


def test_a_gap_of_weeks_in_a_daily_series_is_reported(tmp_path: Path) -> None:
    rows = ["2020-01-02", "2020-01-03", "2020-01-06", "2020-02-03", "2020-02-04"]
    (tmp_path / "g.csv").write_text(HEADER + "".join(f"{d},1,2,0.5,1.5,1\n" for d in rows))
    f = daily(tmp_path / "g.csv")
    with capture_logs() as logs:
        assert len(list(f)) == 5
    assert f.stats.gaps == [(1_578_268_800 * NS, 1_580_688_000 * NS)]  # Jan 6 -> Feb 3
    (warn,) = [e for e in logs if e["event"] == "data_gap"]
    assert warn["after"] == "2020-01-06T00:00:00Z" and warn["days"] == 28.0
    assert f.stats.last_open == 1_580_774_400 * NS
