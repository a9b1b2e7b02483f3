"""Trading sessions: when a market is open, by asset class or venue.

* crypto (``crypto``, ``24/7``, or a crypto venue such as ``binance``): always open;
* FX (``fx``, ``forex``): open from Sunday 22:00 UTC to Friday 22:00 UTC (the
  usual interbank week; brokers differ by minutes, not hours);
* equities: an exchange calendar from ``exchange_calendars`` (``equity`` and
  ``us_equity`` mean ``XNYS``; any ISO MIC it knows works, e.g. ``XNAS``,
  ``XLON``), which has holidays and early closes.

``exchange_calendars`` pulls in pandas and takes about half a second to
import, so it is imported on first use only: ``trader --help`` stays fast.
Timestamps are UTC nanoseconds, as everywhere in the kernel.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from typing import Any

NS = 1_000_000_000

ALWAYS_OPEN = frozenset({"crypto", "24/7", "binance", "kraken", "coinbase", "bybit", "okx"})
FX = frozenset({"fx", "forex"})
EQUITY_ALIASES = {"equity": "XNYS", "equities": "XNYS", "us_equity": "XNYS", "stock": "XNYS",
                  "nyse": "XNYS", "nasdaq": "XNAS"}

# FX week: closes Friday 22:00 UTC, reopens Sunday 22:00 UTC
_FX_CLOSE = (4, 22)  # (weekday, hour): Friday
_FX_OPEN = (6, 22)  # Sunday


class CalendarError(ValueError):
    """An unknown asset class or venue (the message lists what is known)."""


def _utc(ts_ns: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts_ns / NS, tz=dt.UTC)


def _fx_is_open(ts_ns: int) -> bool:
    t = _utc(ts_ns)
    wd, hour = t.weekday(), t.hour
    if wd == 5:  # Saturday
        return False
    if wd == _FX_CLOSE[0]:
        return hour < _FX_CLOSE[1]
    if wd == _FX_OPEN[0]:
        return hour >= _FX_OPEN[1]
    return True


def _fx_next_open(ts_ns: int) -> int:
    if _fx_is_open(ts_ns):
        return ts_ns
    t = _utc(ts_ns)
    days = (_FX_OPEN[0] - t.weekday()) % 7
    sunday = (t + dt.timedelta(days=days)).replace(hour=_FX_OPEN[1], minute=0, second=0,
                                                   microsecond=0)
    return int(sunday.timestamp()) * NS


@contextmanager
def _quiet() -> Iterator[None]:
    # exchange_calendars 4.x trips pandas 3 deprecation warnings on every call; they are
    # the library's to fix and would bury the daemon's own log lines
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _mic(key: str) -> str | None:
    k = key.strip()
    alias = EQUITY_ALIASES.get(k.lower())
    if alias is not None:
        return alias
    return k.upper() if k[:1].upper() == "X" and len(k) == 4 else None


@lru_cache(maxsize=16)
def _calendar(mic: str, first_year: int, last_year: int) -> Any:
    import exchange_calendars as xcals  # lazy: pandas import costs ~0.5 s

    try:
        with _quiet():
            return xcals.get_calendar(mic, start=f"{first_year}-01-01",
                                      end=f"{last_year}-12-31")
    except xcals.errors.InvalidCalendarName:
        raise CalendarError(f"unknown exchange calendar {mic!r}") from None


def _equity_calendar(mic: str, ts_ns: int) -> Any:
    # a calendar covers a fixed range; build one around the asked instant, in
    # decade-wide blocks so neighbouring calls share one (cached) calendar
    year = _utc(ts_ns).year
    first = year - year % 10
    return _calendar(mic, first - 1, first + 11)


def _kind(asset_class_or_venue: str) -> str:
    key = asset_class_or_venue.strip().lower()
    if key in ALWAYS_OPEN:
        return "always"
    if key in FX:
        return "fx"
    if _mic(asset_class_or_venue) is not None:
        return "equity"
    raise CalendarError(
        f"no trading calendar for {asset_class_or_venue!r}: use one of "
        f"{sorted(ALWAYS_OPEN | FX | set(EQUITY_ALIASES))} or an exchange MIC such as 'XNYS'"
    )


def is_open(asset_class_or_venue: str, ts_ns: int) -> bool:
    """Whether the market of ``asset_class_or_venue`` trades at ``ts_ns`` (UTC ns)."""
    kind = _kind(asset_class_or_venue)
    if kind == "always":
        return True
    if kind == "fx":
        return _fx_is_open(ts_ns)
    import pandas as pd

    mic = _mic(asset_class_or_venue)
    assert mic is not None
    cal = _equity_calendar(mic, ts_ns)
    with _quiet():
        return bool(cal.is_open_on_minute(pd.Timestamp(ts_ns, unit="ns", tz="UTC")))


def next_open(asset_class_or_venue: str, ts_ns: int) -> int:
    """The first instant at or after ``ts_ns`` at which the market is open (UTC ns)."""
    kind = _kind(asset_class_or_venue)
    if kind == "always":
        return ts_ns
    if kind == "fx":
        return _fx_next_open(ts_ns)
    if is_open(asset_class_or_venue, ts_ns):
        return ts_ns
    import pandas as pd

    mic = _mic(asset_class_or_venue)
    assert mic is not None
    cal = _equity_calendar(mic, ts_ns)
    with _quiet():
        nxt = cal.next_open(pd.Timestamp(ts_ns, unit="ns", tz="UTC").floor("min"))
    return int(pd.Timestamp(nxt).value)


class MarketCalendar:
    """``is_open``/``next_open`` bound to one asset class or venue (e.g. per instrument)."""

    def __init__(self, asset_class_or_venue: str) -> None:
        _kind(asset_class_or_venue)  # fail early on an unknown name
        self.key = asset_class_or_venue

    def is_open(self, ts_ns: int) -> bool:
        """Whether the market trades at ``ts_ns``."""
        return is_open(self.key, ts_ns)

    def next_open(self, ts_ns: int) -> int:
        """The first open instant at or after ``ts_ns``."""
        return next_open(self.key, ts_ns)
