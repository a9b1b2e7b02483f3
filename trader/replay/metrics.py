"""Performance metrics as small pure functions of an equity curve and trade counts."""

from __future__ import annotations

import math
from collections.abc import Sequence

YEAR_NS = 365.25 * 86_400 * 1e9


def returns(navs: Sequence[float]) -> list[float]:
    return [b / a - 1.0 for a, b in zip(navs, navs[1:], strict=False) if a > 0]


def max_drawdown(navs: Sequence[float]) -> float:
    """Largest peak-to-trough fall, as a positive fraction."""
    peak = -math.inf
    worst = 0.0
    for v in navs:
        peak = max(peak, v)
        if peak > 0:
            worst = max(worst, 1.0 - v / peak)
    return worst


def cagr(start: float, end: float, years: float) -> float:
    if years <= 0 or start <= 0 or end <= 0:
        return 0.0 if end > 0 or years <= 0 else -1.0
    return (end / start) ** (1.0 / years) - 1.0


def _mean(xs: Sequence[float]) -> float:
    return math.fsum(xs) / len(xs) if xs else 0.0


def _std(xs: Sequence[float]) -> float:
    if len(xs) < 2:
        return 0.0
    m = _mean(xs)
    return math.sqrt(math.fsum((x - m) ** 2 for x in xs) / (len(xs) - 1))


def sharpe(rets: Sequence[float], periods_per_year: float) -> float:
    sd = _std(rets)
    return _mean(rets) / sd * math.sqrt(periods_per_year) if sd > 0 else 0.0


def sortino(rets: Sequence[float], periods_per_year: float) -> float:
    if len(rets) < 2:
        return 0.0
    downside = math.sqrt(math.fsum(min(r, 0.0) ** 2 for r in rets) / (len(rets) - 1))
    return _mean(rets) / downside * math.sqrt(periods_per_year) if downside > 0 else 0.0


def bps_score(sharpe_: float, cagr_: float, win_rate: float, max_dd: float) -> float:
    """The project's blended score: 0.4 Sharpe + 0.3 CAGR + 0.2 win rate - 0.1 |max DD|."""
    return 0.4 * sharpe_ + 0.3 * cagr_ + 0.2 * win_rate - 0.1 * abs(max_dd)


def compute_metrics(
    ts: Sequence[int],
    navs: Sequence[float],
    *,
    trades: int,
    wins: int,
    losses: int,
    gross_profit: float,
    gross_loss: float,
    exposure: float,
) -> dict[str, float | int]:
    """All headline metrics of a run; returns are per sample of the equity curve."""
    rets = returns(navs)
    years = (ts[-1] - ts[0]) / YEAR_NS if len(ts) > 1 else 0.0
    ppy = len(rets) / years if years > 0 else 252.0
    total = navs[-1] / navs[0] - 1.0 if navs and navs[0] > 0 else 0.0
    c = cagr(navs[0], navs[-1], years) if navs else 0.0
    vol = _std(rets) * math.sqrt(ppy)
    sh = sharpe(rets, ppy)
    mdd = max_drawdown(navs)
    closed = wins + losses
    win_rate = wins / closed if closed else 0.0
    if gross_loss > 0:
        pf = gross_profit / gross_loss
    else:
        pf = 0.0 if gross_profit == 0 else float("inf")
    return {
        "total_return": total,
        "cagr": c,
        "annual_volatility": vol,
        "sharpe": sh,
        "sortino": sortino(rets, ppy),
        "max_drawdown": mdd,
        "calmar": c / mdd if mdd > 0 else 0.0,
        "win_rate": win_rate,
        "profit_factor": pf,
        "trades": trades,
        "closed_trades": closed,
        "exposure": exposure,
        "bps": bps_score(sh, c, win_rate, mdd),
        "years": years,
        "final_nav": navs[-1] if navs else 0.0,
    }
