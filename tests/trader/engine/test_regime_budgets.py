"""Regime budgets through the whole kernel: the switch happens at the documented bar.

Rule under test (trader.engine.regime): a state that changes on the bar closing at
t is published with ts = t; budgets follow at the first bar closing after t, before
any model decides on it, and the re-sized targets are ordered with that bar's close.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from models.base import Model
from models.regimes import RegimeClassifier
from trader.core.events import Bar, RegimeChanged
from trader.engine.build import build_engine
from trader.engine.config import AppConfig, ConfigError, config_from_dict
from trader.engine.regime import RegimeBudgets, RegimeEngine
from trader.replay.backtest import run_backtest

DAY_NS = 86_400 * 1_000_000_000


class Script(Model):
    """Sends the weights scripted for given bar numbers of its instrument (test double of a
    user model: the real allocator, planner, risk and router size and send its orders)."""

    script: dict[int, float] = {0: 1.0}

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.n = -1

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        self.n += 1
        w = self.script.get(self.n)
        return None if w is None else {bar.instrument_id: w}


def _inst(iid: str, asset_class: str = "equity") -> dict[str, Any]:
    return {"id": iid, "symbol": iid, "venue": "X", "asset_class": asset_class,
            "lot_step": 1, "min_quantity": 1, "data": {"path": f"{iid}.csv", "timeframe": "1d"}}


def config(regime_budgets: dict, models: list[dict] | None = None,
           instruments: list[dict] | None = None, **extra: Any) -> dict[str, Any]:
    return {
        "name": "regime-test",
        "execution": {"slippage_bps": 0, "commission_bps": 0},
        "instruments": instruments or [_inst("SPY"), _inst("QQQ")],
        "models": models or [{"name": "hold", "model": "Script", "budget": 0.3,
                              "instruments": ["SPY"]}],
        "regimes": [{"name": "trend", "kind": "TrendRegime", "instruments": ["SPY"],
                     "timeframe": "1d", "params": {"window": 5}}],
        "regime_budgets": regime_budgets,
        "risk": {"price": {"stale_bars": 100}},
        **extra,
    }


def daily(inst: str, closes: list[float]) -> list[Bar]:
    out, prev = [], closes[0]
    for i, c in enumerate(closes):
        out.append(Bar((i + 1) * DAY_NS, inst, 86_400, i * DAY_NS, prev, max(prev, c),
                       min(prev, c), c, 1e6))
        prev = c
    return out


# Flat at 100 (the 5-bar average is ready at bar 4: 'down', as the close is not above it),
# then above the average from bar 12 ('up'), below again from bar 16.
SPY = [100.0] * 12 + [103.0, 104.0, 105.0, 106.0, 90.0, 90.0, 90.0, 90.0]


def run(cfg: dict[str, Any], feed: list[Bar], models: list[Model]) -> Any:
    app = AppConfig.model_validate(cfg)
    engine = build_engine(app, models=models)
    engine.kernel.run(feed)
    return engine


def test_budgets_switch_at_the_bar_after_the_change_and_not_before() -> None:
    cfg = config({"trend": {"down": {"hold": 0.5}}})
    feed = daily("SPY", SPY)
    engine = run(cfg, feed, [Script("hold", ["SPY"], "1d")])
    ts = [b.ts for b in feed]
    assert engine.regimes.history == [
        RegimeChanged(ts[4], "trend", "down", ""),
        RegimeChanged(ts[12], "trend", "up", "down"),
        RegimeChanged(ts[16], "trend", "down", "up"),
    ]
    orders = [(o.ts, str(o.side), o.quantity) for o in engine.orders]
    # Bar 0: 0.3 x 100,000 / 100 = 300 shares.  Bar 5 (not 4): the 'down' budget, 150.
    # Bar 13 (not 12): back to the whole budget at bar 13's NAV and close; bar 17 halves it.
    assert [o[0] for o in orders] == [ts[0], ts[5], ts[13], ts[17]]
    assert orders[0] == (ts[0], "BUY", 300.0)
    assert orders[1] == (ts[5], "SELL", 150.0)
    nav13 = 100_000 + 150 * (104.0 - 100.0)  # 150 shares held from 100 (bar 6's open)
    assert orders[2][1] == "BUY"
    assert orders[2][2] == int(0.3 * nav13 / 104.0) - 150
    assert orders[3][1] == "SELL"
    assert [t for t, _ in engine.regimes.switches] == [ts[5], ts[13], ts[17]]


def test_no_regime_budgets_means_regimes_only_publish() -> None:
    feed = daily("SPY", SPY)
    engine = run(config({}), feed, [Script("hold", ["SPY"], "1d")])
    assert len(engine.regimes.history) == 3
    assert [o.ts for o in engine.orders] == [feed[0].ts]  # budgets never move


def test_a_change_is_not_applied_mid_bar_to_decisions_of_the_same_timestamp() -> None:
    """SPY's bar at t flips the regime; QQQ's bar at the same t comes after it: the QQQ
    model's decision at t is still sized with the old budget; t+1 re-sizes it."""

    class Qqq(Script):
        script = {0: 1.0, 12: 0.5}

    cfg = config({"trend": {"down": {"qqq": 0.5}}},
                 models=[{"name": "qqq", "model": "Qqq", "budget": 0.3,
                          "instruments": ["QQQ"]}])
    spy, qqq = daily("SPY", SPY), daily("QQQ", [50.0] * len(SPY))
    feed = [b for pair in zip(spy, qqq, strict=True) for b in pair]  # SPY first at each t
    engine = run(cfg, feed, [Qqq("qqq", ["QQQ"], "1d")])
    ts = [b.ts for b in spy]
    orders = [(o.ts, str(o.side), o.quantity) for o in engine.orders]
    assert orders[0] == (ts[0], "BUY", 600.0)  # 0.3 x 100,000 / 50
    assert orders[1] == (ts[5], "SELL", 300.0)  # 'down' from bar 4, applied at bar 5
    # Bar 12: 'up' on SPY first, yet the QQQ decision of bar 12 (weight 0.5) is sized
    # with the 'down' budget (0.5 x 0.3 x NAV / 50 = 150 shares: sell 150)...
    assert orders[2] == (ts[12], "SELL", 150.0)
    # ...and bar 13 re-sizes it with the whole budget (0.5 x 0.3 x NAV / 50 = 300).
    assert orders[3] == (ts[13], "BUY", 150.0)


