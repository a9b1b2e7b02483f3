"""Crypto exchanges through ccxt / ccxt.pro (Binance and Kraken spot configured and tested)."""

from gateways.ccxt.config import CcxtConfigError, CcxtCredentials, CcxtGatewayConfig, CcxtTiming
from gateways.ccxt.gateway import CcxtGateway, GatewayStartError

__all__ = [
    "CcxtConfigError",
    "CcxtCredentials",
    "CcxtGateway",
    "CcxtGatewayConfig",
    "CcxtTiming",
    "GatewayStartError",
]
