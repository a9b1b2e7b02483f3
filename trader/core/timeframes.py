"""Timeframe strings ("1m", "5m", "1h", "H4", "D1", "1d") to seconds and back."""

from __future__ import annotations

import re
from typing import Any

_UNIT = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
_SUFFIX = re.compile(r"^(\d+)([smhdw])$", re.IGNORECASE)
_PREFIX = re.compile(r"^([MHDW])(\d+)$")  # MetaTrader style: M5, H4, D1, W1


def parse_timeframe(text: str | int) -> int:
    """Return the timeframe in seconds; raise ``ValueError`` naming the bad text."""
    if isinstance(text, int):
        if text <= 0:
            raise ValueError(f"timeframe must be positive, got {text}")
        return text
    raw = str(text).strip()
    m = _SUFFIX.match(raw)
    if m:
        n, unit = int(m.group(1)), m.group(2).lower()
    else:
        m = _PREFIX.match(raw)
        if not m:
            raise ValueError(
                f"unknown timeframe {raw!r}: expected forms like 1m, 5m, 1h, 4h, 1d, H4, D1"
            )
        n, unit = int(m.group(2)), m.group(1).lower()
    if n <= 0:
        raise ValueError(f"timeframe must be positive, got {raw!r}")
    return n * _UNIT[unit]


def format_timeframe(seconds: int) -> str:
    for unit, size in (("w", 604800), ("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


NS = 1_000_000_000
WEEK_S = 604_800
_MONDAY_NS = 4 * 86_400 * NS  # 1970-01-05, the first Monday after the epoch


def window_offset(timeframe_s: int) -> int:
    """Where the windows of ``timeframe_s`` are anchored (ns): the UTC epoch, except weekly
    windows, which start on Monday 00:00 UTC (the epoch fell on a Thursday)."""
    return _MONDAY_NS if timeframe_s % WEEK_S == 0 else 0


def window_start(ts_open: Any, timeframe_s: int) -> Any:
    """The open of the ``timeframe_s`` window holding a bar that opens at ``ts_open`` (ns).

    Works unchanged on an int and on a numpy array: the kernel's aggregator and
    ``trader data resample`` cut history into the same windows with it.
    """
    tf_ns = timeframe_s * NS
    return ts_open - (ts_open - window_offset(timeframe_s)) % tf_ns
