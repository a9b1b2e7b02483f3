"""The series checks: calendars keep weekends and holidays from being gaps."""

from __future__ import annotations

import numpy as np

from trader.data.validate import (
    check_series,
    gap_findings,
    outlier_findings,
    stale_findings,
)

NS = 1_000_000_000
DAY = 86_400 * NS
MON = 1_704_067_200 * NS  # Monday 2024-01-01 (a NYSE holiday)


def days(*offsets: int) -> np.ndarray:
    return np.array([MON + d * DAY for d in offsets], dtype=np.int64)


def test_weekends_and_holidays_are_not_gaps_for_equities() -> None:
    # Tue 2 Jan .. Fri 19 Jan 2024 trading days (Mon 15 Jan: Martin Luther King day)
    ts = days(1, 2, 3, 4, 7, 8, 9, 10, 11, 15, 16, 17, 18)
    assert gap_findings(ts, 86_400, "XNYS") == []
    # the same dates for a 24/7 market: both weekends (and the holiday) are gaps
    weekend, long_weekend = gap_findings(ts, 86_400, "crypto")
    assert weekend.detail.startswith("2 bar") and long_weekend.detail.startswith("3 bar")
    # a missing Wednesday is a gap on the exchange calendar
    (gap,) = gap_findings(np.delete(ts, 6), 86_400, "XNYS")
    assert gap.row == 7 and gap.ts == "2024-01-10T00:00:00Z" and gap.detail.startswith("1 bar")


def test_the_fx_week_has_no_saturday_and_no_sunday_bar() -> None:
    ts = days(0, 1, 2, 3, 4, 7, 8)
    assert gap_findings(ts, 86_400, "fx") == []


def test_order_ohlc_stale_and_outliers() -> None:
    ts = days(*range(30)).copy()
    c = 100 + np.sin(np.arange(30))
    o, h, lo, v = c.copy(), c + 1, c - 1, np.ones(30)
    ts[5] = ts[4]  # duplicate
    ts[8], ts[9] = ts[9], ts[8]  # out of order
    lo[12] = h[12] + 1  # high < low
    c[14] = o[14] = -1.0  # negative price
    found = check_series(ts, o, h, lo, c, v, timeframe_s=86_400, calendar="crypto")
    got = {(f.kind, f.row) for f in found}
    assert {("duplicate", 6), ("out_of_order", 10), ("ohlc", 13), ("ohlc", 15)} <= got
    assert all(f.severity == "error" for f in found[:4])
    flat = np.r_[np.linspace(1, 2, 5), np.full(12, 2.0), np.linspace(2, 3, 5)]
    (run,) = stale_findings(np.arange(22), flat, flat, flat, 10)
    # rows 6..18 repeat the close of row 5 with high == low
    assert run.row == 6 and run.detail.startswith("13 flat bars at 2.0")
    prices = 100 * np.cumprod(np.r_[1, np.full(50, 1.001), 1.5, np.full(20, 1.001)])
    (spike,) = outlier_findings(np.arange(len(prices)) * DAY, prices, 12.0)
    assert spike.row == 52 and "+50.0%" in spike.detail  # the 52nd close jumps 50 %
