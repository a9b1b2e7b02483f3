"""The shipped models' rules on hand-made price paths, and their parameter checks."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from models.crypto_momentum import CryptoMomentum
from models.equity_trend import EquityTrend
from models.index_mean_reversion import IndexMeanReversion
from models.indicators import ATR, EMA, RSI, Momentum, RollingMean, RollingStd
from models.registry import MODEL_CLASSES, model_class
from models.sma_cross import SmaCross
from trader.core.events import Bar

DAY = 86_400
NS = 1_000_000_000


def bars(closes: list[float], inst: str = "X", tf: int = DAY) -> list[Bar]:
    return [Bar((i + 1) * tf * NS, inst, tf, i * tf * NS, c, c, c, c, 1.0)
            for i, c in enumerate(closes)]


def decisions(model, closes: list[float], inst: str = "X") -> list[tuple[int, float]]:
    """(bar index, weight) for every bar on which the model spoke."""
    out = []
    for i, b in enumerate(bars(closes, inst, model.timeframe)):
        w = model.on_bar(b)
        if w is not None:
            out.append((i, w[inst]))
    return out


def test_registry_knows_every_shipped_model() -> None:
    assert set(MODEL_CLASSES) == {"SmaCross", "EquityTrend", "IndexMeanReversion",
                                  "CryptoMomentum", "XGBoost"}
    assert model_class("EquityTrend") is EquityTrend
    with pytest.raises(KeyError, match="unknown model class 'Foo'"):
        model_class("Foo")


# -- indicators -----------------------------------------------------------------------

def test_ema_and_atr_against_direct_formulas() -> None:
    xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0]
    ema = EMA(3)
    got = [ema.update(x) for x in xs]
    want = [None, None, (3 + 1 + 4) / 3]
    for x in xs[3:]:
        want.append(want[-1] + 0.5 * (x - want[-1]))
    assert got[:2] == [None, None] and got[2:] == pytest.approx(want[2:])
    atr = ATR(2)
    hlc = [(10, 8, 9), (12, 9, 11), (11, 7, 8), (9, 8, 8.5)]
    out = [atr.update(*b) for b in hlc]
    tr = [3.0, 4.0, 1.0]  # max(h-l, |h-prev c|, |l-prev c|) from the second bar
    assert out[:2] == [None, None]
    assert out[2] == pytest.approx((tr[0] + tr[1]) / 2)
    assert out[3] == pytest.approx((out[2] + tr[2]) / 2)


def test_rolling_mean_std_and_momentum_against_direct_formulas() -> None:
    xs = [3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0]
    m, s, mom = RollingMean(3), RollingStd(3), Momentum(3)
    for i, x in enumerate(xs):
        got_m, got_s, got_mom = m.update(x), s.update(x), mom.update(x)
        if i < 2:
            assert got_m is None and got_s is None
        else:
            w = xs[i - 2:i + 1]
            mean = sum(w) / 3
            assert got_m == pytest.approx(mean)
            assert got_s[0] == pytest.approx(mean)
            assert got_s[1] == pytest.approx(math.sqrt(sum((v - mean) ** 2 for v in w) / 3))
        assert got_mom == (None if i < 3 else pytest.approx(x / xs[i - 3] - 1))


def test_rsi_is_wilder_smoothed() -> None:
    rsi = RSI(2)
    assert rsi.update(10) is None
    assert rsi.update(11) is None  # one change: not enough yet
    # seed: avg gain = (1 + 0)/2, avg loss = (0 + 2)/2 -> RS 0.5
    assert rsi.update(9) == pytest.approx(100 - 100 / 1.5)
    # Wilder: gain (0.5*1 + 3)/2 = 1.75, loss (1*1 + 0)/2 = 0.5 -> RS 3.5
    assert rsi.update(12) == pytest.approx(100 - 100 / 4.5)
    only_up = RSI(2)
    for x in (1, 2, 3, 4):
        v = only_up.update(x)
    assert v == 100.0


# -- EquityTrend ------------------------------------------------------------------------

def test_equity_trend_enters_above_trend_with_momentum_and_exits_below_exit_sma() -> None:
    model = EquityTrend("t", ["X"], "1d", {"trend": 20, "momentum": 10, "exit": 5})
    closes = [100.0] * 20                       # flat: close == SMA, no entry
    closes += [101.0 + i for i in range(5)]     # rises above the 20-SMA with momentum
    closes += [110.0, 109.0, 111.0]             # stays above the 5-SMA: hold
    closes += [90.0]                            # falls below the 5-SMA: exit
    got = decisions(model, closes)
    assert got == [(20, 1.0), (28, 0.0)]


def test_equity_trend_needs_positive_momentum() -> None:
    model = EquityTrend("t", ["X"], "1d", {"trend": 5, "momentum": 8, "exit": 2})
    # Above its short SMA after a dip, but still below where it was 8 bars ago.
    closes = [200.0, 190, 180, 170, 160, 150, 140, 130, 135, 140]
    assert decisions(model, closes) == []


def test_equity_trend_defaults_and_param_checks() -> None:
    p = EquityTrend("t", ["X"], "1d").params
    assert (p.trend, p.momentum, p.exit) == (200, 60, 50)
    with pytest.raises(ValidationError, match="exit"):
        EquityTrend("t", ["X"], "1d", {"trend": 50, "exit": 60})
    with pytest.raises(ValidationError):
        EquityTrend("t", ["X"], "1d", {"momentum": 0})


# -- IndexMeanReversion ---------------------------------------------------------------

def test_mean_reversion_buys_a_dip_inside_the_band_and_exits_on_strength() -> None:
    model = IndexMeanReversion("m", ["X"], "1d", {"band_period": 10})
    closes = [100 + 0.5 * i for i in range(20)]  # steady rise: RSI(2) at 100
    closes += [108.5, 107.5, 106.5]              # three down days: RSI(2) 33, 14, 6.7
    closes += [108.5, 110.5, 112.5]              # rebound: RSI(2) 70, 87, 94
    # Enters on the third down day (RSI < 10, close 106.5 above the lower band ~105.9),
    # exits on the first bar with RSI > 90.
    assert decisions(model, closes) == [(22, 1.0), (25, 0.0)]


def test_mean_reversion_skips_a_crash_through_the_lower_band() -> None:
    model = IndexMeanReversion("m", ["X"], "1d", {"band_period": 10})
    # Same RSI collapse, but the last drop takes the close below the lower band.
    closes = [100 + 0.5 * i for i in range(20)] + [108.5, 107.5, 100.0]
    assert decisions(model, closes) == []
    wide = IndexMeanReversion("m", ["X"], "1d", {"band_period": 10, "band_std": 6.0})
    assert decisions(wide, closes) == [(22, 1.0)]


def test_mean_reversion_param_checks() -> None:
    with pytest.raises(ValidationError, match="entry_below"):
        IndexMeanReversion("m", ["X"], "1d", {"entry_below": 95, "exit_above": 90})


# -- CryptoMomentum ---------------------------------------------------------------------

def test_crypto_momentum_decides_only_every_n_bars() -> None:
    model = CryptoMomentum("c", ["X"], "4h", {"fast": 3, "slow": 6, "rebalance_every": 4})
    closes = [100.0 + i for i in range(12)] + [100.0 - i for i in range(12)]
    got = decisions(model, closes)
    assert all((i + 1) % 4 == 0 for i, _ in got)
    assert got[0] == (7, 1.0)       # first scheduled bar with both momenta known (bar 8)
    assert got[1][1] == 0.0 and got[1][0] > 12
    assert len(got) == 2            # only changes of view are reported


def test_crypto_momentum_stays_flat_when_one_horizon_is_negative() -> None:
    model = CryptoMomentum("c", ["X"], "1h", {"fast": 2, "slow": 6, "rebalance_every": 1})
    # Long horizon down, short horizon up.
    closes = [100.0, 98, 96, 94, 92, 90, 91, 92]
    assert decisions(model, closes) == []
    with pytest.raises(ValidationError):
        CryptoMomentum("c", ["X"], "1h", {"fast": 60, "slow": 30})
    with pytest.raises(ValidationError):
        CryptoMomentum("c", ["X"], "1h", {"rebalance_every": 0})


# -- SmaCross and the shared shape ------------------------------------------------------

def test_sma_cross_speaks_only_on_crosses_and_may_short() -> None:
    model = SmaCross("s", ["X"], "1d", {"fast": 2, "slow": 4, "allow_short": True})
    closes = [10.0, 10, 10, 10, 12, 14, 13, 9, 7, 7]
    got = decisions(model, closes)
    assert [w for _, w in got] == [1.0, -1.0]


@pytest.mark.parametrize("cls", [SmaCross, EquityTrend, IndexMeanReversion, CryptoMomentum])
def test_models_keep_instruments_apart_and_reject_unknown_params(cls) -> None:
    model = cls("m", ["A", "B"], "1d")
    assert model.subscriptions() == [("A", DAY), ("B", DAY)]
    a = bars([100.0 + i for i in range(300)], "A")
    b = bars([400.0 - i for i in range(300)], "B")
    for x, y in zip(a, b, strict=True):
        for out, inst in ((model.on_bar(x), "A"), (model.on_bar(y), "B")):
            assert out is None or set(out) == {inst}
    with pytest.raises(ValidationError):
        cls("m", ["A"], "1d", {"no_such_param": 1})


def test_sma_cross_enter_on_cross_waits_for_an_actual_cross() -> None:
    rising = [float(i) for i in range(1, 12)]  # fast above slow from the first full window
    dip_and_rise = rising + [1.0, 1.0, 1.0, 1.0] + [20.0, 30.0]
    default = SmaCross("s", ["X"], "1d", {"fast": 2, "slow": 4})
    crossing = SmaCross("s", ["X"], "1d", {"fast": 2, "slow": 4, "enter_on_cross": True})
    first = decisions(default, dip_and_rise)
    assert first[0] == (3, 1.0)  # the default buys on the first bar that finds fast > slow
    got = decisions(crossing, dip_and_rise)
    # No entry on bar 3; the first signal is the exit of a position it never took (a
    # flat weight is harmless), then the entry on the cross back up.
    assert (3, 1.0) not in got and got[-1] == (15, 1.0)
    assert [w for _, w in got] == [0.0, 1.0]
