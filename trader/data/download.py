"""Downloading closed bars from a venue into the catalog: chunked, resumable, no duplicates.

The source is anything with the ``MarketData.history`` method of
``gateways/base.py`` (``history(instrument_id, start_ns, end_ns) -> History``
with ``.bars``, ``.missing`` and ``.end_ns``); this module never sees a gateway's
internals, so every broker that implements the protocol downloads the same way.

A download walks the range in chunks of ``chunk_bars`` bars; the gateway
paginates inside a chunk and keeps to the venue's rate limit.  Stored bars are
flushed to the catalog every ``flush_bars`` bars and whatever happens (an error,
Ctrl-C), so an interrupted download loses at most what was in flight; the next
run starts after the last stored bar, so nothing is fetched or stored twice.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import structlog

from trader.core.events import Bar
from trader.core.timeframes import NS
from trader.data.catalog import Catalog, EntryKey, table_from_bars

log = structlog.get_logger(__name__)


class HistorySource(Protocol):
    """The part of ``gateways.base.MarketData`` a download needs."""

    name: str

    async def history(self, instrument_id: str, start_ns: int,
                      end_ns: int | None = None) -> Any:
        """Closed bars opening in ``[start_ns, end_ns)``; ``.bars``, ``.missing``, ``.end_ns``."""


@dataclass
class DownloadResult:
    """What one download stored."""

    key: EntryKey
    added: int
    missing: int  # intervals the venue had no bar for
    resumed_from: int | None  # open (ns) of the last bar stored before this run
    first_new: int | None
    last_new: int | None


def closed_end(now_ns: int, timeframe_s: int) -> int:
    """The open time of the first bar not yet closed at ``now_ns``: downloads stop there."""
    tf = timeframe_s * NS
    return now_ns - now_ns % tf


def resume_start(start_ns: int, last_open: int | None, timeframe_s: int) -> int:
    """Where a download starts: ``start_ns``, or right after the last stored bar."""
    if last_open is None:
        return start_ns
    return max(start_ns, last_open + timeframe_s * NS)


async def download(
    source: HistorySource,
    catalog: Catalog,
    key: EntryKey,
    instrument_id: str,
    start_ns: int,
    end_ns: int | None = None,
    *,
    chunk_bars: int = 1000,
    flush_bars: int = 50_000,
    retries: int = 3,
    backoff_s: float = 1.0,
    now_ns: Callable[[], int] = time.time_ns,
    progress: Callable[[int, int], None] | None = None,
    venue_symbol: str | None = None,
) -> DownloadResult:
    """Fetch ``instrument_id``'s closed bars from ``source`` into ``key``'s entry."""
    tf_s = key.timeframe
    tf = tf_s * NS
    last = catalog.last_open(key)
    cursor = resume_start(start_ns, last, tf_s)
    stop_at = closed_end(now_ns(), tf_s)
    if end_ns is not None:
        stop_at = min(stop_at, end_ns)
    total = max(0, -(-(stop_at - cursor) // tf))
    pending: list[Bar] = []
    added = missing = done = 0
    first_new = last_new = None
    label = f"download:{source.name}"

    def flush() -> None:
        nonlocal added, pending
        if pending:
            added += catalog.append(key, table_from_bars(pending), source=label,
                                    venue_symbol=venue_symbol)
            pending = []

    try:
        while cursor < stop_at:
            upto = min(cursor + chunk_bars * tf, stop_at)
            hist = await _with_retries(source, instrument_id, cursor, upto, retries, backoff_s)
            # closed bars of this chunk only, in order, never one stored already
            bars = sorted((b for b in hist.bars if cursor <= b.ts_open < upto
                           and b.ts_open + tf <= upto), key=lambda b: b.ts_open)
            if bars:
                first_new = first_new if first_new is not None else bars[0].ts_open
                last_new = bars[-1].ts_open
            pending.extend(bars)
            missing += int(getattr(hist, "missing", 0))
            done += (upto - cursor) // tf
            if len(pending) >= flush_bars:
                flush()
            if progress is not None:
                progress(done, total)
            venue_end = getattr(hist, "end_ns", upto)
            if venue_end < upto:  # the venue has nothing closed beyond this point yet
                if progress is not None:
                    progress(total, total)
                break
            cursor = upto
    finally:
        flush()
    log.info("download_done", entry=key.name, added=added, missing=missing)
    return DownloadResult(key, added, missing, last, first_new, last_new)


async def _with_retries(source: HistorySource, instrument_id: str, start: int, end: int,
                        retries: int, backoff_s: float) -> Any:
    """One chunk; a failure (a rate limit, a dropped connection) is retried with backoff."""
    attempt = 0
    while True:
        try:
            return await source.history(instrument_id, start, end)
        except (KeyError, TypeError, ValueError):
            raise  # a wrong symbol or argument does not get better by waiting
        except Exception as exc:  # noqa: BLE001 - the venue's errors are the gateway's types
            attempt += 1
            if attempt > retries:
                raise
            wait = backoff_s * 2 ** (attempt - 1)
            log.warning("download_retry", instrument=instrument_id, attempt=attempt,
                        wait_s=wait, error=str(exc)[:200])
            await asyncio.sleep(wait)