def test_states_and_budget_switches_ignore_poisoned_future_bars() -> None:
    clean = daily("SPY", SPY)
    poisoned = clean[:13] + daily("SPY", [100.0] * 13 + [1e9, 1e-3, 5e7, 2.0, 1e6, 3.0, 4.0])[13:]
    cfg = config({"trend": {"down": {"hold": 0.5}}}, risk={"enabled": False})
    a = run(cfg, clean, [Script("hold", ["SPY"], "1d")])
    b = run(cfg, poisoned, [Script("hold", ["SPY"], "1d")])
    t = clean[12].ts
    assert [e for e in a.regimes.history if e.ts <= t] == \
        [e for e in b.regimes.history if e.ts <= t]
    assert [o for o in a.orders if o.ts <= t] == [o for o in b.orders if o.ts <= t]
    assert a.regimes.history != b.regimes.history  # the poison was read


def test_multipliers_multiply_across_regimes_and_a_model_entry_beats_its_class() -> None:
    rules = {"trend": {"down": {"equity": 0.5, "a": 0.8}},
             "vol": {"high": {"equity": 0.5, "crypto": 0.25}}}
    classes = {"a": frozenset({"equity"}), "b": frozenset({"equity"}),
               "c": frozenset({"equity", "crypto"}), "d": frozenset({"fx"})}
    rb = RegimeBudgets(rules, {"a": 0.2, "b": 0.2, "c": 0.2, "d": 0.2}, classes)
    got = rb.multipliers({"trend": "down", "vol": "high"})
    assert got == {"a": 0.8 * 0.5, "b": 0.5 * 0.5, "c": 0.5 * 0.25, "d": 1.0}
    assert rb.multipliers({"trend": "up", "vol": None}) == dict.fromkeys("abcd", 1.0)


def test_boosts_are_clipped_to_the_total_and_the_asset_class_caps_cuts_never() -> None:
    classes = {"eq": frozenset({"equity"}), "btc": frozenset({"crypto"}),
               "fx": frozenset({"fx"})}
    budgets = {"eq": 0.4, "btc": 0.1, "fx": 0.3}
    rb = RegimeBudgets({"r": {"on": {"eq": 2.0, "btc": 3.0, "fx": 0.5}}}, budgets, classes,
                       total_cap=1.0, class_caps={"crypto": 0.2})
    m = rb.multipliers({"r": "on"})
    assert m["fx"] == 0.5  # a cut applies as given
    # Unclipped: 0.8 + 0.3 + 0.15 = 1.25 > 1; the crypto cap allows btc 0.2 (k <= 0.5);
    # the total allows k = (1 - 0.55) / (0.4 + 0.2) = 0.75: k = 0.5 for both boosts.
    assert m["btc"] == pytest.approx(2.0)
    assert m["eq"] == pytest.approx(1.5)
    effective = {k: budgets[k] * v for k, v in m.items()}
    assert sum(effective.values()) <= 1.0 + 1e-12
    assert effective["btc"] <= 0.2 + 1e-12
    # A class already at its cap gets no boost at all.
    capped = RegimeBudgets({"r": {"on": {"btc": 3.0}}}, {"btc": 0.3}, {"btc": frozenset(
        {"crypto"})}, total_cap=1.0, class_caps={"crypto": 0.2})
    assert capped.multipliers({"r": "on"}) == {"btc": 1.0}


