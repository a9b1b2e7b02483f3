"""Crypto exchanges through ccxt / ccxt.pro (Binance and Kraken spot configured and tested).

Names are resolved lazily so that registering the factory (``gateways.ccxt.factory``)
does not import ccxt, which takes most of a second.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "CcxtConfigError": "gateways.ccxt.config",
    "CcxtCredentials": "gateways.ccxt.config",
    "CcxtGatewayConfig": "gateways.ccxt.config",
    "CcxtTiming": "gateways.ccxt.config",
    "CcxtGateway": "gateways.ccxt.gateway",
    "GatewayStartError": "gateways.ccxt.gateway",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'gateways.ccxt' has no attribute {name!r}")
    return getattr(import_module(module), name)
