"""Building an IB gateway from its config section (the registry's ``ib`` entry)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateways.base import GatewayConfigError, GatewayContext


def build(name: str, section: Mapping[str, Any], context: GatewayContext) -> Any:
    """The ``IbGateway`` described by ``section``; errors name ``gateways.<name>.<key>``."""
    from gateways.ib.config import parse_config
    from gateways.ib.gateway import IbGateway

    # market data only when the run does not trade: no account, no orders
    data = context.section(name, section)
    config = parse_config(data, f"gateways.{name}")
    unknown = sorted(set(config.contracts) - set(context.instruments)) if context.instruments \
        else []
    if unknown:
        raise GatewayConfigError(f"gateways.{name}.contracts.{unknown[0]}: not an instrument "
                                 f"of this config (instruments: {sorted(context.instruments)})")
    return IbGateway(config)
