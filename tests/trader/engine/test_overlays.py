"""Portfolio overlays: vol targeting, Kelly caps, per-model drawdown control, rebalance band."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from scripted_model import Scripted

from models.base import Model
from trader.core.events import Bar
from trader.engine.build import Engine, build_engine
from trader.engine.config import AppConfig, ConfigError, load_config
from trader.engine.overlays import covariance, kelly_cap, predicted_vol, vol_target_scale
from trader.replay.backtest import run_backtest

NS = 1_000_000_000
DAY = 86_400
T0 = 1_600_000_000 // DAY * DAY * NS  # a UTC midnight
DATA = Path(__file__).resolve().parents[3] / "data"




def always(weight: float) -> Callable[[Bar, int], dict[str, float]]:
    return lambda bar, n: {bar.instrument_id: weight}


def _inst(iid: str, path: str = "x.parquet") -> dict[str, Any]:
    return {"id": iid, "symbol": iid, "venue": "X", "asset_class": "equity",
            "tick_size": 0.01, "lot_step": 1, "min_quantity": 1,
            "data": {"path": path, "timeframe": "1d"}}


def synthetic_config(overlays: dict[str, Any], budgets: dict[str, float]) -> AppConfig:
    """Daily bars of AAA and BBB, one model per instrument, no costs, loose risk caps."""
    return AppConfig.model_validate({
        "name": "overlays-test",
        "portfolio": {"initial_cash": 100_000, "overlays": overlays},
        "execution": {"slippage_bps": 0, "commission_bps": 0, "fee_per_order": 0},
        "instruments": [_inst("AAA"), _inst("BBB")],
        "models": [{"name": f"m_{i.lower()}", "model": "SmaCross", "budget": b,
                    "instruments": [i], "timeframe": "1d"} for i, b in budgets.items()],
        "risk": {"instrument_exposure": {"limit": 1.0}, "price": {"stale_bars": 10},
                 "drawdown": {"trigger": 0.5, "halt": 0.9}},
    })


def daily_bars(paths: dict[str, list[float]]) -> Iterator[Bar]:
    """One daily bar per instrument and day, opening at the previous close."""
    n = len(next(iter(paths.values())))
    prev: dict[str, float] = {}
    for k in range(n):
        ts = T0 + (k + 1) * DAY * NS
        for inst, closes in paths.items():
            c = closes[k]
            o = prev.get(inst, c)
            yield Bar(ts, inst, DAY, ts - DAY * NS, o, max(o, c), min(o, c), c, 1e9)
            prev[inst] = c


def path_from(returns: list[float], start: float = 100.0) -> list[float]:
    out, p = [], start
    for r in returns:
        p *= 1 + r
        out.append(p)
    return out


def run_synthetic(cfg: AppConfig, models: list[Model], bars: list[Bar]) -> Engine:
    engine = build_engine(cfg, models=models)
    engine.kernel.run(bars)
    return engine


# -- the rules --
def test_covariance_and_predicted_vol_match_hand_calculation() -> None:
    rows = [[0.01, 0.02], [-0.01, 0.0], [0.03, 0.01], [0.01, -0.03]]
    cov = covariance(rows)
    # column means 0.01 and 0.0; deviations by hand, n - 1 = 3
    assert cov[0][0] == pytest.approx((0 + 0.0004 + 0.0004 + 0) / 3)
    assert cov[1][1] == pytest.approx((0.0004 + 0 + 0.0001 + 0.0009) / 3)
    assert cov[0][1] == cov[1][0] == pytest.approx((0 + 0 + 0.0002 * 1 + 0) / 3)
    w = [0.5, 0.5]
    var = 0.25 * cov[0][0] + 0.25 * cov[1][1] + 0.5 * cov[0][1]
    assert predicted_vol(w, cov, 252) == pytest.approx(math.sqrt(var * 252))


def test_vol_scale_is_target_over_prediction_capped_by_max_leverage() -> None:
    assert vol_target_scale(0.10, 0.20, 1.0) == pytest.approx(0.5)
    assert vol_target_scale(0.10, 0.05, 1.5) == pytest.approx(1.5)  # would be 2: capped
    assert vol_target_scale(0.10, 0.0, 1.0) is None  # nothing at risk: keep the scale


def test_kelly_cap_is_fraction_of_mean_over_variance_within_floor_and_budget() -> None:
    weak = [0.01, -0.0098] * 50  # mean 1e-4, variance ~1e-4: full Kelly ~1
    strong = [0.012, -0.008] * 50  # mean 2e-3: full Kelly ~20
    losing = [0.008, -0.012] * 50
    assert kelly_cap(weak, 0.5) == pytest.approx(0.5, rel=0.05)
    assert kelly_cap(strong, 0.5) == 1.0
    assert kelly_cap(losing, 0.5) == 0.0
    assert kelly_cap(losing, 0.5, floor=0.2) == 0.2
    assert kelly_cap([0.01] * 10, 0.5) is None  # no variance: no estimate


# -- config --
@pytest.mark.parametrize(("overlays", "expected"), [
    ({"model_drawdown": {"trigger": 0.2, "halt": 0.1}},
     "portfolio.overlays.model_drawdown: Value error, halt (0.1) must be above trigger (0.2)"),
    ({"rebalance_band": 0.02}, "portfolio.overlays: Value error, no overlay configured"),
    ({"vol_target": {"annual_vol": 0.1, "lookback": 10, "min_periods": 30}},
     "min_periods (30) exceeds lookback (10)"),
    ({"vol_target": {"annual_vol": 0.1}, "timeframe": "1x"}, "portfolio.overlays.timeframe"),
    ({"kelly": {"fraction": 0}}, "portfolio.overlays.kelly.fraction"),
])
def test_bad_overlay_config_names_the_key_and_the_problem(tmp_path: Path,
                                                          overlays: dict, expected: str) -> None:
    import yaml

    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump({
        "portfolio": {"overlays": overlays},
        "instruments": [_inst("SPY", str(DATA / "spy_1d.parquet"))],
    }))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert expected in str(err.value)


def test_vol_target_leverage_must_fit_in_risks_gross_leverage_cap(tmp_path: Path) -> None:
    import yaml

    doc = {
        "portfolio": {"overlays": {"vol_target": {"annual_vol": 0.1, "max_leverage": 2.0}}},
        "instruments": [_inst("SPY", str(DATA / "spy_1d.parquet"))],
        "models": [{"name": "spy", "model": "SmaCross", "budget": 0.8, "instruments": ["SPY"],
                    "timeframe": "1d"}],
        "risk": {"gross_leverage": {"limit": 1.2}},
    }
    path = tmp_path / "lever.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert ("portfolio.overlays.vol_target.max_leverage: 2.0 x the models' budgets (0.8000) "
            "= 1.6000 exceeds risk.gross_leverage.limit (1.2)") in str(err.value)
    doc["risk"]["gross_leverage"]["limit"] = 1.6
    path.write_text(yaml.safe_dump(doc))
    assert load_config(path).portfolio.overlays is not None


def test_config_without_overlays_dumps_as_before() -> None:
    """No ``overlays`` key in the dump: config hashes and journal headers are unchanged."""
    cfg = AppConfig.model_validate({"instruments": [_inst("AAA")]})
    assert "overlays" not in cfg.model_dump()["portfolio"]
    assert "overlays" not in cfg.model_dump_json()
    with_ov = synthetic_config({"vol_target": {"annual_vol": 0.1}}, {"AAA": 0.5})
    again = AppConfig.model_validate(with_ov.model_dump())
    assert again.portfolio.overlays == with_ov.portfolio.overlays  # a journal header rebuilds it


# -- volatility targeting on the shipped data --
def shipped_config(overlays: dict[str, Any] | None) -> AppConfig:
    """SPY and IWM daily 2002-2021, each held long at half the NAV, no risk cap in the way."""
    portfolio: dict[str, Any] = {"initial_cash": 1_000_000}
    if overlays is not None:
        portfolio["overlays"] = overlays
    return AppConfig.model_validate({
        "name": "vol-target",
        "portfolio": portfolio,
        "data": {"start": "2002-01-01"},
        "instruments": [_inst("SPY", str(DATA / "spy_1d.parquet")),
                        _inst("IWM", str(DATA / "iwm_1d.parquet"))],
        "models": [{"name": "spy_long", "model": "SmaCross", "budget": 0.5,
                    "instruments": ["SPY"]},
                   {"name": "iwm_long", "model": "SmaCross", "budget": 0.5,
                    "instruments": ["IWM"]}],
        "risk": {"instrument_exposure": {"limit": 2.0}, "gross_leverage": {"limit": 3.0},
                 "net_exposure": {"limit": 3.0}, "max_order_notional": {"limit": None},
                 "price": {"stale_bars": 10}, "drawdown": {"trigger": 0.9, "halt": 0.95}},
    })


def shipped_run(overlays: dict[str, Any] | None) -> dict[str, Any]:
    cfg = shipped_config(overlays)
    models = [Scripted("spy_long", ["SPY"], "1d", always(1.0)),
              Scripted("iwm_long", ["IWM"], "1d", always(1.0))]
    result = run_backtest(cfg, models=models)
    return {**result.metrics, "reasons": dict(result.engine.pipeline.reasons),
            "orders": len(result.engine.orders)}


VOL_TARGET = {"annual_vol": 0.10, "lookback": 60, "min_periods": 20, "max_leverage": 2.0}


def test_vol_targeting_keeps_realised_vol_near_target_on_twenty_years_of_equities() -> None:
    plain = shipped_run(None)
    targeted = shipped_run({"vol_target": VOL_TARGET})
    # Held unscaled, SPY and IWM half and half run at about twice the target.
    assert plain["annual_volatility"] > 0.17
    # Realised over 2002-2021 (2008 and 2020 included) within 20 % of the 10 % target:
    # a 60-day covariance lags the jumps into a crisis (realised runs above target
    # then) and the calm after it (below), which is what the tolerance allows for.
    assert targeted["annual_volatility"] == pytest.approx(0.10, rel=0.20)
    assert targeted["overlays"]["vol_scale"]["min"] < 0.3  # cut hard in 2008
    assert targeted["overlays"]["vol_scale"]["max"] > 1.0  # levered up in calm years
    assert set(targeted["reasons"].values()) == {"overlay"}


def test_rebalance_band_suppresses_churn_of_small_re_sizings() -> None:
    free = shipped_run({"vol_target": VOL_TARGET})
    banded = shipped_run({"vol_target": VOL_TARGET, "rebalance_band": 0.10})
    assert free["orders"] > 2 * banded["orders"] > 0
    # The band does not stop vol targeting from working, only from trading noise.
    assert banded["annual_volatility"] == pytest.approx(0.10, rel=0.30)


# -- Kelly caps --
def test_kelly_caps_a_weak_edge_and_leaves_a_strong_one_at_budget() -> None:
    n = 300
    strong = path_from([0.012, -0.008] * (n // 2))
    weak = path_from([0.01, -0.0098] * (n // 2))
    cfg = synthetic_config({"kelly": {"fraction": 0.5, "lookback": 100, "min_periods": 100}},
                           {"AAA": 0.4, "BBB": 0.4})
    models = [Scripted("m_aaa", ["AAA"], "1d", always(1.0)),
              Scripted("m_bbb", ["BBB"], "1d", always(1.0))]
    engine = run_synthetic(cfg, models, list(daily_bars({"AAA": strong, "BBB": weak})))
    ov = engine.overlays
    assert ov is not None
    assert ov.kelly["m_aaa"] == 1.0
    assert 0.35 < ov.kelly["m_bbb"] < 0.65  # half of a Kelly fraction of about 1
    pf = engine.portfolio
    held = {m: pf.model_book(m).market_value(pf.marks) / (0.4 * pf.nav)
            for m in ("m_aaa", "m_bbb")}
    # Cut to about half its budget when the cap came (the NAV grew since, with the
    # strong model, so a fixed quantity is a smaller share of it now).
    assert 0.3 < held["m_bbb"] < 0.55
    assert held["m_aaa"] > 0.9  # only the drift of its fixed quantity away from its budget
    first_cap = next(e for e in ov.events if e.model == "m_bbb")
    cut = [o for o in engine.orders if o.instrument_id == "BBB" and o.ts >= first_cap.ts]
    assert cut and cut[0].side == "SELL" and engine.pipeline.reasons[cut[0].client_order_id] == (
        "overlay")
    assert not [o for o in engine.orders if o.instrument_id == "AAA" and o.ts >= first_cap.ts]


# -- per-model drawdown control --
def test_model_drawdown_halt_flattens_only_that_model() -> None:
    n = 80
    losing = path_from([-0.01] * n)
    rising = path_from([0.002] * n)
    cfg = synthetic_config({"model_drawdown": {"trigger": 0.05, "halt": 0.10,
                                               "derisk_factor": 0.5}},
                           {"AAA": 0.4, "BBB": 0.4})
    # The loser keeps asking for exposure after its halt: it must get none.
    loser = Scripted("m_aaa", ["AAA"], "1d", lambda bar, k: {"AAA": 1.0 if k % 10 < 5 else 0.8})
    models = [loser, Scripted("m_bbb", ["BBB"], "1d", always(1.0))]
    engine = run_synthetic(cfg, models, list(daily_bars({"AAA": losing, "BBB": rising})))
    ov = engine.overlays
    assert ov is not None
    levels = [(e.model, e.level) for e in ov.events]
    assert levels == [("m_aaa", "derisk"), ("m_aaa", "halt")]
    halt_ts = ov.events[-1].ts
    assert engine.portfolio.model_book("m_aaa").quantity("AAA") == 0
    assert engine.portfolio.position("AAA") == 0
    aaa_after = [o for o in engine.orders if o.instrument_id == "AAA" and o.ts > halt_ts]
    assert aaa_after == []  # nothing after the flattening order of the halt bar
    # The other model kept its position and was never touched by an overlay order.
    assert engine.portfolio.model_book("m_bbb").quantity("BBB") > 0
    assert [o.instrument_id for o in engine.orders].count("BBB") == 1
    assert engine.risk.summary()["state"] == "ACTIVE"
    assert ov.summary()["halted_models"] == ["m_aaa"]
    reasons = engine.pipeline.reasons
    for event in ov.events:  # de-risked, then flattened, by orders of their own
        (sent,) = [o for o in engine.orders if o.instrument_id == "AAA" and o.ts == event.ts]
        assert sent.side == "SELL" and reasons[sent.client_order_id] == "overlay"


def test_warm_up_does_not_judge_a_restored_book_its_drawdown_starts_at_ready() -> None:
    """A restart restores a model's book and warms up on bars that lose 30 %: nothing acts
    then (invariant: warm-up never triggers a risk action); from READY on, the model's
    drawdown is measured from its equity at READY."""
    from trader.engine.build import make_sim
    from trader.engine.portfolio import Position

    cfg = synthetic_config({"model_drawdown": {"trigger": 0.05, "halt": 0.25}},
                           {"AAA": 0.4})
    quiet = Scripted("m_aaa", ["AAA"], "1d", lambda bar, k: None)
    engine = build_engine(cfg, mode="paper", gateways={"sim": make_sim(cfg)}, models=[quiet])
    pf = engine.portfolio
    pf.adopt({"AAA": 400.0})
    book = pf.model_book("m_aaa")
    book.cash = -40_000.0
    book.positions["AAA"] = Position(400.0, 100.0)
    closes = path_from([-0.01] * 60)
    bars = list(daily_bars({"AAA": closes}))
    warm, live = bars[:36], bars[36:]
    engine.kernel.run(warm)  # 30 % down: the restored book's own drawdown is past halt
    ov = engine.overlays
    assert ov is not None and ov.events == []
    ready = warm[-1].ts
    engine.risk.arm(ready)
    engine.pipeline.start_trading()
    engine.kernel.run(live)
    first = ov.events[0]
    assert (first.kind, first.level) == ("model_drawdown", "derisk")
    # 5 % below the equity at READY (about 5 bars of -1 %), not the book's old peak.
    days_after_ready = (first.ts - ready) // (DAY * NS)
    assert 5 <= days_after_ready <= 7


# -- no look-ahead --
def test_poisoned_future_bars_do_not_change_earlier_overlay_decisions() -> None:
    n = 200
    a = path_from([0.015 if k % 3 else -0.02 for k in range(n)])
    b = path_from([0.01 if k % 2 else -0.011 for k in range(n)])
    overlays = {"vol_target": {"annual_vol": 0.05, "lookback": 20, "min_periods": 10},
                "kelly": {"fraction": 0.5, "lookback": 50, "min_periods": 20, "floor": 0.1},
                "model_drawdown": {"trigger": 0.03, "halt": 0.5, "restore_at": 0.01}}
    cut = 150
    poisoned_a = a[:cut] + [x * 3 for x in a[cut:]]
    poisoned_b = b[:cut] + [x / 4 for x in b[cut:]]

    def run(pa: list[float], pb: list[float]) -> Engine:
        cfg = synthetic_config(overlays, {"AAA": 0.4, "BBB": 0.4})
        models = [Scripted("m_aaa", ["AAA"], "1d", always(1.0)),
                  Scripted("m_bbb", ["BBB"], "1d", always(1.0))]
        return run_synthetic(cfg, models, list(daily_bars({"AAA": pa, "BBB": pb})))

    clean, poisoned = run(a, b), run(poisoned_a, poisoned_b)
    t_cut = T0 + cut * DAY * NS  # the close of the last clean bar
    before = [e for e in clean.overlays.events if e.ts <= t_cut]
    assert before and {e.kind for e in before} >= {"vol_target", "kelly"}
    assert [e for e in poisoned.overlays.events if e.ts <= t_cut] == before
    assert ([o for o in poisoned.orders if o.ts <= t_cut]
            == [o for o in clean.orders if o.ts <= t_cut])
    assert clean.overlays.events != poisoned.overlays.events  # the poison does matter later
