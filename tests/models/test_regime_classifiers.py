"""Regime classifiers: their states on crafted series, no look-ahead, loading user regimes."""

from __future__ import annotations

import math
import random
from pathlib import Path

import pytest

from models.loading import ModelNotFound
from models.regimes import (
    REGIME_CLASSES,
    RegimeClassifier,
    SpreadRegime,
    TrendRegime,
    VolatilityRegime,
    regime_class,
)
from trader.core.events import Bar

DAY = 86_400
NS = 1_000_000_000


def bars(closes: list[float], inst: str = "SPY", tf: int = DAY) -> list[Bar]:
    return [Bar((i + 1) * tf * NS, inst, tf, i * tf * NS, c, c, c, c, 1.0)
            for i, c in enumerate(closes)]


def states(clf: RegimeClassifier, series: list[Bar]) -> list[str | None]:
    return [clf.on_bar(b) for b in series]


def test_trend_is_down_until_the_close_crosses_its_average_then_up() -> None:
    clf = TrendRegime("t", ["SPY"], "1d", {"window": 5})
    out = states(clf, bars([100.0] * 8 + [101.0, 102.0, 90.0]))
    assert out[:4] == [None] * 4  # the average needs five closes
    assert out[4:8] == ["down"] * 4  # close == average is not above it
    assert out[8:10] == ["up", "up"]
    assert out[10] == "down"


def test_trend_drawdown_state_is_a_fall_from_the_highest_close() -> None:
    clf = TrendRegime("t", ["SPY"], "1d", {"window": 2, "drawdown": 0.10})
    assert clf.states() == ("up", "down", "drawdown")
    out = states(clf, bars([100.0, 110.0, 120.0, 108.5, 107.9, 130.0]))
    # 108.5 is 9.6% below 120 (down); 107.9 is 10.08% below (drawdown); 130 a new high.
    assert out == [None, "up", "up", "down", "drawdown", "up"]


def test_volatility_percentile_names_calm_and_stormy_stretches() -> None:
    rng = random.Random(7)
    calm = [0.001 * rng.gauss(0, 1) for _ in range(60)]
    storm = [0.05 * rng.gauss(0, 1) for _ in range(20)]
    closes = [100.0]
    for r in calm + storm:
        closes.append(closes[-1] * math.exp(r))
    clf = VolatilityRegime("v", ["SPY"], "1d",
                           {"window": 5, "lookback": 30, "low": 0.2, "high": 0.8})
    out = states(clf, bars(closes))
    assert out[:34] == [None] * 34  # 5 returns for a vol, then 30 vols for a percentile
    # Bar 61 is the storm's first return: from it on the vol tops the last 30 values.
    assert out[61:76] == ["high"] * 15
    assert out[60] != "high"
    assert "low" in out[34:61]  # the calm part has its own quieter stretches


def test_volatility_level_by_value_reads_an_implied_vol_series_as_is() -> None:
    clf = VolatilityRegime("vix", ["VIX"], "1d",
                           {"source": "level", "classify_by": "value", "low": 15, "high": 30})
    assert states(clf, bars([12.0, 15.0, 29.9, 30.0, 45.0, 14.0], "VIX")) == [
        "low", "normal", "normal", "high", "high", "low"]


def test_realised_volatility_by_value_is_annualised_by_the_bar_length() -> None:
    # Alternating +1%/-1% log returns: sample stdev of 4 returns, times sqrt(365.25).
    closes = [100 * math.exp(0.01 * (i % 2)) for i in range(5)]
    vol = math.sqrt(4 * 0.01**2 / 3) * math.sqrt(365.25)  # 0.2207
    for high, want in ((vol + 0.001, "normal"), (vol - 0.001, "high")):
        clf = VolatilityRegime("v", ["SPY"], "1d", {"window": 4, "classify_by": "value",
                                                    "low": 0.1, "high": high})
        assert states(clf, bars(closes)) == [None, None, None, None, want]


