"""One limiter per venue: every REST request of a gateway waits here first.

ccxt's own throttle spaces requests by the venue's documented weights, but it
knows nothing of what the venue *answered*: a 429 with ``Retry-After``, a
Binance 418 IP ban, Kraken's ``EGeneral:Temporary lockout``.  Sending again
during a ban lengthens it (Binance escalates 418 bans from 2 minutes to 3
days), so after one of those answers *every* request of that venue must wait,
whichever task sends it (submit, cancel, lookup, polling, history).

``VenueLimiter.attach`` therefore hooks the exchange object itself, below all
gateway code paths: ``fetch`` (every REST request goes through it) waits while
the venue is paused and classifies throttling errors; ``on_rest_response`` (the
ccxt hook that sees each response's status and headers) captures
``Retry-After`` and a 2xx body that is not the complete JSON document it
claims to be.  Nothing of ccxt is replaced: the original methods still run.

A 2xx answer whose JSON is cut short is raised as ``TruncatedResponse``: ccxt
would otherwise hand the raw text on to its parsers, which turn it into an
order without an id (a "ghost" acknowledgement) or fail with a ``TypeError``.

The clock is injectable so tests can run an 8 s ban in milliseconds.
"""

from __future__ import annotations

import asyncio
import contextvars
import datetime as dt
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import structlog
from ccxt.base.errors import (
    AccountSuspended,
    BadResponse,
    DDoSProtection,
    RateLimitExceeded,
)

from gateways.ccxt.limits import VenueLimits

log = structlog.get_logger(__name__)

# the answers that mean "this venue refuses everything from us for a while"
BAN_MARKERS = ("Temporary lockout", " 418 ")
EXCERPT = 200  # characters of a raw venue message kept in logs and reasons


class TruncatedResponse(BadResponse):
    """A 2xx answer whose JSON body is incomplete: whatever it said is unknown."""


@dataclass(slots=True)
class LimiterStats:
    """What an operator's status shows: counts, and the pause in force if any."""

    requests: int = 0
    waited: int = 0  # requests that had to wait for a pause to end
    rate_limited: int = 0  # 429-type answers
    bans: int = 0  # 418 / lockout answers
    truncated: int = 0  # 2xx answers with a cut JSON body
    refused_orders: int = 0  # new orders refused because of a ban
    paused: bool = False
    banned: bool = False
    cause: str = ""
    until_utc: str = ""  # HH:MM:SS of the pause's end, empty when none


@dataclass(slots=True)
class _Response:
    status: int = 0
    retry_after_s: float | None = None
    truncated: bool = False
    excerpt: str = ""


# what the hook saw of the response to the request this task is making: set by
# ``fetch`` before the request, filled by ``on_rest_response`` within the same task
_last: contextvars.ContextVar[_Response | None] = contextvars.ContextVar("venue_response",
                                                                         default=None)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds or an HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        from email.utils import parsedate_to_datetime

        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _looks_truncated(body: str) -> bool:
    """A body that starts as a JSON document but does not parse as one."""
    text = body.strip()
    if not text or text[0] not in "{[":
        return False
    try:
        json.loads(text)
    except ValueError:
        return True
    return False


HealthCallback = Callable[[bool, str], None]  # (paused?, reason)


