"""Gateway configuration, credentials and the exchange builder (no network)."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from gateways.ccxt.config import (
    CcxtConfigError,
    CcxtCredentials,
    CcxtGatewayConfig,
    Credentials,
    load_credentials,
)
from gateways.ccxt.exchange import backoff_delay, build_exchange, dead_end_urls, dialect_for


def test_credentials_from_env_and_never_in_repr() -> None:
    creds = load_credentials(CcxtCredentials(api_key_env="K", secret_env="S"),
                             {"K": "key-value", "S": "secret-value\n"})
    assert (creds.api_key, creds.secret) == ("key-value", "secret-value")
    assert "secret-value" not in repr(creds) and "key-value" not in repr(creds)


def test_credentials_from_files(tmp_path: Path) -> None:
    (tmp_path / "k").write_text("fk\n")
    (tmp_path / "s").write_text("fs")
    creds = load_credentials(CcxtCredentials(api_key_file=tmp_path / "k",
                                             secret_file=tmp_path / "s"), {})
    assert bool(creds) and creds.secret == "fs"


def test_missing_env_var_is_named() -> None:
    with pytest.raises(CcxtConfigError, match="environment variable BINANCE_KEY is not set"):
        load_credentials(CcxtCredentials(api_key_env="BINANCE_KEY", secret_env="S"), {"S": "x"})


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(CcxtConfigError, match="credentials.secret_file: cannot read"):
        load_credentials(CcxtCredentials(api_key_env="K", secret_file=tmp_path / "nope"),
                         {"K": "k"})


def test_key_without_secret_is_refused() -> None:
    with pytest.raises(CcxtConfigError, match="needs a secret"):
        load_credentials(CcxtCredentials(api_key_env="K"), {"K": "k"})


def test_no_credentials_named_means_none() -> None:
    assert not load_credentials(CcxtCredentials(), {})


def test_config_rejects_unknown_exchange_and_secrets_in_yaml() -> None:
    with pytest.raises(ValidationError, match="unknown ccxt.pro exchange"):
        CcxtGatewayConfig(exchange="nosuchex", symbols={"BTC/USDT": "B"})
    with pytest.raises(ValidationError, match="extra_forbidden|Extra inputs"):
        CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B"},
                          api_key="inline")  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="used twice"):
        CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B", "ETH/USDT": "B"})
    with pytest.raises(ValidationError, match="unknown timeframe"):
        CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B"}, timeframe="7x")


def test_dead_end_keeps_paths_and_schemes() -> None:
    out = dead_end_urls({"a": "https://api.x.com/api/v3", "ws": {"s": "wss://x.com:9443/ws"},
                         "n": 3})
    assert out == {"a": "http://127.0.0.1:1/api/v3", "ws": {"s": "ws://127.0.0.1:1/ws"}, "n": 3}


async def test_builder_applies_overrides_over_dead_ends() -> None:
    cfg = CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B"},
                            urls={"public": "http://127.0.0.1:5/api/v3"}, rate_limit=False)
    ex = build_exchange(cfg, Credentials("k", "s"), dialect_for("binance"))
    try:
        assert ex.urls["api"]["public"] == "http://127.0.0.1:5/api/v3"
        assert ex.urls["api"]["private"] == "http://127.0.0.1:1/api/v3"
        assert ex.urls["api"]["ws"]["ws-api"]["spot"].startswith("ws://127.0.0.1:1/")
        assert ex.options["fetchMarkets"]["types"] == ["spot"]
        assert ex.enableRateLimit is False and ex.apiKey == "k"
    finally:
        await ex.close()


def test_kraken_sandbox_is_a_config_error() -> None:
    cfg = CcxtGatewayConfig(exchange="kraken", symbols={"BTC/USD": "B"}, sandbox=True)
    with pytest.raises(CcxtConfigError, match="no sandbox"):
        build_exchange(cfg, Credentials(), dialect_for("kraken"))


def test_backoff_is_capped_exponential_with_bounded_jitter() -> None:
    import random

    rng = random.Random(7)
    plain = [backoff_delay(a, 0.5, 30.0, 0.0) for a in range(1, 9)]
    assert plain == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0]
    for a in range(1, 12):
        d = backoff_delay(a, 0.5, 30.0, 0.25, rng)
        base = min(30.0, 0.5 * 2 ** (a - 1))
        assert 0.75 * base - 1e-9 <= d <= min(30.0, 1.25 * base) + 1e-9


def test_example_configs_validate() -> None:
    import yaml

    from gateways.ccxt.config import parse_config

    root = Path(__file__).resolve().parents[2] / "config" / "gateways"
    # the ccxt examples (other brokers' examples sit beside them, checked in their own tests)
    ccxt = sorted(p for p in root.glob("*.yaml")
                  if "exchange" in (yaml.safe_load(p.read_text()).get("gateway") or {}))
    assert [p.name for p in ccxt] == ["binance_spot.yaml", "kraken_spot.yaml"]
    for path in ccxt:
        cfg = parse_config(yaml.safe_load(path.read_text())["gateway"], path.name)
        assert cfg.symbols and cfg.timeframe_seconds == 60


def test_parse_config_names_the_key() -> None:
    from gateways.ccxt.config import parse_config

    with pytest.raises(CcxtConfigError, match=r"gw\.timing\.poll_interval_s: .*greater than 0"):
        parse_config({"exchange": "binance", "symbols": {"BTC/USDT": "B"},
                      "timing": {"poll_interval_s": 0}}, "gw")


async def test_binance_sandbox_points_at_testnet() -> None:
    cfg = CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B"}, sandbox=True)
    ex = build_exchange(cfg, Credentials(), dialect_for("binance"))
    try:
        assert "testnet.binance.vision" in ex.urls["api"]["public"]
    finally:
        await ex.close()


async def test_submit_refused_when_not_connected_or_market_data_only() -> None:
    from gateways.ccxt import CcxtGateway
    from trader.core.events import OrderRequest, OrderStatus, Side

    events: list = []
    cfg = CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B"}, trading=False)
    gw = CcxtGateway(cfg)
    gw.bind(events.append)
    gw.submit(OrderRequest(1, "C-1", "B", Side.BUY, 1.0))
    gw.submit(OrderRequest(1, "C-2", "UNKNOWN", Side.BUY, 1.0))
    assert [(u.client_order_id, u.status) for u in events] == [
        ("C-1", OrderStatus.REJECTED), ("C-2", OrderStatus.REJECTED)]
    assert "market-data only" in events[0].reason and "not traded" in events[1].reason
    live = CcxtGateway(CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B"}))
    live.bind(events.append)
    live.submit(OrderRequest(1, "C-3", "B", Side.BUY, 1.0))
    assert "not connected" in events[-1].reason


async def test_trading_without_credentials_refuses_to_start() -> None:
    from gateways.ccxt import CcxtGateway, GatewayStartError

    gw = CcxtGateway(CcxtGatewayConfig(exchange="binance", symbols={"BTC/USDT": "B"}))
    with pytest.raises(GatewayStartError, match="no API credentials"):
        await gw.connect()


def test_registry_builds_ccxt_from_the_named_section() -> None:
    from gateways import registry
    from gateways.base import GatewayConfigError, GatewayContext

    ctx = GatewayContext()
    assert {"binance", "kraken", "ccxt"} <= set(registry.brokers())
    with pytest.raises(GatewayConfigError, match="no gateways.binance section"):
        registry.build("binance", None, ctx)
    with pytest.raises(GatewayConfigError, match=r"gateways\.binance\.symbols: Field required"):
        registry.build("binance", {"exchange": "binance"}, ctx)
    gw = registry.build("binance", {"exchange": "binance", "symbols": {"BTC/USDT": "BTCUSD"},
                                    "market_data": False}, ctx)
    assert gw.name == "binance" and gw.config.market_data is False
    # any name with an exchange is a ccxt gateway; market-data-only context turns trading off
    gw = registry.build("spot2", {"exchange": "kraken", "symbols": {"BTC/USD": "X"}},
                        GatewayContext(trading=False))
    assert gw.config.exchange == "kraken" and gw.config.trading is False
    assert gw.capabilities.trading is False and gw.capabilities.fills_lookback_ns is None
