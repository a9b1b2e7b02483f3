"""BarAggregator: UTC-aligned windows, publication only once closed, gaps, flush."""

from __future__ import annotations

import datetime as dt

import pytest

from trader.core.events import Bar
from trader.engine.aggregator import BarAggregator

NS = 1_000_000_000
MIN = 60
HOUR = 3600
DAY = 86400


def t(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) * NS


def base(start: int, tf: int, o: float, h: float, lo: float, c: float, v: float = 1.0,
         inst: str = "X") -> Bar:
    return Bar(start + tf * NS, inst, tf, start, o, h, lo, c, v)


def series(start: int, tf: int, n: int, inst: str = "X") -> list[Bar]:
    """n consecutive base bars with distinct, predictable prices."""
    out = []
    for i in range(n):
        p = 100.0 + i
        out.append(base(start + i * tf * NS, tf, p, p + 0.5, p - 0.5, p + 0.25, 10.0 + i, inst))
    return out


def collector() -> tuple[list[Bar], BarAggregator]:
    out: list[Bar] = []
    return out, BarAggregator(out.append)


def test_five_minute_bars_from_one_minute_bars() -> None:
    out, agg = collector()
    agg.add("X", MIN, 5 * MIN)
    bars = series(t("2024-01-02T00:00:00"), MIN, 10)
    for i, b in enumerate(bars):
        agg.on_bar(b)
        # Published exactly when the base bar that ends the window arrives, not before.
        assert len(out) == (i + 1) // 5
    first, second = out
    assert (first.ts_open, first.ts, first.timeframe) == (
        t("2024-01-02T00:00:00"), t("2024-01-02T00:05:00"), 5 * MIN)
    assert first.open == bars[0].open
    assert first.high == max(b.high for b in bars[:5])
    assert first.low == min(b.low for b in bars[:5])
    assert first.close == bars[4].close
    assert first.volume == sum(b.volume for b in bars[:5])
    assert second.ts_open == t("2024-01-02T00:05:00")
    assert second.close == bars[9].close


def test_h4_and_d1_from_hourly_are_aligned_to_utc() -> None:
    out, agg = collector()
    agg.add("X", HOUR, 4 * HOUR)
    agg.add("X", HOUR, DAY)
    # Start mid-window (02:00) and run for two days: windows still start on UTC
    # multiples of their length, never at the first bar seen.
    for b in series(t("2024-01-02T02:00:00"), HOUR, 46):
        agg.on_bar(b)
    h4 = [b for b in out if b.timeframe == 4 * HOUR]
    d1 = [b for b in out if b.timeframe == DAY]
    assert [b.ts_open for b in h4][:3] == [
        t("2024-01-02T00:00:00"), t("2024-01-02T04:00:00"), t("2024-01-02T08:00:00")]
    assert all(b.ts_open % (4 * HOUR * NS) == 0 and b.ts - b.ts_open == 4 * HOUR * NS
               for b in h4)
    assert len(h4) == 12  # 02:00 day 1 .. 24:00 day 2 closes windows 00-04 ... 20-24
    assert [b.ts_open for b in d1] == [t("2024-01-02T00:00:00"), t("2024-01-03T00:00:00")]
    # The partial first window holds only the bars that exist (02:00 and 03:00).
    assert h4[0].open == 100.0 and h4[0].close == 101.25 and h4[0].volume == 10.0 + 11.0
    assert d1[0].open == 100.0 and d1[0].close == 121.25  # 02:00 .. 23:00 = 22 bars
    # Each higher bar is published right after the base bar closing its window,
    # smaller timeframe first.
    closing = [b for b in out if b.ts == t("2024-01-03T00:00:00")]
    assert [b.timeframe for b in closing] == [4 * HOUR, DAY]


