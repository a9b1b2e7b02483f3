"""Reason codes of risk decisions: stable strings for logs, counts and reports."""

from __future__ import annotations

from enum import StrEnum


class RiskReason(StrEnum):
    KILL_SWITCH = "kill_switch"
    HALTED = "trading_halted"
    REDUCING = "reducing_only"
    REDUCE_ONLY_INVALID = "reduce_only_would_increase"
    UNKNOWN_INSTRUMENT = "unknown_instrument"
    INSTRUMENT_CONSTRAINT = "instrument_constraint"
    NO_PRICE = "no_price"
    STALE_PRICE = "stale_price"
    PRICE_BAND = "price_band"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    ORDER_RATE = "order_rate"
    DUPLICATE_ORDER = "duplicate_order"
    INSTRUMENT_EXPOSURE = "instrument_exposure"
    ASSET_CLASS_EXPOSURE = "asset_class_exposure"
    GROSS_LEVERAGE = "gross_leverage"
    NET_EXPOSURE = "net_exposure"
    STALE_DATA = "stale_data"