def test_spread_waits_for_both_series_at_the_same_bar_time() -> None:
    clf = SpreadRegime("curve", ["US10Y", "US2Y"], "1d", {"low": 0.0, "high": 1.5})
    ten, two = bars([2.0, 2.0, 3.0], "US10Y"), bars([1.0, 2.5, 1.0], "US2Y")
    assert clf.on_bar(ten[0]) is None  # the 2y has not closed this day yet
    assert clf.on_bar(two[0]) == "normal"  # 1.0
    assert clf.on_bar(ten[1]) is None
    assert clf.on_bar(two[1]) == "inverted"  # -0.5
    assert clf.on_bar(two[2]) is None  # the 10y's day-3 bar is missing
    assert clf.on_bar(ten[2]) == "steep"  # 2.0


def test_spread_reads_two_instruments() -> None:
    with pytest.raises(ValueError, match="reads 2 instrument"):
        SpreadRegime("curve", ["US10Y"], "1d")


def _walk(n: int, seed: int) -> list[float]:
    rng = random.Random(seed)
    closes = [100.0]
    for _ in range(n - 1):
        closes.append(closes[-1] * math.exp(0.02 * rng.gauss(0, 1)))
    return closes


POISON = [1e12, 1e-9, 5e8, 3.0, 1e15]


@pytest.mark.parametrize("kind,params", [
    ("TrendRegime", {"window": 20, "drawdown": 0.1}),
    ("VolatilityRegime", {"window": 10, "lookback": 40}),
    ("VolatilityRegime", {"source": "level", "classify_by": "percentile", "lookback": 15}),
])
def test_states_up_to_a_bar_ignore_every_later_bar(kind: str, params: dict) -> None:
    """Poisoned future: garbage after bar t changes no state at or before t."""
    closes = _walk(200, 11)
    clean = states(REGIME_CLASSES[kind]("r", ["SPY"], "1d", params), bars(closes))
    assert len({s for s in clean if s}) >= 2  # the series does cross regimes
    for t in (60, 120, 170):
        poisoned = closes[:t + 1] + [POISON[i % len(POISON)] for i in range(len(closes) - t - 1)]
        got = states(REGIME_CLASSES[kind]("r", ["SPY"], "1d", params), bars(poisoned))
        assert got[:t + 1] == clean[:t + 1]
        assert got[t + 1:] != clean[t + 1:]  # the poison was read (so the test can fail)


def test_spread_states_ignore_later_bars() -> None:
    a, b = _walk(120, 3), _walk(120, 4)

    def run(xs: list[float], ys: list[float]) -> list[str | None]:
        clf = SpreadRegime("s", ["A", "B"], "1d", {"low": -5.0, "high": 5.0})
        out = []
        for x, y in zip(bars(xs, "A"), bars(ys, "B"), strict=True):
            clf.on_bar(x)
            out.append(clf.on_bar(y))
        return out

    clean = run(a, b)
    t = 70
    poisoned = run(a[:t + 1] + [1e9] * (len(a) - t - 1), b)
    assert poisoned[:t + 1] == clean[:t + 1]
    assert poisoned[t + 1:] != clean[t + 1:]


def test_user_regime_loads_from_the_strategies_folder_like_a_model(tmp_path: Path) -> None:
    (tmp_path / "weekday.py").write_text(
        "from models.regimes import RegimeClassifier\n"
        "class Weekday(RegimeClassifier):\n"
        "    def states(self):\n"
        "        return ('weekday', 'weekend')\n"
        "    def on_bar(self, bar):\n"
        "        return 'weekend' if (bar.ts // 86_400_000_000_000 + 3) % 7 >= 5 "
        "else 'weekday'\n"
        "class NotARegime:\n"
        "    pass\n")
    cls = regime_class("weekday:Weekday", tmp_path)
    assert issubclass(cls, RegimeClassifier)
    assert regime_class("Weekday", tmp_path) is cls  # a bare class name of the folder
    with pytest.raises(ModelNotFound, match="is not a regime class"):
        regime_class("weekday:NotARegime", tmp_path)
    with pytest.raises(ModelNotFound, match="unknown regime class 'Nope'.*TrendRegime"):
        regime_class("Nope", tmp_path)
