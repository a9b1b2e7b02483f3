"""What a session knows of its market data: fresh or stale, healthy or failed.

``FeedMonitor`` sees every bar and every ``GatewayHealth`` event the kernel
consumes and answers the daemon's questions: which instruments went quiet
(stale feeds refuse orders that would grow them), which came back, and whether
the market data source stopped delivering (``trader status --check`` fails).
It decides nothing by itself: the daemon turns its answers into journaled
control records, so the replay of a journal sees them at the same place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from trader.core.events import Bar, GatewayHealth, HealthState, ns_to_iso


@dataclass(frozen=True, slots=True)
class Stale:
    """An instrument that has been silent for longer than its limit."""

    instrument_id: str
    last_bar_ts: int
    silent_s: float
    limit_s: float


@dataclass
class FeedMonitor:
    """Last bar per instrument, stale instruments, each gateway's health.

    ``bases``: each instrument's bar length (s); ``source``: the name of the
    gateway bars come from; ``normal_end``: the reason with which that source
    reports the regular end of its data (not a failure); ``markets``: the
    trading calendar (``trader.core.calendars`` key: ``equity``, ``fx``, a MIC)
    of instruments whose market closes, so that a closed market is never called
    stale (live sources only: the wall clock is the market's clock there).
    """

    bases: Mapping[str, int]
    stale_after_intervals: float
    source: str | None = None
    normal_end: str = ""
    last_bar: dict[str, tuple[int, float]] = field(default_factory=dict)  # ts, monotonic
    stale: set[str] = field(default_factory=set)
    health: dict[str, dict[str, Any]] = field(default_factory=dict)
    failed: str = ""  # why the market data source stopped ("" while it delivers)
    markets: Mapping[str, str] = field(default_factory=dict)
    closed: set[str] = field(default_factory=set)  # instruments whose market was closed

    def on_bar(self, bar: Bar, now: float) -> bool:
        """Record a bar; True if its instrument was stale and is fresh again."""
        inst = bar.instrument_id
        self.last_bar[inst] = (bar.ts, now)
        if inst in self.stale:
            self.stale.discard(inst)
            return True
        return False

    def on_health(self, event: GatewayHealth) -> bool:
        """Record a gateway's health; True if the source's failure began or ended.

        Only the source's bar streams decide whether market data failed: an order
        stream or a rate-limit pause of the same gateway is shown, not a feed failure.
        """
        key = f"{event.gateway}/{event.stream}" if event.stream else event.gateway
        self.health[key] = {"state": str(event.state), "reason": event.reason,
                            "ts": ns_to_iso(event.ts) if event.ts else None}
        if event.gateway != self.source or not _is_bar_stream(event.stream):
            return False
        failed = self.failed
        if event.state is HealthState.DISCONNECTED:
            if event.reason != self.normal_end or not self.normal_end:
                failed = f"{event.gateway}: {event.reason or 'disconnected'}"
        elif event.state in (HealthState.CONNECTED, HealthState.RESYNCED):
            failed = ""
        changed = failed != self.failed
        self.failed = failed
        return changed

    def newly_stale(self, speed: float, now: float, wall_ns: int | None = None) -> list[Stale]:
        """Instruments silent for ``stale_after_intervals`` bar lengths of feed time.

        ``speed``: feed time per wall time (1.0 for a live venue, the replay speed
        for the replay-as-live feed).  With ``wall_ns`` (UTC ns, live sources), an
        instrument whose market (``markets``) is closed is not stale, and its
        silence counts again from the first check after the market reopened.
        """
        from trader.core.calendars import is_open

        out = []
        for inst, (ts, seen) in self.last_bar.items():
            tf = self.bases.get(inst)
            if tf is None or inst in self.stale:
                continue
            market = self.markets.get(inst)
            if wall_ns is not None and market is not None:
                if not is_open(market, wall_ns):
                    self.closed.add(inst)  # a closed market is quiet, not stale
                    continue
                if inst in self.closed:  # it just reopened: the silence starts now
                    self.closed.discard(inst)
                    self.last_bar[inst] = (ts, now)
                    continue
            limit = self.stale_after_intervals * tf / speed
            if now - seen > limit:
                self.stale.add(inst)
                out.append(Stale(inst, ts, now - seen, limit))
        return out

    def last_bars(self, now: float) -> dict[str, dict[str, Any]]:
        """Per instrument, the last bar's close time and how long ago it arrived."""
        return {inst: {"ts": ns_to_iso(ts), "age_s": round(now - seen, 3)}
                for inst, (ts, seen) in sorted(self.last_bar.items())}


def _is_bar_stream(stream: str) -> bool:
    """A stream that carries bars: a gateway's ``bars:<symbol>``, or a one-stream feed."""
    return stream == "" or stream.startswith("bars")
