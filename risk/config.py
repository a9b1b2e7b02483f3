"""The ``risk:`` section of the YAML configuration.

Every limit has a safe default, so an empty section still guards the account.
Limits that are fractions of NAV are written as fractions (0.4 = 40% of NAV).
Each cap names what happens to an order that would breach it: ``scale`` (shrink
the order to what fits) or ``reject``.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from trader.core.instruments import AssetClass

_KNOWN_CLASSES = ", ".join(sorted(c.value for c in AssetClass))


class OnBreach(StrEnum):
    """What to do with an order that would break a cap."""

    SCALE = "scale"
    REJECT = "reject"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


def _not_negative(name: str, value: float | None) -> float | None:
    if value is not None and value < 0:
        raise ValueError(f"{name} must not be negative (got {value}); a cap is a size, not a sign")
    return value


class CapConfig(_Section):
    """A cap on exposure as a fraction of NAV; ``limit: null`` switches the check off."""

    limit: float | None
    on_breach: OnBreach = OnBreach.SCALE

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: float | None) -> float | None:
        return _not_negative("limit", v)


class OrderNotionalConfig(_Section):
    """Largest order value in the account currency; ``limit: null`` switches it off."""

    limit: float | None = 1_000_000.0
    on_breach: OnBreach = OnBreach.SCALE

    @field_validator("limit")
    @classmethod
    def _limit(cls, v: float | None) -> float | None:
        return _not_negative("limit", v)


class AssetClassCapConfig(_Section):
    """Gross exposure caps per asset class, as fractions of NAV."""

    limits: dict[str, float] = Field(default_factory=lambda: {"crypto": 0.20})
    on_breach: OnBreach = OnBreach.SCALE

    @field_validator("limits")
    @classmethod
    def _classes(cls, v: dict[str, float]) -> dict[str, float]:
        for name, limit in v.items():
            if name not in AssetClass._value2member_map_:
                raise ValueError(
                    f"unknown asset class {name!r}; known asset classes are {_KNOWN_CLASSES}"
                )
            _not_negative(f"limit of {name}", limit)
        return v


class PriceConfig(_Section):
    """Sanity of prices: limit prices near the last price, and no trading on stale bars."""

    band: float | None = Field(0.10, description="largest |limit/last - 1| allowed")
    stale_bars: int | None = Field(
        3, description="reject when the last bar is older than this many bar intervals"
    )

    @field_validator("band")
    @classmethod
    def _band(cls, v: float | None) -> float | None:
        return _not_negative("band", v)

    @field_validator("stale_bars")
    @classmethod
    def _stale(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"stale_bars must be at least 1 (got {v})")
        return v


class OrderRateConfig(_Section):
    """At most this many orders per gateway per second / per minute (null = no limit)."""

    per_second: int | None = 20
    per_minute: int | None = 300

    @field_validator("per_second", "per_minute")
    @classmethod
    def _positive(cls, v: int | None) -> int | None:
        if v is not None and v < 1:
            raise ValueError(f"an order rate must be at least 1 (got {v}); use null for no limit")
        return v


class DuplicateConfig(_Section):
    """Reject an order equal to one sent within ``window_seconds`` (same instrument, side, qty)."""

    window_seconds: float | None = 1.0

    @field_validator("window_seconds")
    @classmethod
    def _window(cls, v: float | None) -> float | None:
        return _not_negative("window_seconds", v)


class DrawdownConfig(_Section):
    """Drawdown from the NAV high-water mark: de-risk at ``trigger``, halt at ``halt``."""

    trigger: float = Field(0.15, gt=0, lt=1)
    halt: float = Field(0.20, gt=0, lt=1)
    derisk_factor: float = Field(0.5, gt=0, le=1, description="budget scale after the trigger")
    restore_at: float | None = Field(
        None, ge=0, description="give budgets back once drawdown recovers to this (null: never)"
    )

    @model_validator(mode="after")
    def _order(self) -> DrawdownConfig:
        if self.halt <= self.trigger:
            raise ValueError(
                f"halt ({self.halt}) must be above trigger ({self.trigger}): "
                "budgets are cut first and trading stops only at the deeper drawdown"
            )
        if self.restore_at is not None and self.restore_at >= self.trigger:
            raise ValueError(
                f"restore_at ({self.restore_at}) must be below trigger ({self.trigger}), "
                "or budgets would flip between cut and restored on every bar"
            )
        return self


class KillSwitchConfig(_Section):
    """Where the kill switch is persisted and what engaging it does.

    ``memory`` keeps it in the process (replays stay reproducible); ``file`` is
    the flag file the CLI ``trader kill`` writes and a daemon polls.
    """

    backend: Literal["memory", "file"] = "memory"
    path: Path | None = Field(None, description="flag file (default <data_dir>/kill_switch.json)")
    flatten: bool = Field(True, description="flatten all positions when engaged")
    poll_seconds: float = Field(1.0, ge=0, description="how often the flag file is read")


class RiskConfig(_Section):
    """All risk settings; ``enabled: false`` approves every order (research only)."""

    enabled: bool = True
    instrument_constraints: bool = True
    price: PriceConfig = PriceConfig()
    max_order_notional: OrderNotionalConfig = OrderNotionalConfig()
    order_rate: OrderRateConfig = OrderRateConfig()
    instrument_exposure: CapConfig = CapConfig(limit=0.40)
    asset_class_exposure: AssetClassCapConfig = AssetClassCapConfig()
    gross_leverage: CapConfig = CapConfig(limit=1.20)
    net_exposure: CapConfig = CapConfig(limit=1.00)
    duplicate: DuplicateConfig = DuplicateConfig()
    drawdown: DrawdownConfig = DrawdownConfig()
    kill_switch: KillSwitchConfig = KillSwitchConfig()

