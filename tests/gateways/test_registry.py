"""The broker registry: explicit entries, one factory signature, clear missing-extra errors."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

from gateways import registry
from gateways.base import GatewayConfigError, GatewayContext
from gateways.sim import SimulatedGateway
from trader.core.instruments import AssetClass, Instrument

ROOT = Path(__file__).resolve().parents[2]


def ctx(**kw: Any) -> GatewayContext:
    inst = Instrument(id="BTC", symbol="BTC/USD", venue="X", asset_class=AssetClass.CRYPTO)
    return GatewayContext({"BTC": inst}, "USD", 1_000.0, **kw)


def test_every_broker_of_the_mission_has_an_entry() -> None:
    assert {"sim", "ccxt", "binance", "kraken", "alpaca", "ib", "mt5"} <= set(registry.brokers())
    entry = registry.brokers()["ib"]
    assert (entry.extra, entry.requires) == ("ib", "ib_async")


def test_broker_is_named_by_key_by_gateway_name_or_by_exchange() -> None:
    assert registry.broker_for("paper", {"broker": "sim"}) == "sim"
    assert registry.broker_for("binance", {"exchange": "binance"}) == "binance"
    assert registry.broker_for("my_spot", {"exchange": "kraken"}) == "ccxt"
    assert registry.broker_for("acct", {"broker": "nope"}) is None
    assert registry.broker_for("nobroker", None) is None


def test_sim_builds_from_context_and_section() -> None:
    gw = registry.build("paper", {"broker": "sim", "commission_bps": 2}, ctx())
    assert isinstance(gw, SimulatedGateway) and gw.name == "paper"
    assert gw.costs.commission_bps == 2.0 and gw.cash == {"USD": 1_000.0}
    with pytest.raises(GatewayConfigError, match=r"gateways\.paper\.fee: unknown key"):
        registry.build("paper", {"broker": "sim", "fee": 1}, ctx())


@pytest.mark.parametrize(("broker", "module", "extra"), [
    ("alpaca", "alpaca", "alpaca"), ("ib", "ib_async", "ib"), ("mt5", "mt5linux", "mt5")])
def test_missing_client_library_names_the_extra(broker: str, module: str, extra: str) -> None:
    if importlib.util.find_spec(module) is not None:
        # installed: the entry is found and its factory runs, refusing the empty section by name
        with pytest.raises(GatewayConfigError, match=r"^gateways\.acct[.:]"):
            registry.build("acct", {"broker": broker}, ctx())
        return
    with pytest.raises(registry.MissingExtraError) as err:
        registry.build("acct", {"broker": broker}, ctx())
    msg = str(err.value)
    assert msg.startswith("gateways.acct: ") and repr(module) in msg
    assert f"pip install 'trader-daemon[{extra}]'" in msg


def test_unknown_broker_and_registration() -> None:
    with pytest.raises(GatewayConfigError, match=r"gateways\.acct\.broker: unknown broker"):
        registry.build("acct", {"broker": "nope"}, ctx())
    calls: list[tuple] = []
    registry.register(registry.BrokerEntry("fake", f"{__name__}:_fake_factory"))
    try:
        with pytest.raises(ValueError, match="already registered"):
            registry.register(registry.BrokerEntry("fake", "x:y"))
        gw = registry.build("f1", {"broker": "fake", "k": 1}, ctx(trading=False))
        calls.append(gw)
        assert gw == ("f1", {"k": 1}, False)  # "broker" is the registry's key, not the broker's
    finally:
        registry.unregister("fake")


def _fake_factory(name: str, section: dict, context: GatewayContext) -> tuple:
    return name, dict(section), context.trading


def test_pinned_extras_are_declared() -> None:
    text = (ROOT / "pyproject.toml").read_text()
    for pin in ('alpaca = ["alpaca-py==0.44.0"]', 'ib = ["ib_async==2.1.0"]',
                'mt5 = ["mt5linux==1.0.11"]', '"exchange_calendars>=4.5"'):
        assert pin in text


def test_daemon_refuses_a_broker_whose_library_is_missing() -> None:
    # the dev install has every broker library, so the missing one is a registered stand-in
    assert importlib.util.find_spec("trader_no_such_client") is None
    from trader.engine.config import load_config
    from trader.live.daemon import Refused, check_start

    registry.register(registry.BrokerEntry("absent", f"{__name__}:_fake_factory",
                                           "trader_no_such_client", "absent"))
    try:
        cfg = load_config(ROOT / "config" / "paper.yaml")
        models = [m.model_copy(update={"gateway": "alp"}) for m in cfg.models]
        cfg = cfg.model_copy(update={"models": models,
                                     "gateways": {"alp": {"broker": "absent"}}})
        with pytest.raises(Refused, match=r"pip install 'trader-daemon\[absent\]'"):
            check_start(cfg, "paper", False)
    finally:
        registry.unregister("absent")


def test_a_broker_library_is_imported_only_when_that_broker_is_built() -> None:
    # In a child process: this test session has imported every broker already.
    import subprocess
    import sys

    probe = """
import sys
from gateways import registry
libs = ("ccxt", "alpaca", "ib_async", "mt5linux", "rpyc", "gateways.ccxt", "gateways.alpaca",
        "gateways.ib", "gateways.mt5")
for name, entry in registry.brokers().items():
    registry.broker_for(name, {}), registry.can_build(name, {}), registry.missing_extra(name)
print("after lookups:", sorted(m for m in libs if m in sys.modules))
registry.factory("ccxt")
print("after the ccxt factory:", sorted(m for m in libs if m in sys.modules))
"""
    res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         timeout=60, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.splitlines() == ["after lookups: []",
                                       "after the ccxt factory: ['gateways.ccxt']"]