class VenueLimiter:
    """Pauses every request of one venue after a throttle or ban answer."""

    def __init__(
        self,
        venue: str,
        limits: VenueLimits | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        on_change: HealthCallback | None = None,
    ) -> None:
        self.venue = venue
        self.limits = limits or VenueLimits()
        self._clock = clock
        self._wall = wall
        self._sleep = sleep
        self.on_change: HealthCallback = on_change or (lambda _p, _r: None)
        self.stats = LimiterStats()
        self._until = 0.0  # clock time the pause ends
        self._banned = False
        self._watch: asyncio.Task[None] | None = None
        # Kraken refuses a private request whose nonce is not above the last one it saw:
        # requests signed in order must reach it in order, so they go one at a time.
        self._ordered = asyncio.Lock()

    def use_clock(self, clock: Callable[[], float],
                  sleep: Callable[[float], Awaitable[Any]]) -> None:
        """Run on another clock (tests: a fake clock, so an 8 s ban takes no real time)."""
        self._clock = clock
        self._sleep = sleep

    # -- state ------------------------------------------------------------------------
    def remaining(self) -> float:
        """Seconds until requests may flow again (0 when not paused)."""
        return max(0.0, self._until - self._clock())

    @property
    def banned(self) -> bool:
        """A ban (418 / lockout) is in force: new orders are refused, not queued."""
        return self._banned and self.remaining() > 0

    def until_text(self) -> str:
        """The pause's end as ``HH:MM:SS`` UTC."""
        end = self._wall() + self.remaining()
        return dt.datetime.fromtimestamp(end, tz=dt.UTC).strftime("%H:%M:%S")

    def refusal(self) -> str | None:
        """Why a new order must not be sent now, or None."""
        if not self.banned:
            return None
        self.stats.refused_orders += 1
        return f"venue ban until {self.until_text()} UTC ({self.stats.cause}); not sent"

    def pause(self, seconds: float, cause: str, *, ban: bool) -> None:
        """Hold every request for ``seconds`` (extends, never shortens, a pause in force)."""
        seconds = min(max(seconds, 0.0), self.limits.max_pause_s)
        until = self._clock() + seconds
        if until <= self._until and (self._banned or not ban):
            return
        self._until = max(until, self._until)
        self._banned = self._banned or ban
        self.stats.paused = True
        self.stats.banned = self._banned
        self.stats.cause = cause
        self.stats.until_utc = self.until_text()
        what = "ban" if ban else "rate limit"
        log.warning("venue_paused", venue=self.venue, kind=what, seconds=round(seconds, 3),
                    until=self.stats.until_utc, cause=cause)
        self.on_change(True, f"{self.venue} {what}: every request paused until "
                             f"{self.stats.until_utc} UTC ({cause})")
        if self._watch is None or self._watch.done():
            try:
                self._watch = asyncio.get_running_loop().create_task(
                    self._end_watch(), name=f"{self.venue}:limiter")
            except RuntimeError:  # no loop (a synchronous caller): ended lazily by wait()
                self._watch = None

    async def _end_watch(self) -> None:
        """Report the end of a pause even when no request is waiting for it."""
        while (left := self.remaining()) > 0:
            await self._sleep(left)
        self._end()

    def _end(self) -> None:
        if not self.stats.paused:
            return
        was_ban = self._banned
        cause = self.stats.cause
        self._banned = False
        self.stats.paused = self.stats.banned = False
        self.stats.until_utc = ""
        log.info("venue_resumed", venue=self.venue, after="ban" if was_ban else "rate limit",
                 cause=cause)
        self.on_change(False, f"{self.venue} requests resumed after "
                              f"{'ban' if was_ban else 'rate limit'} ({cause})")

    async def wait(self) -> None:
        """Return once the venue accepts requests again."""
        self.stats.requests += 1
        if self.remaining() <= 0:
            self._end()
            return
        self.stats.waited += 1
        while (left := self.remaining()) > 0:
            await self._sleep(left)
        self._end()

    async def close(self) -> None:
        """Stop the end-of-pause watcher."""
        if self._watch is not None and not self._watch.done():
            self._watch.cancel()
            try:
                await self._watch
            except asyncio.CancelledError:
                pass
        self._watch = None

    # -- classification ----------------------------------------------------------------
    def observe(self, exc: BaseException, resp: _Response | None) -> None:
        """Turn a throttle or ban answer into a pause of the right length."""
        text = str(exc)
        retry = resp.retry_after_s if resp is not None else None
        excerpt = text[:EXCERPT]
        ban = (isinstance(exc, AccountSuspended)
               or (resp is not None and resp.status == 418)
               or any(m in text for m in BAN_MARKERS))
        if ban:
            self.stats.bans += 1
            self.pause(retry if retry is not None else self.limits.ban_pause_s, excerpt, ban=True)
        elif isinstance(exc, (RateLimitExceeded, DDoSProtection)):
            self.stats.rate_limited += 1
            self.pause(retry if retry is not None else self.limits.rate_limit_pause_s, excerpt,
                       ban=False)

    # -- the hook ----------------------------------------------------------------------
    def attach(self, ex: Any) -> None:
        """Route every REST request of ``ex`` through this limiter (idempotent)."""
        if getattr(ex, "_venue_limiter", None) is self:
            return
        ex._venue_limiter = self
        fetch = ex.fetch
        on_rest_response = ex.on_rest_response
        limiter = self
        nonce_ordered = getattr(ex, "id", "") == "kraken"

        def hooked_response(code: Any, reason: Any, url: Any, method: Any, headers: Any,
                            body: Any, *rest: Any) -> Any:
            out = on_rest_response(code, reason, url, method, headers, body, *rest)
            resp = _last.get()
            if resp is not None:
                resp.status = int(code or 0)
                h = {str(k).lower(): v for k, v in (headers or {}).items()}
                resp.retry_after_s = parse_retry_after(h.get("retry-after"))
                text = out if isinstance(out, str) else ""
                resp.excerpt = text[:EXCERPT]
                # only a success needs the check: an error body is ccxt's to classify
                resp.truncated = 200 <= resp.status < 300 and _looks_truncated(text)
            return out

        async def limited_fetch(url: str, method: str = "GET", headers: Any = None,
                                body: Any = None) -> Any:
            if nonce_ordered and "/private/" in url:
                # Taken on entry, i.e. in signing (nonce) order, and held to the answer:
                # requests released together after a pause cannot overtake each other.
                async with limiter._ordered:
                    return await send(url, method, headers, body)
            return await send(url, method, headers, body)

        async def send(url: str, method: str, headers: Any, body: Any) -> Any:
            await limiter.wait()
            resp = _Response()
            token = _last.set(resp)
            try:
                result = await fetch(url, method, headers, body)
            except (DDoSProtection, RateLimitExceeded, AccountSuspended) as exc:
                limiter.observe(exc, resp)
                raise
            finally:
                _last.reset(token)
            if resp.truncated:
                limiter.stats.truncated += 1
                log.error("venue_truncated_response", venue=limiter.venue, method=method,
                          url=url.split("?")[0], status=resp.status, excerpt=resp.excerpt)
                raise TruncatedResponse(f"{limiter.venue} {method} {url.split('?')[0]} "
                                        f"{resp.status}: truncated JSON body: {resp.excerpt}")
            return result

        ex.on_rest_response = hooked_response
        ex.fetch = limited_fetch
