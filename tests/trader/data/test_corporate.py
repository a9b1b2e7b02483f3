"""Split and dividend back-adjustment from LEAN's factor file, on AAPL's real 7:1 split."""

from __future__ import annotations

from pathlib import Path

import pytest

from trader.data.corporate import FactorFileError, back_adjust, read_factor_file
from trader.data.importer import import_bars

FIX = Path(__file__).parent / "fixtures"


def test_the_split_disappears_from_the_back_adjusted_series() -> None:
    raw = import_bars(FIX / "lean_aapl_1d_2014-05_07.csv").table
    rows = read_factor_file(FIX / "lean_aapl_factors.csv")
    adj, record = back_adjust(raw, rows, "lean_aapl_factors.csv")
    days = [t.strftime("%Y-%m-%d") for t in raw.column("ts").to_pylist()]
    i = days.index("2014-06-09")
    raw_close = raw.column("close").to_pylist()
    close = adj.column("close").to_pylist()
    assert raw_close[i] / raw_close[i - 1] < 0.2  # 645.57 -> 93.70: the split, raw
    assert close[i] / close[i - 1] == pytest.approx(93.70 / (645.57 / 7), rel=1e-4)
    # the factors of the first row dated on or after the bar: adjusted = raw * pf * sf
    assert close[i - 1] == pytest.approx(645.57 * 0.9011818 * 0.0357143)
    assert close[i] == pytest.approx(93.70 * 0.9011818 * 0.25)
    vol = adj.column("volume").to_pylist()
    assert vol[i - 1] == pytest.approx(12116671.0 / 0.0357143)  # shares, split-adjusted
    assert record["method"] == "lean_factor_file" and record["changes_in_range"] >= 1


def test_a_broken_factor_file_names_its_row(tmp_path: Path) -> None:
    (tmp_path / "f.csv").write_text("20140101,0.9,1,100\n20131231,0.9,1,100\n")
    with pytest.raises(FactorFileError, match=r"f.csv: row 2: date 20131231 is not after"):
        read_factor_file(tmp_path / "f.csv")
    (tmp_path / "g.csv").write_text("2014-01-01,0.9,1,100\n")
    with pytest.raises(FactorFileError, match=r"g.csv: row 1: expected yyyymmdd"):
        read_factor_file(tmp_path / "g.csv")
