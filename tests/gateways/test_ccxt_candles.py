"""The candle closer: closed bars exactly once, gaps reported, REST and WS merged."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from gateways.ccxt.candles import CandleCloser, candle_to_bar

M = 60_000


def c(t: int, close: float = 1.0) -> list[float]:
    return [float(t), 1.0, 2.0, 0.5, close, 3.0]


def test_bar_closes_when_next_candle_opens() -> None:
    k = CandleCloser(60)
    assert k.on_update(c(0)).closed == []
    assert k.on_update(c(0, 1.5)).closed == []
    res = k.on_update(c(M))
    assert res.closed == [c(0, 1.5)] and res.gap_from_ms is None


def test_late_update_of_emitted_bar_is_ignored() -> None:
    k = CandleCloser(60)
    k.on_update(c(0))
    k.on_update(c(M))
    assert k.on_update(c(0, 9.0)).closed == []
    assert k.current == c(M)


def test_gap_in_stream_is_reported() -> None:
    k = CandleCloser(60)
    k.on_update(c(0))
    res = k.on_update(c(4 * M))
    assert res.closed == [c(0)]
    assert (res.gap_from_ms, res.gap_to_ms) == (M, 4 * M)


def test_gap_after_baseline_is_reported() -> None:
    k = CandleCloser(60, last_emitted_ms=0)
    res = k.on_update(c(3 * M))
    assert res.closed == [] and (res.gap_from_ms, res.gap_to_ms) == (M, 3 * M)


def test_a_gap_is_closed_by_the_later_candle_even_when_the_clock_lags() -> None:
    """The stream already forms minute 4: minutes 1-3 are over, whatever our estimate of
    the venue's clock says (it lags: 2 M).  Found by the soak: they were never emitted."""
    k = CandleCloser(60, last_emitted_ms=0)
    res = k.on_update(c(4 * M))
    got = k.on_rest([c(M), c(2 * M), c(3 * M)], now_ms=2 * M)
    assert (res.gap_from_ms, got) == (M, [c(M), c(2 * M), c(3 * M)])
    assert k.current == c(4 * M)
    # a REST answer holding a later candle proves the earlier ones over, too
    k = CandleCloser(60, last_emitted_ms=0)
    assert k.on_rest([c(M), c(2 * M)], now_ms=M) == [c(M)] and k.current == c(2 * M)


def test_rest_emits_only_finished_candles_and_keeps_forming_one() -> None:
    k = CandleCloser(60)
    out = k.on_rest([c(0), c(M), c(2 * M)], now_ms=2 * M + 10)
    assert out == [c(0), c(M)]
    assert k.current == c(2 * M)
    assert k.on_rest([c(M), c(2 * M)], now_ms=3 * M) == [c(2 * M)]
    assert k.current is None


def test_bar_times_are_close_and_open_in_ns() -> None:
    bar = candle_to_bar([1_700_000_040_000, 1, 2, 0.5, 1.5, None], "X", 60)
    assert bar.ts_open == 1_700_000_040_000 * 1_000_000
    assert bar.ts == bar.ts_open + 60 * 1_000_000_000
    assert bar.volume == 0.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 30), st.booleans()), max_size=60))
def test_emitted_open_times_strictly_increase(steps: list[tuple[int, bool]]) -> None:
    """Whatever order WS updates and REST pages arrive in, no bar is emitted twice."""
    k = CandleCloser(60)
    emitted: list[int] = []
    for minute, via_rest in steps:
        if via_rest:
            emitted += [int(x[0]) for x in k.on_rest([c(minute * M)], now_ms=(minute + 1) * M)]
        else:
            emitted += [int(x[0]) for x in k.on_update(c(minute * M)).closed]
    assert emitted == sorted(set(emitted))
