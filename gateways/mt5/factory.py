"""Building an MT5 gateway from its config section (the registry's ``mt5`` entry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateways.base import GatewayConfigError, GatewayContext


def build(name: str, section: Mapping[str, Any], context: GatewayContext) -> Any:
    """The ``Mt5Gateway`` described by ``section``; errors name ``gateways.<name>.<key>``."""
    from gateways.mt5.config import Mt5ConfigError, parse_config
    from gateways.mt5.gateway import Mt5Gateway

    # market data only when the run does not trade: no credentials, no order polling
    data = context.section(name, section)
    try:
        config = parse_config(data, f"gateways.{name}")
    except Mt5ConfigError as exc:
        raise GatewayConfigError(str(exc)) from None
    return Mt5Gateway(config)
