"""Building ccxt gateways from the application config for the daemon.

Models route orders to a gateway by name (``models[].gateway``); the settings
of a ccxt gateway of that name live under ``gateways.<name>`` in the YAML.
``register`` puts a factory for each given name into the daemon's registry;
ccxt itself is imported only when such a gateway is actually built.
"""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Any

DEFAULT_NAMES = ("binance", "kraken")


def build_from_app_config(cfg: Any, name: str) -> Any:
    """The ``CcxtGateway`` described by ``cfg.gateways[name]``; errors name the key."""
    from trader.engine.config import ConfigError

    sections = getattr(cfg, "gateways", None) or {}
    section = sections.get(name)
    if section is None:
        raise ConfigError(f"gateways.{name}: models route orders to {name!r}, "
                          f"but the config has no gateways.{name} section")
    from gateways.ccxt.config import CcxtConfigError, parse_config
    from gateways.ccxt.gateway import CcxtGateway

    data = {"name": name, **section}
    try:
        config = parse_config(data, f"gateways.{name}")
    except CcxtConfigError as exc:
        raise ConfigError(str(exc)) from None
    return CcxtGateway(config)


def register(factories: MutableMapping[str, Any], names: Iterable[str] = DEFAULT_NAMES) -> None:
    """Make ``names`` buildable by the daemon (it checks the registry before starting)."""
    for name in names:
        factories.setdefault(name, build_from_app_config)
