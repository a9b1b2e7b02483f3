"""Resuming the replay-as-live feed where the previous session stopped.

A paper session on ``daemon.market_data: replay`` keeps its positions and cash
across restarts, so it must not trade the same bars again: each session records,
per instrument, the ts of the last bar its kernel consumed (on every status
heartbeat and at shutdown, in its session row), and the next session of the same
mode streams only the bars after those; the bars before are its warm-up history.

After a kill -9 the bars consumed since the last heartbeat (``daemon.status_interval``)
are streamed again; a clean stop loses nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import structlog

from trader.core.events import Bar, ns_to_iso

log = structlog.get_logger(__name__)


def consumed_bars(store: Any, mode: str, store_session: Any) -> dict[str, int]:
    """Per instrument, the last bar ts earlier ``mode`` sessions consumed ({} without a store)."""
    if store is None or store_session is None:
        return {}
    consumed = store.consumed_bars(mode, before_session=store_session.id)
    if consumed:
        after = {k: ns_to_iso(v) for k, v in sorted(consumed.items())}
        log.info("replay_feed_resumes", after=after)
    return consumed


def save_consumed_bars(store: Any, store_session: Any, last_bar: Mapping[str, tuple[int, float]],
                       feed: Any) -> None:
    """Record the last consumed bar per instrument (only for the replay-as-live feed)."""
    if store is None or store_session is None or feed is None or not last_bar:
        return
    store.set_last_bars(store_session.id, {inst: ts for inst, (ts, _seen) in last_bar.items()})


def split_history(bars: Iterable[Bar], start_ns: int | None,
                  consumed: Mapping[str, int] | None = None) -> tuple[list[Bar], Iterator[Bar]]:
    """Bars before ``start_ns`` or already ``consumed`` (warm-up history), and the rest (live).

    A bar is consumed when its ts is at or before the last one an earlier session
    consumed of its instrument; a consumed bar is never streamed again.
    """
    done = dict(consumed or {})
    it = iter(bars)
    if start_ns is None and not done:
        return [], it
    history: list[Bar] = []
    for bar in it:
        old = bar.ts <= done.get(bar.instrument_id, -1)
        if not old and (start_ns is None or bar.ts_open >= start_ns):
            def rest(first: Bar = bar) -> Iterator[Bar]:
                yield first
                for b in it:
                    if b.ts > done.get(b.instrument_id, -1):
                        yield b
            return history, rest()
        history.append(bar)
    return history, iter(())
