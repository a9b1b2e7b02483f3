"""Configuration of the per-venue limiter (kept free of ccxt so config loads fast)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field


class VenueLimits(BaseModel):
    """How long to pause when the venue throttles or bans without saying for how long."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # 429 / "Rate limit exceeded" without a Retry-After header
    rate_limit_pause_s: float = Field(1.0, ge=0)
    # Binance 418 / Kraken "EGeneral:Temporary lockout" without a Retry-After header
    ban_pause_s: float = Field(60.0, gt=0)
    # a Retry-After beyond this is capped (Binance bans escalate up to 3 days)
    max_pause_s: float = Field(3 * 86_400.0, gt=0)