def test_gap_inside_window_invents_no_prices() -> None:
    out, agg = collector()
    agg.add("X", HOUR, 4 * HOUR)
    s = t("2024-01-02T04:00:00")
    agg.on_bar(base(s, HOUR, 10, 12, 9, 11, 1))
    # 05:00 and 06:00 missing
    agg.on_bar(base(s + 3 * HOUR * NS, HOUR, 20, 21, 19, 20.5, 2))
    assert len(out) == 1
    w = out[0]
    assert (w.open, w.high, w.low, w.close, w.volume) == (10, 21, 9, 20.5, 3)
    assert (w.ts_open, w.ts) == (s, s + 4 * HOUR * NS)


def test_window_missing_its_last_bar_is_emitted_when_a_later_bar_proves_it_closed() -> None:
    out, agg = collector()
    agg.add("X", HOUR, 4 * HOUR)
    s = t("2024-01-02T04:00:00")
    agg.on_bar(base(s, HOUR, 10, 12, 9, 11))
    agg.on_bar(base(s + HOUR * NS, HOUR, 11, 13, 10, 12))
    # 06:00 and 07:00 missing: nothing says the window is over yet.
    assert out == []
    # A whole empty window (08:00-12:00) then a bar at 12:00.
    agg.on_bar(base(s + 8 * HOUR * NS, HOUR, 30, 31, 29, 30.5))
    assert len(out) == 1  # the 04:00 window only; the empty 08:00 window yields nothing
    w = out[0]
    assert (w.ts_open, w.ts) == (s, s + 4 * HOUR * NS)
    assert (w.open, w.high, w.low, w.close) == (10, 13, 9, 12)


def test_flush_publishes_only_windows_whose_end_has_passed() -> None:
    out, agg = collector()
    agg.add("X", MIN, 5 * MIN)
    s = t("2024-01-02T00:00:00")
    for b in series(s, MIN, 3):
        agg.on_bar(b)
    agg.flush(s + 4 * MIN * NS)
    assert out == []
    agg.flush(s + 5 * MIN * NS)
    assert len(out) == 1 and out[0].ts == s + 5 * MIN * NS and out[0].close == 102.25
    agg.flush(s + 60 * MIN * NS)
    assert len(out) == 1  # nothing left to publish, nothing invented


def test_instruments_are_aggregated_separately_and_foreign_timeframes_ignored() -> None:
    out, agg = collector()
    agg.add("A", MIN, 5 * MIN)
    agg.add("B", MIN, 5 * MIN)
    s = t("2024-01-02T00:00:00")
    for a, b in zip(series(s, MIN, 5, "A"), series(s, MIN, 5, "B"), strict=True):
        agg.on_bar(a)
        agg.on_bar(b)
    assert [b.instrument_id for b in out] == ["A", "B"]
    agg.on_bar(out[0])  # a published 5m bar coming back through the bus is not re-aggregated
    assert len(out) == 2


def test_same_timeframe_adds_nothing_and_non_multiples_are_refused() -> None:
    out, agg = collector()
    agg.add("X", HOUR, HOUR)
    agg.on_bar(base(t("2024-01-02T00:00:00"), HOUR, 1, 1, 1, 1))
    assert out == []
    with pytest.raises(ValueError, match="not a multiple"):
        agg.add("X", HOUR, 90 * MIN)


def test_weekly_windows_start_on_monday_utc() -> None:
    out, agg = collector()
    agg.add("X", DAY, 7 * DAY)
    # Wednesday 2024-01-03 .. Tuesday 2024-01-16
    for b in series(t("2024-01-03T00:00:00"), DAY, 14):
        agg.on_bar(b)
    assert [(b.ts_open, b.ts) for b in out] == [
        (t("2024-01-01T00:00:00"), t("2024-01-08T00:00:00")),  # partial: Wed..Sun
        (t("2024-01-08T00:00:00"), t("2024-01-15T00:00:00")),
    ]
    assert out[0].open == 100.0 and out[0].close == 104.25  # Wed, Thu, Fri, Sat, Sun
    assert out[1].open == 105.0 and out[1].close == 111.25
