"""Checks of a bar series: each a small pure function over numpy arrays.

``check_series`` runs them all and returns findings, errors first:

* ``duplicate`` / ``out_of_order`` timestamps (errors);
* every rule of ``trader.core.validation`` (NaN, inf, price <= 0, high < low,
  open or close outside the range, negative volume) (errors);
* ``gap``: intervals with no bar while the instrument's market was open
  (``trader.core.calendars``: weekends and holidays are not gaps) (errors);
* ``stale``: a run of flat bars (high == low, close unchanged) (warning);
* ``outlier``: a close-to-close return far outside the series' own spread (warning).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from trader.core.calendars import is_open, next_open
from trader.core.events import ns_to_iso
from trader.core.timeframes import NS
from trader.core.validation import BAR_RULES

ERROR, WARNING = "error", "warning"


@dataclass(frozen=True)
class Finding:
    """One problem: what, where (data row from 1, bar open time) and the detail."""

    kind: str
    severity: str
    row: int
    ts: str
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def order_findings(ts: np.ndarray) -> list[Finding]:
    """Duplicate and out-of-order timestamps, each against the row before it."""
    out = []
    d = np.diff(ts)
    for i in np.flatnonzero(d <= 0):
        kind = "duplicate" if d[i] == 0 else "out_of_order"
        out.append(Finding(kind, ERROR, int(i) + 2, ns_to_iso(int(ts[i + 1])),
                           f"{ns_to_iso(int(ts[i + 1]))} after {ns_to_iso(int(ts[i]))} "
                           f"(row {i + 1})"))
    return out


def ohlc_findings(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray,
                  c: np.ndarray, v: np.ndarray) -> list[Finding]:
    """Rows breaking the kernel's bar rules (the first rule each row breaks)."""
    out = []
    bad = np.zeros(len(ts), dtype=bool)
    for problem, rule in BAR_RULES:
        new = rule(o, h, lo, c, v) & ~bad
        for i in np.flatnonzero(new):
            out.append(Finding("ohlc", ERROR, int(i) + 1, ns_to_iso(int(ts[i])),
                               f"{problem} (o={o[i]} h={h[i]} l={lo[i]} c={c[i]} v={v[i]})"))
        bad |= new
    return out


def bar_expected(calendar: str, t: int, tf_ns: int) -> bool:
    """Whether the market trades during the bar ``[t, t + tf)``: sampled at the middle of
    each quarter, so a daily bar labelled 00:00 UTC counts on a trading day (the session
    falls in it) and a Sunday of the FX week (open from 22:00 only) does not."""
    return any(is_open(calendar, t + (2 * k + 1) * tf_ns // 8) for k in range(4))


def gap_findings(ts: np.ndarray, timeframe_s: int, calendar: str,
                 expected: Callable[[str, int, int], bool] = bar_expected) -> list[Finding]:
    """Runs of missing bars while the market was open (one finding per run)."""
    tf = timeframe_s * NS
    out = []
    d = np.diff(ts)
    for i in np.flatnonzero(d > tf):
        a, b = int(ts[i]) + tf, int(ts[i + 1])
        if next_open(calendar, a) >= b:
            continue  # the market was closed for the whole hole (weekend, holiday, night)
        missing = [t for t in range(a, b, tf) if expected(calendar, t, tf)]
        if missing:
            out.append(Finding("gap", ERROR, int(i) + 2, ns_to_iso(missing[0]),
                               f"{len(missing)} bar(s) missing from {ns_to_iso(missing[0])} "
                               f"to {ns_to_iso(missing[-1])} while {calendar} was open"))
    return out


def stale_findings(ts: np.ndarray, h: np.ndarray, lo: np.ndarray, c: np.ndarray,
                   min_run: int) -> list[Finding]:
    """Runs of at least ``min_run`` flat bars with an unchanged close (a frozen feed)."""
    flat = (h == lo) & np.r_[False, c[1:] == c[:-1]]
    out = []
    i, n = 0, len(flat)
    while i < n:
        if not flat[i]:
            i += 1
            continue
        j = i
        while j < n and flat[j]:
            j += 1
        if j - i >= min_run:
            out.append(Finding("stale", WARNING, i + 1, ns_to_iso(int(ts[i])),
                               f"{j - i} flat bars at {c[i]} until {ns_to_iso(int(ts[j - 1]))}"))
        i = j
    return out


def outlier_findings(ts: np.ndarray, c: np.ndarray, sigmas: float,
                     floor: float = 0.05) -> list[Finding]:
    """Close-to-close log returns beyond ``sigmas`` robust deviations (MAD) and ``floor``."""
    ok = c > 0
    if ok.sum() < 3:
        return []
    r = np.diff(np.log(np.where(ok, c, np.nan)))
    finite = r[np.isfinite(r)]
    if len(finite) < 2:
        return []
    sigma = 1.4826 * float(np.median(np.abs(finite - np.median(finite))))
    limit = max(sigmas * sigma, floor)
    out = []
    for i in np.flatnonzero(np.abs(np.nan_to_num(r)) > limit):
        out.append(Finding("outlier", WARNING, int(i) + 2, ns_to_iso(int(ts[i + 1])),
                           f"return {np.expm1(r[i]):+.1%} from {c[i]} to {c[i + 1]} "
                           f"(limit {limit:.1%})"))
    return out


def check_series(ts: np.ndarray, o: np.ndarray, h: np.ndarray, lo: np.ndarray,
                 c: np.ndarray, v: np.ndarray, *, timeframe_s: int, calendar: str,
                 stale_run: int = 10, outlier_sigmas: float = 12.0) -> list[Finding]:
    """Every check over one series in file order; errors first, then by row."""
    found = order_findings(ts) + ohlc_findings(ts, o, h, lo, c, v)
    ordered = np.all(np.diff(ts) > 0)
    # gaps are measured on the sorted, distinct times when the file's order is broken
    gts = ts if ordered else np.unique(ts)
    found += gap_findings(gts, timeframe_s, calendar)
    found += stale_findings(ts, h, lo, c, stale_run)
    found += outlier_findings(ts, c, outlier_sigmas)
    return sorted(found, key=lambda f: (f.severity != ERROR, f.row, f.kind))
