"""Building an Alpaca gateway from its config section (the registry's ``alpaca`` entry).

alpaca-py is imported only when such a gateway is actually built.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateways.base import GatewayContext


def build(name: str, section: Mapping[str, Any], context: GatewayContext) -> Any:
    """The ``AlpacaGateway`` described by ``section``; errors name ``gateways.<name>.<key>``."""
    from gateways.alpaca.config import parse_config
    from gateways.alpaca.gateway import AlpacaGateway

    # market data only when the run does not trade; Alpaca's data API still needs the keys
    data = context.section(name, section)
    return AlpacaGateway(parse_config(data, f"gateways.{name}"))