def test_a_boost_in_the_engine_respects_gross_leverage_from_risk() -> None:
    cfg = config({"trend": {"down": {"hold": 4.0}}},
                 risk={"gross_leverage": {"limit": 0.6}, "instrument_exposure": {"limit": None},
                       "price": {"stale_bars": 100}})
    engine = run(cfg, daily("SPY", SPY[:8]), [Script("hold", ["SPY"], "1d")])
    assert engine.regimes.switches[0][1] == {"hold": pytest.approx(2.0)}  # 0.3 x 2 = 0.6
    assert engine.orders[1].quantity == 300.0  # 300 -> 600 shares at 100


@pytest.mark.parametrize("change,message", [
    ({"regime_budgets": {"trnd": {"down": {"hold": 0.5}}}},
     "regime_budgets.trnd: no regime named 'trnd'"),
    ({"regime_budgets": {"trend": {"down": {"nobody": 0.5}}}},
     "regime_budgets.trend.down.nobody: 'nobody' is neither a model name"),
    ({"regime_budgets": {"trend": {"down": {"hold": -1}}}},
     "regime_budgets.trend.down.hold: a budget multiplier must be a number >= 0"),
    ({"regime_budgets": {"trend": {"sideways": {"hold": 0.5}}}},
     "regime_budgets.trend.sideways: TrendRegime names no state 'sideways'; its states are"),
    ({"regimes": [{"name": "trend", "kind": "Trendy", "instruments": ["SPY"]}]},
     "regimes.0.kind: unknown regime class 'Trendy'"),
    ({"regimes": [{"name": "trend", "kind": "TrendRegime", "instruments": ["SPY"],
                   "params": {"windw": 3}}]},
     "regimes.0.params.windw: unknown parameter"),
    ({"regimes": [{"name": "trend", "kind": "TrendRegime", "instruments": ["DIA"]}]},
     "regimes.0.instruments: unknown instrument(s) ['DIA']"),
    ({"regimes": [{"name": "trend", "kind": "TrendRegime", "instruments": ["SPY"],
                   "timeframe": "1h"}]},
     "regimes.0.timeframe: 1h is not a multiple of SPY's data timeframe"),
    ({"regimes": [{"name": "t", "kind": "TrendRegime", "instruments": ["SPY"]},
                  {"name": "t", "kind": "TrendRegime", "instruments": ["QQQ"]}],
      "regime_budgets": {}},
     "regimes: duplicate regime names ['t']"),
])
def test_bad_regime_config_names_the_place_and_the_problem(
        tmp_path: Path, change: dict, message: str) -> None:
    raw = config({"trend": {"down": {"hold": 0.5}}})
    raw["models"][0]["model"] = "SmaCross"  # a shipped class: the config loads on its own
    raw.update(change)
    with pytest.raises(ConfigError) as err:
        config_from_dict(raw, tmp_path / "regimes.yaml")
    assert message in str(err.value)
    assert "regimes.yaml" in str(err.value)


def test_report_shows_time_and_performance_per_regime_state(tmp_path: Path) -> None:
    cfg = AppConfig.model_validate(config({"trend": {"down": {"hold": 0.5}}}))
    feed = daily("SPY", SPY)
    res = run_backtest(cfg, tmp_path, feed=feed, models=[Script("hold", ["SPY"], "1d")])
    reg = json.loads((tmp_path / "metrics.json").read_text())["regimes"]["trend"]
    assert reg["changes"] == 3 and reg["current"] == "down"
    states = reg["states"]
    assert set(states) == {"unclassified", "down", "up"}
    # NAV is sampled at each day's end (day 0 = the start, day k = bar k-1's close), 20
    # daily steps; a step belongs to the state known when it starts: the first state is
    # known at day 5 (bar 4's close), 'up' from day 13 to 17.
    assert {s: v["days"] for s, v in states.items()} == {"unclassified": 5, "down": 8 + 3,
                                                          "up": 4}
    assert sum(v["time_share"] for v in states.values()) == pytest.approx(1.0)
    navs = [p.nav for p in res.engine.recorder.equity]
    # 'up' holds days 13 to 17: bar 16's fall to 90 was earned while 'up' was the state known
    assert states["up"]["total_return"] == pytest.approx(navs[17] / navs[13] - 1, abs=1e-9)
    assert states["up"]["total_return"] < 0
    assert states["down"]["spells"] == 2
    html = (tmp_path / "report.html").read_text()
    assert 'id="regimes"' in html and "trend: up" in html
    assert "regimes" in res.metrics


