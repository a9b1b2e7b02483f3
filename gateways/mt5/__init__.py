"""MetaTrader 5 gateway: the MetaTrader5 package (Windows) or mt5linux over rpyc (Linux)."""

from gateways.mt5.config import Mt5GatewayConfig, Mt5Timing, parse_config
from gateways.mt5.gateway import Mt5Gateway

__all__ = ["Mt5Gateway", "Mt5GatewayConfig", "Mt5Timing", "parse_config"]
