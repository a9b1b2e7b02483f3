"""``ns_to_iso`` renders exactly what ``datetime`` renders, however it gets there."""

from __future__ import annotations

import random

import pytest

from trader.core.events import _ns_to_iso_datetime, ns_to_iso

NS = 1_000_000_000
FIRST = -62_135_596_800 * NS  # 0001-01-01T00:00:00Z
LAST = 253_402_300_799 * NS + NS - 1  # 9999-12-31T23:59:59.999999999Z


def test_fixed_points() -> None:
    assert ns_to_iso(0) == "1970-01-01T00:00:00Z"
    assert ns_to_iso(1_704_067_200 * NS) == "2024-01-01T00:00:00Z"
    assert ns_to_iso(1_709_164_800 * NS + 123_456_789) == "2024-02-29T00:00:00.123456Z"
    assert ns_to_iso(-1) == "1969-12-31T23:59:59.999999Z"
    assert ns_to_iso(999) == "1970-01-01T00:00:00Z"  # below a microsecond: dropped
    assert ns_to_iso(FIRST) == "0001-01-01T00:00:00Z"
    assert ns_to_iso(LAST) == "9999-12-31T23:59:59.999999Z"


def test_random_times_match_datetime() -> None:
    rng = random.Random(20)
    for _ in range(20_000):
        ts = rng.choice([
            rng.randrange(FIRST, LAST),
            rng.randrange(0, 4_102_444_800 * NS),  # 1970-2100, nanoseconds
            rng.randrange(0, 4_102_444_800) * NS,  # whole seconds
            rng.randrange(0, 4_102_444_800 // 60) * 60 * NS,  # whole minutes (bars)
        ])
        assert ns_to_iso(ts) == _ns_to_iso_datetime(ts), ts


@pytest.mark.parametrize("ts", [FIRST - 1, LAST + 1, 10**30, -(10**30)])
def test_outside_datetime_years_fails_as_datetime_does(ts: int) -> None:
    with pytest.raises(Exception) as expected:
        _ns_to_iso_datetime(ts)
    with pytest.raises(type(expected.value)):
        ns_to_iso(ts)
