"""Building a ccxt gateway from its config section (the registry's ``ccxt`` entry).

Models route orders to a gateway by name (``models[].gateway``); the settings
of a ccxt gateway of that name live under ``gateways.<name>`` in the YAML.
ccxt itself is imported only when such a gateway is actually built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateways.base import GatewayConfigError, GatewayContext


def build(name: str, section: Mapping[str, Any], context: GatewayContext) -> Any:
    """The ``CcxtGateway`` described by ``section``; errors name ``gateways.<name>.<key>``."""
    from gateways.ccxt.config import CcxtConfigError, parse_config
    from gateways.ccxt.gateway import CcxtGateway

    # market data only when the run does not trade: no credentials, no order stream
    data = context.section(name, section)
    try:
        config = parse_config(data, f"gateways.{name}")
    except CcxtConfigError as exc:
        raise GatewayConfigError(str(exc)) from None
    return CcxtGateway(config)