def test_regime_budgets_may_live_in_a_file_of_their_own(tmp_path: Path) -> None:
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "regime_budgets.yaml").write_text(
        "trend:\n  down: {hold: 0.5, equity: 0.8}\n")
    raw = config("regime_budgets.yaml")
    raw["models"][0]["model"] = "SmaCross"
    cfg = config_from_dict(raw, tmp_path / "config" / "run.yaml")
    # The mapping replaces the name: a session journal's embedded config carries it.
    assert cfg.regime_budgets == {"trend": {"down": {"hold": 0.5, "equity": 0.8}}}
    with pytest.raises(ConfigError, match="regime_budgets: no file other.yaml"):
        config_from_dict({**raw, "regime_budgets": "other.yaml"}, tmp_path / "config" / "r.yaml")
    (tmp_path / "config" / "bad.yaml").write_text("trend:\n  sideways: {hold: 0.5}\n")
    with pytest.raises(ConfigError, match="regime_budgets.trend.sideways: TrendRegime names"):
        config_from_dict({**raw, "regime_budgets": "bad.yaml"}, tmp_path / "config" / "r.yaml")


def test_set_multipliers_resizes_only_the_models_whose_multiplier_moved() -> None:
    from models.intents import Sizing
    from trader.core.instruments import Instrument
    from trader.engine.allocator import Allocator
    from trader.engine.portfolio import Portfolio

    spy = Instrument(id="SPY", symbol="SPY", venue="X", asset_class="equity")
    pf = Portfolio({"SPY": spy}, 100_000.0)
    pf.on_bar(Bar(1, "SPY", 86_400, 0, 100, 100, 100, 100, 1))
    alloc = Allocator(pf, {"a": 0.4, "b": 0.2, "q": 0.1},
                      sizing={"q": Sizing(by="quantity", quantity=10)})
    for m in ("a", "b", "q"):
        alloc.set_weights(m, {"SPY": 1.0})
    alloc.hold("b", "SPY", 7.0)  # an expired entry: held as is, never re-sized
    pf.on_bar(Bar(2, "SPY", 86_400, 1, 200, 200, 200, 200, 1))  # NAV drifts (no position)
    assert alloc.set_multipliers({"a": 1.0, "b": 0.5, "q": 0.5}) == ["SPY"]
    assert alloc.targets["a"]["SPY"] == 400.0  # unchanged multiplier: not re-sized at 200
    assert alloc.targets["b"]["SPY"] == 7.0
    assert alloc.targets["q"]["SPY"] == 5.0  # a quantity size scales too
    assert alloc.set_multipliers({"a": 1.0, "b": 0.5, "q": 0.5}) == []  # nothing moved
    assert alloc.set_multipliers({}) == ["SPY"]  # back to 1: q re-sized
    assert alloc.targets["q"]["SPY"] == 10.0


class Moody(RegimeClassifier):
    """A user classifier with a bug: it names a state it does not declare on odd bars."""

    def states(self) -> tuple[str, ...]:
        return ("calm", "busy")

    def on_bar(self, bar: Bar) -> str | None:
        return "calm" if (bar.ts // DAY_NS) % 2 == 0 else "panic"


def test_an_undeclared_state_is_logged_once_and_not_taken() -> None:
    published: list[RegimeChanged] = []
    engine = RegimeEngine([Moody("mood", ["SPY"], "1d")], published.append, allocator=None,
                          budgets=None, rebalance=lambda *a: None, trading=lambda: True,
                          last_bar_ts={})
    feed = daily("SPY", [100.0] * 6)
    with capture_logs() as logs:
        for bar in feed:
            engine.on_bar(bar)
    assert published == [RegimeChanged(feed[1].ts, "mood", "calm", "")]
    assert engine.states == {"mood": "calm"}
    errors = [x for x in logs if x["event"] == "regime_state_undeclared"]
    assert len(errors) == 1 and errors[0]["state"] == "panic"
    assert errors[0]["declared"] == ["busy", "calm"]
