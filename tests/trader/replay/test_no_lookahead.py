"""Poisoned future: changing bars after time t changes nothing decided at or before t."""

from __future__ import annotations

import datetime as dt
import random
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import msgspec
import pytest

from trader.core.events import Bar
from trader.data.feed import feed_from_config
from trader.engine.config import AppConfig
from trader.replay.backtest import run_backtest

ROOT = Path(__file__).resolve().parents[3]
NS = 1_000_000_000
HOUR_NS = 3600 * NS


def utc(*args: int) -> int:
    return int(dt.datetime(*args, tzinfo=dt.UTC).timestamp()) * NS


# 17:00 UTC: inside the 16:00-20:00 H4 window and inside the daily window, so both
# aggregated bars that straddle t mix clean and poisoned base bars.
MID_SESSION = utc(2018, 6, 14, 17)
# The first hourly bar of a session whose previous daily window (which has no bar
# at 23:00) is only proven closed by this very bar, and the D1 model trades on it.
SESSION_OPEN = utc(2016, 3, 29, 13)


def config() -> AppConfig:
    def inst(iid: str, file: str, tf: str) -> dict:
        return {"id": iid, "symbol": iid, "venue": "ARCA", "asset_class": "equity",
                "lot_step": 1, "min_quantity": 1,
                "data": {"path": str(ROOT / "data" / file), "timeframe": tf}}

    def model(name: str, iid: str, tf: str, cls: str = "SmaCross", **params) -> dict:
        return {"name": name, "model": cls, "budget": 0.2, "instruments": [iid],
                "timeframe": tf, "params": params}

    return AppConfig.model_validate({
        "name": "poison",
        "data": {"start": "2016-01-01", "end": "2019-06-01"},
        "execution": {"slippage_bps": 2, "commission_bps": 1, "fee_per_order": 1},
        "instruments": [inst("H1", "spy_1h.parquet", "1h"), inst("H4", "spy_1h.parquet", "1h"),
                        inst("D1", "spy_1h.parquet", "1h"), inst("QQQ", "qqq_1d.parquet", "1d"),
                        inst("IWM", "iwm_1d.parquet", "1d")],
        "models": [
            model("base_1h", "H1", "1h", fast=5, slow=20, allow_short=True),
            model("agg_4h", "H4", "4h", fast=3, slow=12, allow_short=True),
            model("agg_1d", "D1", "1d", fast=3, slow=10, allow_short=True),
            model("base_1d", "QQQ", "1d", fast=5, slow=20),
            model("meanrev", "IWM", "1d", cls="IndexMeanReversion"),
        ],
    })


def times_ten(bar: Bar, _rng: random.Random) -> Bar:
    return msgspec.structs.replace(bar, open=bar.open * 10, high=bar.high * 10,
                                   low=bar.low * 10, close=bar.close * 10)


def garbage(bar: Bar, rng: random.Random) -> Bar:
    # Valid but meaningless bars: a random walk that ignores the real prices.
    o, c = rng.uniform(1, 500), rng.uniform(1, 500)
    return msgspec.structs.replace(bar, open=o, high=max(o, c) * 1.01, low=min(o, c) * 0.99,
                                   close=c, volume=rng.uniform(0, 1e6))


def poisoned(cfg: AppConfig, t: int,
             spoil: Callable[[Bar, random.Random], Bar]) -> Iterator[Bar]:
    rng = random.Random(7)
    for bar in feed_from_config(cfg):
        yield spoil(bar, rng) if bar.ts_open >= t else bar


def run(cfg: AppConfig, feed=None):
    result = run_backtest(cfg, None, feed=feed)
    return result.engine.orders, result.engine.gateways["sim"].fills


@pytest.fixture(scope="module")
def clean():
    return run(config())


@pytest.mark.parametrize("t", [MID_SESSION, SESSION_OPEN], ids=["mid_session", "session_open"])
@pytest.mark.parametrize("spoil", [times_ten, garbage])
def test_nothing_decided_at_or_before_t_changes(clean, spoil, t: int) -> None:
    cfg = config()
    orders, fills = clean
    p_orders, p_fills = run(cfg, poisoned(cfg, t, spoil))
    before = [o for o in orders if o.ts <= t]
    assert [o for o in p_orders if o.ts <= t] == before
    assert [f for f in p_fills if f.ts < t] == [f for f in fills if f.ts < t]
    # Every timeframe, base and aggregated, decided something before t ...
    per_inst = Counter(o.instrument_id for o in before)
    assert all(per_inst[i] >= 2 for i in ("H1", "H4", "D1", "QQQ", "IWM")), per_inst
    # ... and the poison really changed what came after it.
    assert [o for o in p_orders if o.ts > t] != [o for o in orders if o.ts > t]


def test_late_daily_window_is_decided_when_it_is_proven_closed(clean) -> None:
    """The case SESSION_OPEN exercises: the D1 bar of 28 March is published by the
    29 March 13:00 bar, so the D1 model's order is stamped with that bar's close."""
    orders, _ = clean
    assert [o.ts for o in orders if o.instrument_id == "D1"
            and SESSION_OPEN - 24 * HOUR_NS < o.ts <= SESSION_OPEN + HOUR_NS] == [
        SESSION_OPEN + HOUR_NS]


def intents_config() -> AppConfig:
    """The same runs with emulated orders, gates and the realistic cost model on."""
    raw = config().model_dump(mode="json")
    raw["execution"].update({"spread_bps": 3, "slippage_model": "volatility",
                             "slippage_vol_mult": 0.1, "max_participation": 0.2,
                             "latency_bars": 1})
    orders = {
        "base_1h": {"exits": {"stop_pct": 0.004, "take_profit_atr": 3, "max_bars": 30},
                    "cooldown_bars": 2},
        "agg_4h": {"entry": {"type": "limit", "limit_offset_bps": 5, "expiry_bars": 2},
                   "exits": {"trail_atr": 2}},
        "agg_1d": {"exits": {"trail_pct": 0.01}},
    }
    for m in raw["models"]:
        if m["name"] in orders:
            m["orders"] = orders[m["name"]]
        if m["name"] == "base_1d":
            m["gates"] = {"persistence": 2, "cost_bps": 5}
    return AppConfig.model_validate(raw)


@pytest.mark.parametrize("spoil", [times_ten, garbage])
def test_emulated_orders_gates_and_costs_read_no_future(spoil) -> None:
    cfg = intents_config()
    orders, fills = run(cfg)
    reasons = set(run_backtest(cfg, None).engine.pipeline.reasons.values())
    assert {"stop", "trail"} <= reasons  # the emulation really acts in this run
    p_orders, p_fills = run(cfg, poisoned(cfg, MID_SESSION, spoil))
    assert [o for o in p_orders if o.ts <= MID_SESSION] == [
        o for o in orders if o.ts <= MID_SESSION]
    assert [f for f in p_fills if f.ts < MID_SESSION] == [
        f for f in fills if f.ts < MID_SESSION]
    assert [o for o in p_orders if o.ts > MID_SESSION] != [
        o for o in orders if o.ts > MID_SESSION]
