"""Tear-sheet figures as small pure functions of a daily equity curve.

Times are integer UTC nanoseconds like everywhere in the kernel; the curve is
the recorder's: one NAV per UTC day (its last bar). The headline metrics come
from ``trader.replay.metrics``; these are the views around them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from trader.replay.metrics import max_drawdown, returns, sharpe

DAY_NS = 86_400 * 1_000_000_000


def _date(ts: int) -> datetime:
    return datetime.fromtimestamp(ts / 1e9, tz=UTC)


def _day(ts: int) -> str:
    return _date(ts).strftime("%Y-%m-%d")


def period_returns(ts: Sequence[int], navs: Sequence[float], fmt: str) -> dict[str, float]:
    """Compounded return per calendar period (``fmt`` "%Y-%m": months, "%Y": years).

    Each period runs from the last NAV before it to its own last NAV, so the
    periods chain to the total return.
    """
    out: dict[str, float] = {}
    start_nav = navs[0] if navs else 0.0
    last_key: str | None = None
    last_nav = start_nav
    for t, v in zip(ts, navs, strict=True):
        key = _date(t).strftime(fmt)
        if last_key is not None and key != last_key:
            out[last_key] = last_nav / start_nav - 1.0 if start_nav > 0 else 0.0
            start_nav = last_nav
        last_key, last_nav = key, v
    if last_key is not None:
        out[last_key] = last_nav / start_nav - 1.0 if start_nav > 0 else 0.0
    return out


@dataclass(frozen=True)
class DrawdownPeriod:
    """One fall from a peak to a trough and (maybe) back: times are ISO dates."""

    peak: str
    trough: str
    recovery: str | None  # None: not recovered by the end of the run
    depth: float  # positive fraction
    days: int  # peak to recovery (or to the end)

    def as_dict(self) -> dict[str, object]:
        return {"peak": self.peak, "trough": self.trough, "recovery": self.recovery,
                "depth": self.depth, "days": self.days}


def drawdown_periods(ts: Sequence[int], navs: Sequence[float], top: int = 5
                     ) -> list[DrawdownPeriod]:
    """The ``top`` deepest drawdowns, deepest first (ties: the earlier first)."""
    periods: list[DrawdownPeriod] = []
    peak_i = 0
    trough_i = 0
    in_dd = False
    for i, v in enumerate(navs):
        if v >= navs[peak_i]:
            if in_dd:
                periods.append(_period(ts, navs, peak_i, trough_i, i))
                in_dd = False
            peak_i = trough_i = i
        else:
            in_dd = True
            if v < navs[trough_i]:
                trough_i = i
    if in_dd:
        periods.append(_period(ts, navs, peak_i, trough_i, None))
    periods.sort(key=lambda p: (-p.depth, p.peak))
    return periods[:top]


def _period(ts: Sequence[int], navs: Sequence[float], peak: int, trough: int,
            recovery: int | None) -> DrawdownPeriod:
    end = ts[recovery] if recovery is not None else ts[-1]
    depth = 1.0 - navs[trough] / navs[peak] if navs[peak] > 0 else 0.0
    return DrawdownPeriod(_day(ts[peak]), _day(ts[trough]),
                          _day(ts[recovery]) if recovery is not None else None,
                          depth, int(round((end - ts[peak]) / DAY_NS)))


def rolling(navs: Sequence[float], window: int, periods_per_year: float
            ) -> tuple[list[float | None], list[float | None]]:
    """Rolling annualised Sharpe and volatility over ``window`` returns (None until full)."""
    rets = returns(navs)
    sharpes: list[float | None] = [None]
    vols: list[float | None] = [None]
    for i in range(1, len(navs)):
        if i < window:
            sharpes.append(None)
            vols.append(None)
            continue
        win = rets[i - window:i]
        m = math.fsum(win) / window
        sd = math.sqrt(math.fsum((r - m) ** 2 for r in win) / (window - 1)) if window > 1 else 0.0
        sharpes.append(sharpe(win, periods_per_year))
        vols.append(sd * math.sqrt(periods_per_year))
    return sharpes, vols


def periods_per_year(ts: Sequence[int]) -> float:
    """Samples per year of a curve (252 when it is too short to tell)."""
    years = (ts[-1] - ts[0]) / (365.25 * DAY_NS) if len(ts) > 1 else 0.0
    return (len(ts) - 1) / years if years > 0 else 252.0


def buy_and_hold(closes: Sequence[tuple[int, float]], ts: Sequence[int], start_nav: float
                 ) -> list[float | None]:
    """NAV of ``start_nav`` put into one instrument at its first close, sampled at ``ts``.

    Before the instrument's first close the benchmark is cash (``start_nav``).
    """
    out: list[float | None] = []
    if not closes:
        return [None] * len(ts)
    first = closes[0][1]
    j = -1
    for t in ts:
        while j + 1 < len(closes) and closes[j + 1][0] <= t:
            j += 1
        out.append(start_nav if j < 0 else start_nav * closes[j][1] / first)
    return out


def curve_summary(ts: Sequence[int], navs: Sequence[float]) -> dict[str, float]:
    """Total return, CAGR, Sharpe and max drawdown of any curve (a benchmark's)."""
    from trader.replay.metrics import cagr

    if len(navs) < 2 or navs[0] <= 0:
        return {"total_return": 0.0, "cagr": 0.0, "sharpe": 0.0, "max_drawdown": 0.0}
    years = (ts[-1] - ts[0]) / (365.25 * DAY_NS)
    return {"total_return": navs[-1] / navs[0] - 1.0, "cagr": cagr(navs[0], navs[-1], years),
            "sharpe": sharpe(returns(navs), periods_per_year(ts)),
            "max_drawdown": max_drawdown(navs)}


UNCLASSIFIED = "unclassified"  # before a regime's first state (its warm-up)


def regime_performance(ts: Sequence[int], navs: Sequence[float],
                       changes: Sequence[tuple[int, str]]) -> dict[str, dict[str, float]]:
    """Time in each state of one regime and the run's performance while in it.

    ``changes``: (bar close, new state) in time order.  Each step of the curve
    (one NAV sample to the next) belongs to the state known at its start, so a
    state is credited only with returns earned after it was known.  Per state:
    ``time_share`` (of the curve's span), ``days``, ``spells`` (times entered),
    the compounded ``total_return``, ``mean_return`` per step, annualised
    ``sharpe`` and the ``max_drawdown`` of the state's steps chained together.
    """
    steps: dict[str, list[float]] = {}
    span: dict[str, int] = {}
    spells: dict[str, int] = {}
    j = -1
    prev_state: str | None = None
    for i in range(1, len(navs)):
        while j + 1 < len(changes) and changes[j + 1][0] <= ts[i - 1]:
            j += 1
        state = changes[j][1] if j >= 0 else UNCLASSIFIED
        if state != prev_state:
            spells[state] = spells.get(state, 0) + 1
            prev_state = state
        r = navs[i] / navs[i - 1] - 1.0 if navs[i - 1] > 0 else 0.0
        steps.setdefault(state, []).append(r)
        span[state] = span.get(state, 0) + ts[i] - ts[i - 1]
    total = ts[-1] - ts[0] if len(ts) > 1 else 0
    ppy = periods_per_year(ts)
    out: dict[str, dict[str, float]] = {}
    for state in sorted(steps):
        rets = steps[state]
        chained = [1.0]
        for r in rets:
            chained.append(chained[-1] * (1.0 + r))
        out[state] = {
            "time_share": span[state] / total if total > 0 else 0.0,
            "days": round(span[state] / DAY_NS, 6),
            "spells": spells[state],
            "total_return": chained[-1] - 1.0,
            "mean_return": math.fsum(rets) / len(rets),
            "sharpe": sharpe(rets, ppy),
            "max_drawdown": max_drawdown(chained),
        }
    return out
