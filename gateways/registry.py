"""The table of brokers the daemon can build: broker name -> factory.

A gateway is configured under ``gateways.<name>`` in the YAML; its broker is
``broker:`` in that section, else the gateway's name when that is a broker
(``binance``, ``alpaca``), else ``ccxt`` when the section names an ``exchange``.
Every factory has one signature, independent of the application's config class::

    factory(name: str, section: Mapping[str, Any], context: GatewayContext) -> Gateway

Entries are explicit (no import side effects) and lazy: a factory's module,
and the broker's client library, are imported only when such a gateway is
built.  A broker whose library is an optional extra that is not installed
fails with a message naming the extra to install.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateways.base import GatewayConfigError, GatewayContext, GatewayFactory

PACKAGE = "trader-daemon"


class MissingExtraError(GatewayConfigError):
    """A configured broker's client library is not installed (names the pip extra)."""


@dataclass(frozen=True, slots=True)
class BrokerEntry:
    """One row of the table: where the factory lives and what it needs installed."""

    name: str
    factory: str  # "module:function", imported on first build
    requires: str | None = None  # importable module of the client library
    extra: str | None = None  # pip extra that installs it
    description: str = ""


_ENTRIES: dict[str, BrokerEntry] = {}


def register(entry: BrokerEntry, *, replace: bool = False) -> None:
    """Add a broker to the table (``replace`` to override an existing entry, e.g. in tests)."""
    if entry.name in _ENTRIES and not replace:
        raise ValueError(f"broker {entry.name!r} is already registered")
    _ENTRIES[entry.name] = entry


def unregister(name: str) -> None:
    """Remove a broker from the table (tests)."""
    _ENTRIES.pop(name, None)


def brokers() -> dict[str, BrokerEntry]:
    """Every registered broker, by name."""
    return dict(_ENTRIES)


def broker_for(name: str, section: Mapping[str, Any] | None) -> str | None:
    """The broker that builds gateway ``name`` configured by ``section``; None if none does."""
    section = section or {}
    kind = section.get("broker")
    if kind is not None:
        return str(kind) if str(kind) in _ENTRIES else None
    if name in _ENTRIES:
        return name
    if "exchange" in section:
        return "ccxt"
    return None


def can_build(name: str, section: Mapping[str, Any] | None) -> bool:
    """True if some registered broker builds gateway ``name`` (installed or not)."""
    return broker_for(name, section) is not None


def missing_extra(broker: str) -> str | None:
    """The install hint if ``broker``'s client library is absent, else None."""
    entry = _ENTRIES[broker]
    if entry.requires is None or importlib.util.find_spec(entry.requires) is not None:
        return None
    extra = f"[{entry.extra}]" if entry.extra else ""
    return (f"broker {broker!r} needs the {entry.requires!r} package, which is not installed: "
            f"pip install '{PACKAGE}{extra}'")


def factory(broker: str) -> GatewayFactory:
    """The factory of ``broker``; raises ``MissingExtraError`` if its library is absent."""
    entry = _ENTRIES.get(broker)
    if entry is None:
        raise GatewayConfigError(f"unknown broker {broker!r} (known: {sorted(_ENTRIES)})")
    hint = missing_extra(broker)
    if hint is not None:
        raise MissingExtraError(hint)
    module, _, attr = entry.factory.partition(":")
    return getattr(importlib.import_module(module), attr)


def build(name: str, section: Mapping[str, Any] | None, context: GatewayContext) -> Any:
    """Build gateway ``name`` from its config section; errors name ``gateways.<name>``."""
    broker = broker_for(name, section)
    if broker is None:
        kind = (section or {}).get("broker")
        if kind is not None:
            raise GatewayConfigError(f"gateways.{name}.broker: unknown broker {kind!r} "
                                     f"(known: {sorted(_ENTRIES)})")
        raise GatewayConfigError(f"gateways.{name}: no broker builds this gateway; set "
                                 f"gateways.{name}.broker (known: {sorted(_ENTRIES)})")
    if section is None and broker != "sim":
        raise GatewayConfigError(f"gateways.{name}: models route orders to {name!r}, "
                                 f"but the config has no gateways.{name} section")
    body = {k: v for k, v in (section or {}).items() if k != "broker"}
    try:
        make = factory(broker)
    except MissingExtraError as exc:
        raise MissingExtraError(f"gateways.{name}: {exc}") from None
    return make(name, body, context)


# -- the brokers of this installation -------------------------------------------------------
def build_sim(name: str, section: Mapping[str, Any], context: GatewayContext) -> Any:
    """The simulated exchange; the section may set any field of
    ``gateways.sim_costs.SimCosts`` (``slippage_bps``, ``spread_bps``,
    ``max_participation``, ``commission_schedule``, ...)."""
    import dataclasses

    from gateways.sim import SimCosts, SimulatedGateway

    fields = {f.name: f for f in dataclasses.fields(SimCosts)}
    unknown = sorted(set(section) - set(fields))
    if unknown:
        raise GatewayConfigError(f"gateways.{name}.{unknown[0]}: unknown key "
                                 f"(known: {sorted(fields)})")
    values: dict[str, Any] = {}
    for k, v in section.items():
        if isinstance(v, str) or v is None:
            values[k] = v  # a model or schedule name, or "none" for no cap
            continue
        try:
            values[k] = int(v) if k == "latency_bars" else float(v)
        except (TypeError, ValueError):
            raise GatewayConfigError(f"gateways.{name}.{k}: expected a number, got "
                                     f"{v!r}") from None
    costs = SimCosts(**values)
    return SimulatedGateway(context.instruments, costs, base_timeframes=context.base_timeframes,
                            initial_cash=context.initial_cash,
                            currency=context.account_currency, name=name)


for _entry in (
    BrokerEntry("sim", "gateways.registry:build_sim", description="simulated exchange"),
    BrokerEntry("ccxt", "gateways.ccxt.factory:build", "ccxt", None, "crypto exchanges (ccxt)"),
    BrokerEntry("binance", "gateways.ccxt.factory:build", "ccxt", None, "Binance spot (ccxt)"),
    BrokerEntry("kraken", "gateways.ccxt.factory:build", "ccxt", None, "Kraken spot (ccxt)"),
    BrokerEntry("alpaca", "gateways.alpaca.factory:build", "alpaca", "alpaca",
                "Alpaca (alpaca-py)"),
    BrokerEntry("ib", "gateways.ib.factory:build", "ib_async", "ib",
                "Interactive Brokers (ib_async)"),
    BrokerEntry("mt5", "gateways.mt5.factory:build", "mt5linux", "mt5",
                "MetaTrader 5 (mt5linux)"),
):
    register(_entry)
