"""What a warm-up actually got, when the venue serves fewer bars than asked.

Kraken's OHLC endpoint returns at most the 720 most recent candles whatever
``since`` says, so ``warmup_bars: 1000`` on 1-minute bars yields 719 closed
bars.  The gateway does not pretend otherwise: it logs a warning with asked
and got and keeps a ``WarmUpReport`` per instrument for status and health.
"""

from __future__ import annotations

from dataclasses import dataclass

# venues whose OHLC history is capped regardless of paging (candles, forming one included)
VENUE_CANDLE_CAP: dict[str, int] = {"kraken": 720}


@dataclass(frozen=True, slots=True)
class WarmUpReport:
    """Bars asked for and got for one instrument; ``short`` when the venue served fewer."""

    instrument_id: str
    asked: int
    got: int
    venue_cap: int | None = None

    @property
    def short(self) -> bool:
        """Fewer bars than asked."""
        return self.got < self.asked

    def describe(self) -> str:
        """One line for logs and health events."""
        cap = f" (the venue serves at most {self.venue_cap} candles)" if self.venue_cap else ""
        return f"warm-up {self.instrument_id}: asked {self.asked} bars, got {self.got}{cap}"
