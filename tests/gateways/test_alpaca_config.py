"""The Alpaca gateway's config section, factory and registry entry (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from gateways import registry
from gateways.alpaca.config import AlpacaGatewayConfig, parse_config
from gateways.alpaca.gateway import AlpacaGateway
from gateways.base import GatewayConfigError, GatewayContext, GatewayStartError
from trader.core.events import OrderType

REPO = Path(__file__).resolve().parents[2]


def test_unknown_keys_and_bad_values_are_named() -> None:
    with pytest.raises(GatewayConfigError, match=r"gateways\.alp\.api_secret: unknown key"):
        parse_config({"symbols": {"AAPL": "AAPL"}, "api_secret": "inline"}, "gateways.alp")
    with pytest.raises(GatewayConfigError, match=r"gateways\.alp\.urls\.trade: unknown key"):
        parse_config({"symbols": {"AAPL": "AAPL"}, "urls": {"trade": "x"}}, "gateways.alp")
    with pytest.raises(GatewayConfigError, match=r"gateways\.alp\.feed"):
        parse_config({"symbols": {"AAPL": "AAPL"}, "feed": "otc"}, "gateways.alp")
    with pytest.raises(GatewayConfigError, match=r"gateways\.alp\.timeframe: .*no '2m' bars"):
        parse_config({"symbols": {"AAPL": "AAPL"}, "timeframe": "2m"}, "gateways.alp")
    with pytest.raises(GatewayConfigError, match="used twice"):
        parse_config({"symbols": {"AAPL": "X", "SPY": "X"}}, "gateways.alp")


def test_registry_builds_the_gateway_and_names_config_errors() -> None:
    section = {"symbols": {"AAPL": "AAPL.ALPACA", "BTC/USD": "BTCUSD.ALPACA"},
               "credentials": {"api_key_env": "ALPACA_KEY", "secret_env": "ALPACA_SECRET"}}
    gw = registry.build("alpaca", section, GatewayContext(trading=False))
    assert isinstance(gw, AlpacaGateway)
    assert not gw.capabilities.trading and gw.config.alpaca_timeframe == "1Min"
    with pytest.raises(GatewayConfigError, match=r"gateways\.broker2\.colour: unknown key"):
        registry.build("broker2", {"broker": "alpaca", "symbols": {"AAPL": "A"}, "colour": 1},
                       GatewayContext())


def test_capabilities_are_declared_honestly() -> None:
    caps = AlpacaGateway(AlpacaGatewayConfig(symbols={"AAPL": "A"})).capabilities
    assert caps.order_types == {OrderType.MARKET, OrderType.LIMIT, OrderType.STOP}
    assert caps.modify and caps.stop_limit and not caps.bracket and not caps.oco
    assert caps.fills_lookback_ns is None and caps.client_order_ids
    assert {"DAY", "GTC", "IOC", "FOK", "OPG", "CLS"} == caps.time_in_force


async def test_missing_credential_env_var_stops_the_start_naming_it(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_ALPACA_KEY", raising=False)
    cfg = parse_config({"symbols": {"AAPL": "A"}, "credentials": {
        "api_key_env": "NO_SUCH_ALPACA_KEY", "secret_env": "NO_SUCH_ALPACA_SECRET"}})
    with pytest.raises(GatewayStartError, match="NO_SUCH_ALPACA_KEY is not set"):
        await AlpacaGateway(cfg).connect()
    with pytest.raises(GatewayStartError, match="no Alpaca API credentials"):
        await AlpacaGateway(parse_config({"symbols": {"AAPL": "A"}})).connect()


def test_shipped_example_config_is_valid_and_holds_no_secret() -> None:
    path = REPO / "config" / "gateways" / "alpaca_paper.yaml"
    doc = yaml.safe_load(path.read_text())
    [(name, section)] = doc["gateways"].items()
    cfg = parse_config({"name": name, **section}, f"gateways.{name}")
    assert cfg.paper and cfg.credentials.api_key_env and cfg.credentials.secret_env
    text = path.read_text().lower()
    assert "secret_key:" not in text and "api_key:" not in text
