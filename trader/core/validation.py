"""The one set of rules a bar must pass before it reaches the kernel.

The historical feed checks whole numpy batches, gateways check one bar at a
time; both use ``BAR_RULES``.  Each rule is an elementwise predicate written
with operators that work unchanged on Python floats and on numpy arrays
(``x != x`` is NaN, ``|`` combines), so the rules exist once.

A rule says "this row is bad"; rules are checked in order and the first that
fires names the problem.  The band check (a move too far from the previous
close) depends on the previous *kept* bar, so it is a separate function.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from trader.core.events import Bar

_INF = math.inf

# (problem, predicate(open, high, low, close, volume) -> bad)
BarRule = tuple[str, Callable[[Any, Any, Any, Any, Any], Any]]

BAR_RULES: tuple[BarRule, ...] = (
    ("NaN value", lambda o, h, lo, c, v: (o != o) | (h != h) | (lo != lo) | (c != c) | (v != v)),
    ("infinite value", lambda o, h, lo, c, v: (abs(o) == _INF) | (abs(h) == _INF)
     | (abs(lo) == _INF) | (abs(c) == _INF) | (abs(v) == _INF)),
    ("price <= 0", lambda o, h, lo, c, v: (o <= 0) | (h <= 0) | (lo <= 0) | (c <= 0)),
    ("high < low", lambda o, h, lo, c, v: h < lo),
    ("open outside [low, high]", lambda o, h, lo, c, v: (o < lo) | (o > h)),
    ("close outside [low, high]", lambda o, h, lo, c, v: (c < lo) | (c > h)),
    ("negative volume", lambda o, h, lo, c, v: v < 0),
)


def ohlcv_problem(o: float, h: float, lo: float, c: float, v: float) -> str | None:
    """The first rule one bar's values break, or None if they pass."""
    for problem, bad in BAR_RULES:
        if bad(o, h, lo, c, v):
            return problem
    return None


def band_problem(close: float, last_close: float | None, band: float | None) -> str | None:
    """A close more than ``band`` (a fraction: 0.5 = 50 %) away from the previous close.

    A spike such as a fat-fingered 1e9 tick is internally consistent (open, high,
    low and close can all be 1e9), so only the previous bar can expose it.
    """
    if band is None or last_close is None or last_close <= 0:
        return None
    move = abs(close / last_close - 1.0)
    if move > band:
        return f"move of {move:.1%} vs previous close {last_close} exceeds band {band:.1%}"
    return None


def validate_bar(bar: Bar, last_close: float | None = None,
                 band: float | None = None) -> str | None:
    """Why ``bar`` must not reach the kernel (with its values), or None if it is fine."""
    o, h, lo, c, v = bar.open, bar.high, bar.low, bar.close, bar.volume
    problem = ohlcv_problem(o, h, lo, c, v) or band_problem(c, last_close, band)
    if problem is None:
        return None
    return f"{problem} (o={o} h={h} l={lo} c={c} v={v})"
