"""From a calibrated probability to a target weight: one rule for training and for trading.

The classifier answers "does the labelled trade (``LabelConfig.side``) make
money before its barriers?".  With profit-take and stop at ``pt`` and ``sl``
barrier widths, the trade's expected return is ``(p * pt - (1 - p) * sl) x
width``.  A position is taken only when the probability clears the confidence
threshold *and* that expectation beats the round-trip cost; its size is the
volatility target over the realised volatility, capped and rounded down to a
step so that noise in the volatility estimate does not churn orders.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SignalRule:
    """Parameters of ``target_weight`` (from the model's params and the artifact's labels)."""

    threshold: float
    cost_bps: float
    profit_take: float
    stop_loss: float
    primary: int          # +1 when the labels are long trades, -1 when short
    allow_short: bool
    target_vol: float     # annualised
    bars_per_year: float
    max_weight: float
    weight_step: float


def expected_return(p: float, width: float, rule: SignalRule) -> float:
    """Expected return of the labelled trade as a fraction of price (width: barrier / close)."""
    return (p * rule.profit_take - (1.0 - p) * rule.stop_loss) * width


def size(vol: float, rule: SignalRule) -> float:
    """Volatility-normalised size: target over realised (annualised), capped, stepped down."""
    annual = vol * math.sqrt(rule.bars_per_year)
    raw = rule.max_weight if annual <= 0 else min(rule.max_weight, rule.target_vol / annual)
    steps = math.floor(raw / rule.weight_step + 1e-9)
    return steps * rule.weight_step


def target_weight(p: float, width: float, vol: float, rule: SignalRule,
                  primary: int | None = None) -> float:
    """The weight for probability ``p``: signed size, or 0.0 when no side clears both gates.

    ``primary``: with meta-labels, the primary model's side on this bar; ``p`` is then the
    probability that its trade wins, and the mirror trade is never taken.
    """
    ev = expected_return(p, width, rule) * 10_000.0  # bps
    side = 0
    if p >= rule.threshold and ev > rule.cost_bps:
        side = rule.primary if primary is None else primary
    elif primary is None and 1.0 - p >= rule.threshold and -ev > rule.cost_bps:
        side = -rule.primary
    if side < 0 and not rule.allow_short:
        side = 0
    return side * size(vol, rule) if side else 0.0
