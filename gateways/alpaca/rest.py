"""alpaca-py's blocking REST clients, run off the event loop.

alpaca-py sends every request with ``requests`` (blocking, no timeout) and
retries 429/504 with a blocking ``time.sleep``.  On the kernel's loop either
would freeze the daemon, and a silent retry of a 504 on an order submit could
send it twice.  So:

* every call runs in a dedicated thread pool (``RestRunner.call``), never on the loop;
* each client's session gets a request timeout (``TimeoutSession``);
* the client's own retry is switched off (``_retry = 0``: alpaca-py offers no public
  knob on ``TradingClient``); a 429 is waited out here instead, asynchronously, for
  as long as the venue's rate-limit headers say (``convert.retry_after_s``).  A 429
  means the request was not executed, so repeating it is safe even for a submit.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import requests
import structlog
from alpaca.common.exceptions import APIError

from gateways.alpaca.convert import retry_after_s

log = structlog.get_logger(__name__)

T = TypeVar("T")


class RateLimited(RuntimeError):
    """The venue kept answering 429 for every allowed attempt (the request was not executed)."""


class TimeoutSession(requests.Session):
    """A ``requests`` session whose every request has a timeout (alpaca-py sets none)."""

    def __init__(self, timeout_s: float) -> None:
        super().__init__()
        self.timeout_s = timeout_s

    def request(self, method: str | bytes, url: str | bytes, *args: Any,  # type: ignore[override]
                **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.timeout_s)
        return super().request(method, url, *args, **kwargs)


def tune(client: Any, timeout_s: float) -> Any:
    """Give an alpaca-py REST client a timeout and no blocking retries of its own."""
    client._session = TimeoutSession(timeout_s)
    client._retry = 0
    return client


def status_of(exc: BaseException) -> int | None:
    """The HTTP status of an alpaca-py ``APIError`` (None for other errors)."""
    return exc.status_code if isinstance(exc, APIError) else None


def message_of(exc: BaseException) -> str:
    """The venue's own message of an ``APIError`` (its body when it is not JSON)."""
    if isinstance(exc, APIError):
        try:
            return f"{exc.message} (code {exc.code}, HTTP {exc.status_code})"
        except (ValueError, KeyError, TypeError):
            return f"HTTP {exc.status_code}: {str(exc)[:200]}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


class RestRunner:
    """Runs blocking alpaca-py calls in a thread pool; waits out 429s without blocking."""

    def __init__(self, name: str, threads: int, *, max_wait_s: float, attempts: int,
                 on_throttle: Callable[[float], None] | None = None) -> None:
        self.name = name
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=f"{name}-rest")
        self.max_wait_s = max_wait_s
        self.attempts = attempts
        self.throttled = 0
        self._on_throttle = on_throttle

    async def call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` in the pool; a 429 is retried after the venue's wait."""
        loop = asyncio.get_running_loop()
        for attempt in range(1, self.attempts + 1):
            try:
                return await loop.run_in_executor(self._pool,
                                                  functools.partial(fn, *args, **kwargs))
            except APIError as exc:
                if exc.status_code != 429:
                    raise
                self.throttled += 1
                headers = exc.response.headers if exc.response is not None else {}
                wait = retry_after_s(headers, time.time(), self.max_wait_s)
                log.warning("alpaca_rate_limited", gateway=self.name,
                            call=getattr(fn, "__name__", str(fn)), attempt=attempt,
                            wait_s=round(wait, 3))
                if self._on_throttle is not None:
                    self._on_throttle(wait)
                await asyncio.sleep(wait)
        raise RateLimited(f"rate limited {self.attempts} times by Alpaca; not executed")

    def close(self) -> None:
        """Stop the pool (requests still running finish in their threads; none is waited on)."""
        self._pool.shutdown(wait=False, cancel_futures=True)
