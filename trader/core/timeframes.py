"""Timeframe strings ("1m", "5m", "1h", "H4", "D1", "1d") to seconds and back."""

from __future__ import annotations

import re

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
