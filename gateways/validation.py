"""Bar validation at the gateway boundary: one guard every gateway wraps its sink with.

The rules themselves live in ``trader.core.validation`` (the historical feed
uses the same ones).  ``BarGuard`` sits between a gateway and the kernel:
bars that break a rule are dropped, logged with the venue and the values,
counted, and reported once per bar as ``GatewayHealth(degraded)``; every other
event passes untouched.  Nothing bad reaches the kernel, whichever code path
of the gateway (stream, backfill, polling) produced the bar.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

import structlog

from gateways.base import EventSink
from trader.core.events import Bar, GatewayHealth, HealthState
from trader.core.validation import validate_bar

log = structlog.get_logger(__name__)

DEFAULT_BAND = 0.5  # a close more than 50 % away from the previous one is a bad tick


class BarGuard:
    """A sink wrapper that lets only valid bars through.

    ``band`` is the largest accepted move of a close vs the previous accepted
    close of the same instrument and bar length (a fraction; None = no band).
    Call ``guard(event)``; ``rejected`` counts drops by instrument.
    """

    __slots__ = ("gateway", "venue", "band", "rejected", "_sink", "_last", "_now")

    def __init__(self, sink: EventSink, *, gateway: str, venue: str = "",
                 band: float | None = DEFAULT_BAND,
                 now_ns: Callable[[], int] | None = None) -> None:
        self._sink = sink
        self.gateway = gateway
        self.venue = venue or gateway
        self.band = band
        self.rejected: dict[str, int] = {}
        self._last: dict[tuple[str, int], float] = {}
        self._now = now_ns

    @property
    def total_rejected(self) -> int:
        """Bars dropped so far, all instruments."""
        return sum(self.rejected.values())

    def seed(self, bars: Iterable[Bar]) -> None:
        """Remember closes of bars the kernel got another way (warm-up history)."""
        for b in bars:
            self._last[(b.instrument_id, b.timeframe)] = b.close

    def check(self, bar: Bar) -> str | None:
        """Validate one bar; remember its close when it passes."""
        key = (bar.instrument_id, bar.timeframe)
        problem = validate_bar(bar, self._last.get(key), self.band)
        if problem is None:
            self._last[key] = bar.close
            return None
        self.reject(bar.instrument_id, problem, bar.ts)
        return problem

    def reject(self, instrument_id: str, problem: str, bar_ts: int | None = None) -> None:
        """Count, log and report one bad bar (also for a message too broken to be a Bar)."""
        self.rejected[instrument_id] = self.rejected.get(instrument_id, 0) + 1
        log.error("bad_bar_rejected", gateway=self.gateway, venue=self.venue,
                  instrument=instrument_id, bar_ts=bar_ts, problem=problem,
                  rejected_total=self.total_rejected)
        ts = self._now() if self._now is not None else (bar_ts or 0)
        self._sink(GatewayHealth(ts, self.gateway, HealthState.DEGRADED,
                                 f"bad bar rejected: {instrument_id} {problem}"))

    def filter(self, bars: Iterable[Bar], *, remember: bool = False) -> list[Bar]:
        """The valid bars of a batch (history, in time order), rejecting the rest.

        ``remember``: the live stream continues from this batch (warm-up), so its
        last closes become the band's reference; otherwise (a history query for
        any range) the stream's reference is left alone.
        """
        saved = None if remember else dict(self._last)
        out = [b for b in bars if self.check(b) is None]
        if saved is not None:
            self._last = saved
        return out

    def __call__(self, event: Any) -> None:
        if type(event) is Bar and self.check(event) is not None:
            return
        self._sink(event)
