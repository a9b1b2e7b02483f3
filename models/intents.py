"""Order intents: what a model wants beyond a target weight.

Two ways in, one meaning:

* ``OrderPolicy`` (config ``models[].orders``): the model's standing rules for
  entries, protective exits, sizing, cooldown and minimum trade size;
* ``Intent``, which ``on_bar`` may return instead of a bare weight for one
  instrument, to set price levels for that entry (``{"SPY": Intent(1.0,
  stop_price=95.0, take_profit_price=120.0)}``); unset fields fall back to the
  policy.

Protective exits are emulated by the kernel on closed bars of the model's
timeframe (``trader.engine.exits``): identical in replay, paper and live.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


@dataclass(frozen=True, slots=True)
class Intent:
    """A target weight with this entry's own levels (absolute prices)."""

    weight: float
    stop_price: float | None = None
    take_profit_price: float | None = None
    limit_price: float | None = None


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EntryPolicy(_Strict):
    """How a position is entered: at the next open, or by a limit order that expires."""

    type: Literal["market", "limit"] = "market"
    # limit: buy this far below (sell above) the decision bar's close
    limit_offset_bps: float = Field(0.0, ge=0)
    # limit: cancel after this many bars of the model's timeframe without a fill
    expiry_bars: int = Field(1, gt=0)


class ExitPolicy(_Strict):
    """Protective exits, as a fraction of the entry price or multiples of ATR at entry."""

    stop_pct: float | None = Field(None, gt=0, lt=1)
    stop_atr: float | None = Field(None, gt=0)
    take_profit_pct: float | None = Field(None, gt=0)
    take_profit_atr: float | None = Field(None, gt=0)
    trail_pct: float | None = Field(None, gt=0, lt=1)
    trail_atr: float | None = Field(None, gt=0)
    atr_period: int = Field(14, gt=0)
    max_bars: int | None = Field(None, gt=0, description="timed exit after this many bars")

    @model_validator(mode="after")
    def _one_each(self) -> ExitPolicy:
        for a, b in (("stop_pct", "stop_atr"), ("take_profit_pct", "take_profit_atr"),
                     ("trail_pct", "trail_atr")):
            if getattr(self, a) is not None and getattr(self, b) is not None:
                raise ValueError(f"set {a} or {b}, not both")
        return self

    @property
    def uses_atr(self) -> bool:
        return any(x is not None for x in (self.stop_atr, self.take_profit_atr, self.trail_atr))

    @property
    def any(self) -> bool:
        return self.max_bars is not None or any(
            getattr(self, k) is not None for k in
            ("stop_pct", "stop_atr", "take_profit_pct", "take_profit_atr", "trail_pct",
             "trail_atr"))


class Sizing(_Strict):
    """What a weight of 1.0 means: the model's whole budget, a quantity, or a notional."""

    by: Literal["weight", "quantity", "notional"] = "weight"
    quantity: float | None = Field(None, gt=0)
    notional: float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _amount(self) -> Sizing:
        if self.by != "weight" and getattr(self, self.by) is None:
            raise ValueError(f"sizing by {self.by} needs sizing.{self.by}")
        return self


class OrderPolicy(_Strict):
    """A model's order rules (config ``models[].orders``); the default changes nothing."""

    entry: EntryPolicy = EntryPolicy()
    exits: ExitPolicy = ExitPolicy()
    sizing: Sizing = Sizing()
    # bars of the model's timeframe after an exit during which no new entry is taken
    cooldown_bars: int = Field(0, ge=0)
    # a change of target worth less than this (account currency) is not traded
    min_trade_value: float = Field(0.0, ge=0)
    # send the stop to the venue as a reduce-only STOP order (without a stop: the
    # take-profit as a reduce-only LIMIT) instead of emulating it; the gateway must
    # declare stop orders in its capabilities.  A target next to a native stop,
    # trailing stops and timed exits stay emulated, and the emulated exit cancels the
    # venue's child (one cancels the other).
    native: bool = False

    @property
    def is_default(self) -> bool:
        return self == OrderPolicy()
