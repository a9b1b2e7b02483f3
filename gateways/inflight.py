"""Orders whose outcome is unknown: keep asking the venue by client order id, never re-send.

A submit whose answer is lost (timeout, 5xx, dropped connection) may or may
not have reached the venue.  Sending it again could double the position; calling
it rejected could hide a live order.  So the order goes to ``OUTCOME_UNKNOWN``
and ``InFlightResolver`` keeps looking it up with capped exponential backoff
until the venue answers either way:

* found: the gateway applies the venue's view (accepted, fills, ...);
* absent on ``absent_confirmations`` consecutive answers, the first at least
  ``settle_s`` after the submit: the order never arrived, it is rejected with
  a reason saying it was not re-sent;
* lookup fails (network, venue error, a garbled answer): try again later;
* no answer either way within ``timeout_s`` of the submit: the order is *lost*.
  ``on_lost`` is called once (the gateway logs an error, raises a health event
  and ends the order with a reason); it is still never re-sent.

The resolver is venue-neutral: a gateway supplies ``lookup`` (raises on
trouble, returns None when the venue has no such order) and two callbacks.
``settle_s`` should cover how long the venue may still act on a request it
received late (Binance refuses one older than ``recvWindow``, 10 s by default):
an "absent" answer before that proves nothing.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

log = structlog.get_logger(__name__)

NOT_FOUND_REASON = ("submit outcome unknown and the venue has no order with this client "
                    "order id (not re-sent)")


def backoff_delay(attempt: int, initial: float, cap: float, jitter: float = 0.0,
                  rng: random.Random | None = None) -> float:
    """Capped exponential backoff with symmetric jitter; ``attempt`` counts from 1."""
    base = min(cap, initial * (2 ** max(attempt - 1, 0)))
    r = (rng or random).uniform(-jitter, jitter)
    return max(0.0, min(cap, base * (1.0 + r)))


class ResolverTiming(Protocol):
    """The timing settings a gateway's config gives its resolver (``from_timing``)."""

    @property
    def backoff_initial_s(self) -> float: ...
    @property
    def backoff_max_s(self) -> float: ...
    @property
    def backoff_jitter(self) -> float: ...
    @property
    def unknown_settle_s(self) -> float: ...
    @property
    def unknown_order_timeout_s(self) -> float: ...


@dataclass(slots=True)
class ResolverStats:
    """Counters for operators and tests."""

    unknown: int = 0  # orders that went to OUTCOME_UNKNOWN
    resolved_found: int = 0
    resolved_absent: int = 0
    queries: int = 0
    query_errors: int = 0
    lost: int = 0  # gave up after ``timeout_s`` without an answer


