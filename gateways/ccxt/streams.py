"""Keeping ccxt.pro streams alive and honest: liveness, failure counting, bad frames, closed flags.

ccxt.pro's websocket client has three habits a trading daemon cannot live with:

* a frame that is not valid JSON raises inside the client's receive callback,
  so the reader stops for good while the socket stays open and no watch fails
  (nothing arrives until ccxt's own keep-alive gives up, minutes later);
* an exception in a venue's message handler (a field that is not a number)
  takes the same path;
* Binance's kline "closed" flag (``k.x``) is parsed away: a candle reaches us
  as ``[t, o, h, l, c, v]`` without saying whether it is final.

``harden`` wraps the exchange instance (not the library) so a bad frame is
logged with the venue and an excerpt and skipped, and records the venue's own
closed flags.  ``Liveness`` is an independent watchdog on the socket: it
pings a quiet connection itself and declares the stream stalled after N
quiet intervals.  ``FailureCounter`` forgets old failures after a healthy
period so a long-lived process does not drift into polling for ever.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import structlog

log = structlog.get_logger(__name__)

EXCERPT_CHARS = 200


def excerpt(raw: Any, limit: int = EXCERPT_CHARS) -> str:
    """A short printable piece of a raw message for logs (never the whole frame)."""
    if isinstance(raw, bytes | bytearray):
        raw = bytes(raw[:limit]).decode("utf-8", "replace")
    text = raw if isinstance(raw, str) else repr(raw)
    return text if len(text) <= limit else text[:limit] + "..."


class StreamStalled(RuntimeError):
    """A websocket looked open but delivered nothing for too long (closed and reopened)."""


@dataclass(slots=True)
class FrameStats:
    """What ``harden`` skipped, for operators and tests."""

    bad_frames: int = 0
    handler_errors: int = 0
    last_error: str = ""


@dataclass(slots=True)
class ClosedFlags:
    """Open times (ms) of candles the venue itself marked final, per unified symbol."""

    final: dict[str, set[int]] = field(default_factory=dict)

    def mark(self, symbol: str, open_ms: int) -> None:
        """Remember that the venue closed ``symbol``'s candle opening at ``open_ms``."""
        seen = self.final.setdefault(symbol, set())
        seen.add(open_ms)
        if len(seen) > 1000:  # bounded: only the recent ones matter
            for t in sorted(seen)[:-500]:
                seen.discard(t)

    def is_final(self, symbol: str, open_ms: int) -> bool:
        """Did the venue say this candle is closed?"""
        return open_ms in self.final.get(symbol, ())


def harden(ex: Any, venue: str, gateway: str, flags: ClosedFlags, stats: FrameStats) -> None:
    """Make one ccxt.pro exchange instance skip bad frames and keep the venue's closed flags.

    Only the instance is touched (its ``client`` factory, message handler and,
    on Binance, ``handle_ohlcv``); clients created afterwards inherit it.
    """
    orig_client = ex.client
    orig_handle = ex.handle_message

    def handle_message(client: Any, message: Any) -> Any:
        try:
            return orig_handle(client, message)
        except Exception as exc:  # one message must never stop the reader
            stats.handler_errors += 1
            stats.last_error = f"{type(exc).__name__}: {exc}"
            log.error("ws_message_skipped", gateway=gateway, venue=venue,
                      error=stats.last_error, raw=excerpt(message))
            return None

    def client(url: str) -> Any:
        fresh = url not in (ex.clients or {})
        c = orig_client(url)
        if fresh:
            c.on_message_callback = handle_message
            inner = c.handle_text_or_binary_message

            def text_or_binary(data: Any, _inner: Callable[[Any], Any] = inner) -> Any:
                try:
                    return _inner(data)
                except ValueError as exc:  # JSONDecodeError / orjson.JSONDecodeError
                    stats.bad_frames += 1
                    stats.last_error = f"bad frame: {exc}"
                    log.error("ws_bad_frame_skipped", gateway=gateway, venue=venue, url=url,
                              error=str(exc), raw=excerpt(data))
                    return None

            c.handle_text_or_binary_message = text_or_binary
        return c

    ex.client = client
    ex.handle_message = handle_message
    if venue == "binance" and hasattr(ex, "handle_ohlcv"):
        orig_ohlcv = ex.handle_ohlcv

        def handle_ohlcv(client: Any, message: Any) -> Any:
            out = orig_ohlcv(client, message)
            k = message.get("k") if isinstance(message, dict) else None
            # recorded after ccxt stored the candle, so a final flag never precedes its values
            if isinstance(k, dict) and k.get("x") is True:
                try:
                    symbol = ex.safe_symbol(k.get("s"), None, None, "spot")
                    flags.mark(symbol, int(k["t"]))
                except (TypeError, ValueError, KeyError):
                    pass
            return out

        ex.handle_ohlcv = handle_ohlcv


