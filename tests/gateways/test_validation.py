"""One set of bar rules: the boundary guard and the historical feed share them."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from gateways.validation import BarGuard
from trader.core.events import Bar, GatewayHealth, HealthState
from trader.core.validation import BAR_RULES, validate_bar
from trader.data.feed import BarFile, DataError, FeedSpec

NS = 1_000_000_000


def bar(o: float, h: float, lo: float, c: float, v: float = 1.0, i: int = 1) -> Bar:
    return Bar((i + 1) * 60 * NS, "X", 60, i * 60 * NS, o, h, lo, c, v)


@pytest.mark.parametrize(("values", "problem"), [
    ((math.nan, 2, 1, 1.5), "NaN value"),
    ((1, math.inf, 1, 1.5), "infinite value"),
    ((0, 2, 0, 1), "price <= 0"),
    ((1.5, 1, 2, 1.5), "high < low"),
    ((3, 2, 1, 1.5), "open outside [low, high]"),
    ((1.5, 2, 1, 0.5), "close outside [low, high]"),
])
def test_each_rule_names_the_problem_and_the_values(values: tuple, problem: str) -> None:
    why = validate_bar(bar(*values))
    assert why is not None and why.startswith(problem) and "o=" in why


def test_negative_volume_and_band() -> None:
    assert (validate_bar(bar(1, 2, 1, 1.5, -1)) or "").startswith("negative volume")
    assert validate_bar(bar(100, 101, 99, 100), last_close=99.0, band=0.1) is None
    why = validate_bar(bar(1e9, 1e9, 1e9, 1e9), last_close=100.0, band=0.5)
    assert why is not None and "exceeds band" in why
    assert validate_bar(bar(1e9, 1e9, 1e9, 1e9), last_close=100.0, band=None) is None


def test_guard_drops_bad_bars_reports_health_and_passes_other_events() -> None:
    out: list = []
    guard = BarGuard(out.append, gateway="gw", venue="venue", band=0.5)
    good, spike, after = bar(100, 101, 99, 100, i=1), bar(1e9, 1e9, 1e9, 1e9, i=2), \
        bar(100, 102, 99, 101, i=3)
    other = GatewayHealth(0, "gw", HealthState.CONNECTED)
    for e in (good, spike, other, after):
        guard(e)
    assert [e for e in out if isinstance(e, Bar)] == [good, after]
    [h] = [e for e in out if isinstance(e, GatewayHealth) and e.state is HealthState.DEGRADED]
    assert "exceeds band" in h.reason and guard.rejected == {"X": 1}
    assert other in out


def test_the_feed_uses_the_same_rules(tmp_path: Path) -> None:
    path = tmp_path / "x.csv"
    path.write_text("ts,open,high,low,close,volume\n"
                    "2024-01-01T00:00:00Z,1,2,1,1.5,1\n"
                    "2024-01-01T00:01:00Z,1,inf,1,1.5,1\n"
                    "2024-01-01T00:02:00Z,1,2,1,1.5,1\n")
    with pytest.raises(DataError, match=r"row 2: infinite value"):
        list(BarFile(FeedSpec("X", path, 60)))
    skipping = BarFile(FeedSpec("X", path, 60), on_bad_row="skip")
    assert len(list(skipping)) == 2
    assert skipping.stats.skipped_by_reason == {"infinite value": 1}
    assert {name for name, _ in BAR_RULES} >= {"NaN value", "price <= 0", "negative volume"}