class InFlightResolver:
    """Resolves orders of unknown outcome by periodic lookup, one task per order."""

    def __init__(
        self,
        lookup: Callable[[str], Awaitable[Any | None]],
        on_found: Callable[[str, Any], Awaitable[None]],
        on_absent: Callable[[str, str], None],
        *,
        gateway: str,
        initial_s: float = 0.5,
        max_s: float = 30.0,
        jitter: float = 0.25,
        absent_confirmations: int = 2,
        settle_s: float = 1.0,
        rng: random.Random | None = None,
        timeout_s: float | None = None,
        on_lost: Callable[[str, str], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._on_lost = on_lost
        self.timeout_s = timeout_s
        self._clock = clock
        self._on_found = on_found
        self._on_absent = on_absent
        self.gateway = gateway
        self.initial_s = initial_s
        self.max_s = max_s
        self.jitter = jitter
        self.absent_confirmations = max(1, absent_confirmations)
        self.settle_s = settle_s
        self._rng = rng or random.Random()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.stats = ResolverStats()

    @classmethod
    def from_timing(
        cls,
        timing: ResolverTiming,
        lookup: Callable[[str], Awaitable[Any | None]],
        on_found: Callable[[str, Any], Awaitable[None]],
        on_absent: Callable[[str, str], None],
        *,
        gateway: str,
        rng: random.Random | None = None,
        on_lost: Callable[[str, str], None] | None = None,
    ) -> InFlightResolver:
        """A resolver paced by a gateway's own backoff and unknown-order settings."""
        return cls(lookup, on_found, on_absent, gateway=gateway,
                   initial_s=timing.backoff_initial_s, max_s=timing.backoff_max_s,
                   jitter=timing.backoff_jitter, settle_s=timing.unknown_settle_s, rng=rng,
                   timeout_s=timing.unknown_order_timeout_s, on_lost=on_lost)

    @property
    def pending(self) -> list[str]:
        """Client order ids still being resolved."""
        return [c for c, t in self._tasks.items() if not t.done()]

    def track(self, client_order_id: str, sent_monotonic: float | None = None) -> None:
        """Start resolving ``client_order_id`` (no-op if it already is)."""
        task = self._tasks.get(client_order_id)
        if task is not None and not task.done():
            return
        self.stats.unknown += 1
        sent = self._clock() if sent_monotonic is None else sent_monotonic
        self._tasks[client_order_id] = asyncio.get_running_loop().create_task(
            self._resolve(client_order_id, sent), name=f"{self.gateway}:resolve:{client_order_id}")

    def forget(self, client_order_id: str) -> None:
        """Stop resolving (the order's outcome became known another way)."""
        task = self._tasks.pop(client_order_id, None)
        if task is not None and not task.done() and task is not asyncio.current_task():
            task.cancel()

    async def close(self) -> None:
        """Stop every resolution task (shutdown; reconciliation picks them up on restart)."""
        tasks = list(self._tasks.values())
        self._tasks.clear()
        for t in tasks:
            t.cancel()
        for t in tasks:
            try:
                await t
            except (asyncio.CancelledError, Exception):  # noqa: PERF203 - shutdown
                pass

    async def _resolve(self, coid: str, sent: float) -> None:
        attempt = 0
        absent = 0
        while True:
            attempt += 1
            if self._expired(coid, sent):
                return
            await asyncio.sleep(backoff_delay(attempt, self.initial_s, self.max_s, self.jitter,
                                              self._rng))
            self.stats.queries += 1
            try:
                found = await self._lookup(coid)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a failed query is no answer: ask again later
                self.stats.query_errors += 1
                absent = 0  # only consecutive clean answers count
                log.warning("inflight_query_failed", gateway=self.gateway, client_order_id=coid,
                            attempt=attempt, error=f"{type(exc).__name__}: {exc}")
                continue
            if found is not None:
                self.stats.resolved_found += 1
                log.info("inflight_resolved", gateway=self.gateway, client_order_id=coid,
                         found=True, attempts=attempt)
                self._tasks.pop(coid, None)
                try:
                    await self._on_found(coid, found)
                except asyncio.CancelledError:
                    raise
                except Exception:
                    log.exception("inflight_apply_failed", gateway=self.gateway,
                                  client_order_id=coid)
                return
            if self._clock() - sent < self.settle_s:
                continue  # the venue may not list an order it accepted a moment ago
            absent += 1
            if absent >= self.absent_confirmations:
                self.stats.resolved_absent += 1
                log.info("inflight_resolved", gateway=self.gateway, client_order_id=coid,
                         found=False, attempts=attempt)
                self._tasks.pop(coid, None)
                self._on_absent(coid, NOT_FOUND_REASON)
                return

    def _expired(self, coid: str, sent: float) -> bool:
        """Past the bound without an answer: hand the order to ``on_lost`` once."""
        if self.timeout_s is None or self._clock() - sent < self.timeout_s:
            return False
        self.stats.lost += 1
        self._tasks.pop(coid, None)
        reason = f"lost: outcome unknown after {self.timeout_s:g} s (not re-sent)"
        log.error("inflight_lost", gateway=self.gateway, client_order_id=coid,
                  timeout_s=self.timeout_s)
        if self._on_lost is not None:
            try:
                self._on_lost(coid, reason)
            except Exception:
                log.exception("inflight_lost_callback_failed", gateway=self.gateway,
                              client_order_id=coid)
        return True