def stream_clients(ex: Any, marker: str) -> list[Any]:
    """The ccxt clients whose subscriptions or pending watches mention ``marker``."""
    out = []
    for c in list((ex.clients or {}).values()):
        keys = list((getattr(c, "subscriptions", None) or {}).keys()) + list(
            (getattr(c, "futures", None) or {}).keys())
        if any(marker in str(k) for k in keys):
            out.append(c)
    return out


class Liveness:
    """Watchdog for one stream, independent of ccxt's keep-alive.

    ``interval_s`` is how often the stream is expected to speak; after one quiet
    interval the watchdog pings the socket itself (a pong is a frame too), and
    after ``misses`` quiet intervals the stream is declared stalled.
    """

    __slots__ = ("interval_s", "misses", "_started", "_pinged")

    def __init__(self, interval_s: float, misses: int) -> None:
        self.interval_s = interval_s
        self.misses = misses
        self._started = time.monotonic()
        self._pinged = 0.0

    def reset(self) -> None:
        """A (re)connect starts a fresh quiet window."""
        self._started = time.monotonic()
        self._pinged = 0.0

    async def check(self, clients: list[Any]) -> str | None:
        """Why the stream is stalled, or None; pings quiet sockets along the way."""
        now = time.monotonic()
        if not clients:
            return None
        for c in clients:
            last_ms = getattr(c, "last_message_at", None) or getattr(
                c, "connectionEstablished", None)
            # ccxt stamps frames with wall-clock ms; compare ages, not instants
            age = (time.time() * 1000 - last_ms) / 1000 if last_ms else now - self._started
            # a frame from before the last reset (an old connection) does not count against it
            age = min(age, now - self._started)
            if age > self.misses * self.interval_s:
                return f"no frame for {age:.1f}s (> {self.misses} x {self.interval_s}s)"
            if age > self.interval_s and now - self._pinged > self.interval_s:
                self._pinged = now
                conn = getattr(c, "connection", None)
                if conn is not None and not getattr(conn, "closed", True):
                    try:
                        await conn.ping()
                    except Exception as exc:  # a dead socket: the next check will say so
                        log.debug("liveness_ping_failed", error=str(exc))
        return None


async def drop_clients(ex: Any, clients: list[Any], reason: str) -> None:
    """Close stalled clients and forget them, so the next watch dials afresh."""
    from ccxt.base.errors import NetworkError

    for c in clients:
        try:
            c.reject(NetworkError(reason))
        except Exception as exc:  # already closed
            log.debug("liveness_reject_failed", error=str(exc))
        try:
            await c.close()
        except Exception as exc:
            log.debug("liveness_close_failed", error=str(exc))
        if ex.clients and ex.clients.get(c.url) is c:
            del ex.clients[c.url]


class FailureCounter:
    """Consecutive stream failures, forgotten after ``healthy_reset_s`` of good health."""

    __slots__ = ("healthy_reset_s", "count", "_healthy_since", "_clock")

    def __init__(self, healthy_reset_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.healthy_reset_s = healthy_reset_s
        self.count = 0
        self._healthy_since: float | None = None
        self._clock = clock

    def healthy(self) -> None:
        """The stream is up (called on every good message or check)."""
        if self._healthy_since is None:
            self._healthy_since = self._clock()
        elif self.count and self._clock() - self._healthy_since >= self.healthy_reset_s:
            self.count = 0  # a day of rare drops must not add up to "give up"

    def failed(self) -> int:
        """Count one failure; returns the current run length."""
        self.healthy()
        self.count += 1
        self._healthy_since = None
        return self.count
