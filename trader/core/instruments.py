"""Tradable instruments and the constraints a venue puts on orders for them."""

from __future__ import annotations

import math
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, model_validator


class AssetClass(StrEnum):
    EQUITY = "equity"
    CRYPTO = "crypto"
    FX = "fx"
    INDEX = "index"


class Instrument(BaseModel):
    """Static description of an instrument; ``id`` is the kernel's key for it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    symbol: str
    venue: str
    asset_class: AssetClass
    quote_currency: str = "USD"
    tick_size: float = Field(0.01, gt=0)
    lot_step: float = Field(1.0, gt=0)
    min_quantity: float = Field(0.0, ge=0)
    min_notional: float = Field(0.0, ge=0)
    multiplier: float = Field(1.0, gt=0)

    @model_validator(mode="after")
    def _min_qty_on_lot(self) -> Instrument:
        if self.min_quantity and self.min_quantity < self.lot_step * (1 - 1e-9):
            raise ValueError(
                f"min_quantity {self.min_quantity} is smaller than lot_step {self.lot_step}"
            )
        return self

    def round_quantity(self, qty: float) -> float:
        """Round a quantity toward zero to a whole number of lots."""
        lots = math.floor(abs(qty) / self.lot_step + 1e-9)
        return math.copysign(round(lots * self.lot_step, 12), qty) if lots else 0.0

    def on_tick(self, price: float) -> bool:
        ticks = price / self.tick_size
        return abs(ticks - round(ticks)) < 1e-6

    def on_lot(self, qty: float) -> bool:
        lots = abs(qty) / self.lot_step
        return abs(lots - round(lots)) < 1e-6

    def constraint_violation(
        self, qty: float, price: float | None, *, check_tick: bool = True
    ) -> str | None:
        """Why an order of ``qty`` at ``price`` breaks this instrument's rules, or None.

        ``check_tick`` is off when ``price`` is only a reference (a market order's
        last price), which the order does not carry to the venue.
        """
        q = abs(qty)
        if q <= 0:
            return "quantity must be positive"
        if not self.on_lot(q):
            return f"quantity {q} is not a multiple of lot step {self.lot_step}"
        if q < self.min_quantity * (1 - 1e-9):
            return f"quantity {q} below minimum {self.min_quantity}"
        if price is not None:
            if check_tick and not self.on_tick(price):
                return f"price {price} is not on tick size {self.tick_size}"
            notional = q * price * self.multiplier
            if notional < self.min_notional * (1 - 1e-9):
                return f"notional {notional:.2f} below minimum {self.min_notional}"
        return None
