"""Risk configuration: defaults, the shipped config, and clear refusals of bad values."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from risk.config import OnBreach, RiskConfig
from trader.engine.config import ConfigError, load_config

REPO = Path(__file__).resolve().parents[2]

BASE = {
    "instruments": [{"id": "AAA", "symbol": "AAA", "venue": "X", "asset_class": "equity"}],
}


def load_with(tmp_path: Path, risk: object) -> object:
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(dict(BASE, risk=risk)))
    return load_config(path)


def refused(tmp_path: Path, risk: object) -> str:
    with pytest.raises(ConfigError) as info:
        load_with(tmp_path, risk)
    msg = str(info.value)
    assert str(tmp_path / "run.yaml") in msg  # names the file
    return msg


def test_defaults_are_the_issue_defaults():
    r = RiskConfig()
    assert r.instrument_exposure.limit == 0.40
    assert r.asset_class_exposure.limits == {"crypto": 0.20}
    assert r.gross_leverage.limit == 1.2
    assert (r.drawdown.trigger, r.drawdown.halt, r.drawdown.derisk_factor) == (0.15, 0.20, 0.5)
    assert r.instrument_exposure.on_breach is OnBreach.SCALE
    assert r.kill_switch.backend == "memory"


def test_negative_cap_is_refused(tmp_path):
    msg = refused(tmp_path, {"instrument_exposure": {"limit": -0.1}})
    assert "risk.instrument_exposure.limit" in msg
    assert "must not be negative" in msg and "-0.1" in msg
    msg = refused(tmp_path, {"asset_class_exposure": {"limits": {"crypto": -1}}})
    assert "limit of crypto must not be negative" in msg
    msg = refused(tmp_path, {"max_order_notional": {"limit": -5}})
    assert "risk.max_order_notional.limit" in msg


def test_halt_below_trigger_is_refused(tmp_path):
    msg = refused(tmp_path, {"drawdown": {"trigger": 0.15, "halt": 0.10}})
    assert "risk.drawdown" in msg
    assert "halt (0.1) must be above trigger (0.15)" in msg


def test_unknown_asset_class_is_refused(tmp_path):
    msg = refused(tmp_path, {"asset_class_exposure": {"limits": {"cryptos": 0.2}}})
    assert "risk.asset_class_exposure.limits" in msg
    assert "unknown asset class 'cryptos'" in msg
    assert "crypto, equity, fx, index" in msg


@pytest.mark.parametrize(("risk", "where", "words"), [
    ({"gross_leverage": {"limit": 1.2, "on_breach": "shrink"}}, "risk.gross_leverage.on_breach",
     "'scale' or 'reject'"),
    ({"instrument_exposur": {"limit": 0.4}}, "risk.instrument_exposur", "unknown key"),
    ({"drawdown": {"trigger": 1.5}}, "risk.drawdown.trigger", "less than 1"),
    ({"order_rate": {"per_second": 0}}, "risk.order_rate.per_second", "at least 1"),
    ({"price": {"stale_bars": 0}}, "risk.price.stale_bars", "at least 1"),
    ({"kill_switch": {"backend": "redis"}}, "risk.kill_switch.backend", "'memory' or 'file'"),
])
def test_other_bad_values_name_the_key(tmp_path, risk, where, words):
    msg = refused(tmp_path, risk)
    assert where in msg and words in msg


def test_shipped_backtest_config_has_a_risk_section():
    cfg = load_config(REPO / "config" / "backtest.yaml")
    raw = yaml.safe_load((REPO / "config" / "backtest.yaml").read_text())
    assert "risk" in raw
    assert cfg.risk.enabled
    assert cfg.risk.drawdown.halt > cfg.risk.drawdown.trigger
    assert cfg.risk.asset_class_exposure.limits["crypto"] >= 0.15  # the BTC model's budget fits
