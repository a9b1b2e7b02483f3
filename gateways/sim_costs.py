"""Cost and liquidity rules of the simulated exchange, as small pure functions.

Each rule takes what the exchange knows when an order fills: the order, the bar
it fills on, the bar before it (for a spread or volatility that must not come
from the fill bar's own close), and the schedule from config.  The defaults of
``SimCosts`` reproduce the original exchange exactly: fixed bps slippage, bps
commission plus a fee per order, no spread, no volume limit, no latency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from trader.core.events import Bar, OrderRequest, OrderType, Side


@dataclass(frozen=True, slots=True)
class SimCosts:
    """Spread, slippage, liquidity, latency and commission of the simulated exchange."""

    slippage_bps: float = 0.0
    commission_bps: float = 0.0
    fee_per_order: float = 0.0
    # spread: a fixed full spread in bps, or a fraction of the previous bar's range
    spread_bps: float = 0.0
    spread_range_fraction: float = 0.0
    # fixed: slippage_bps; volatility: slippage_vol_mult x previous bar's range / close;
    # sqrt_impact: impact_coef x (previous range / close) x sqrt(quantity / bar volume)
    slippage_model: Literal["fixed", "volatility", "sqrt_impact"] = "fixed"
    slippage_vol_mult: float = 0.0
    impact_coef: float = 0.0
    # at most this fraction of a bar's volume fills per bar; the rest waits for later bars
    max_participation: float | None = None
    # an order sees the market only after this many of its instrument's base bars, and
    # then at open + latency_fraction x (close - open) for market orders
    latency_bars: int = 0
    latency_fraction: float = 0.0
    # bps (commission_bps + fee_per_order), per_share (IBKR-like: rate per unit with a
    # minimum per order and a maximum as a fraction of the order's value), maker_taker
    commission_schedule: Literal["bps", "per_share", "maker_taker"] = "bps"
    per_share: float = 0.0
    per_share_min: float = 0.0
    per_share_max_pct: float | None = None
    maker_bps: float = 0.0
    taker_bps: float = 0.0
    # financing, accrued daily by the kernel for accounts this exchange keeps
    # (trader.engine.financing): short borrow and interest on negative cash
    borrow_bps_per_year: float = 0.0
    margin_bps_per_year: float = 0.0

    @property
    def is_default(self) -> bool:
        """True when only the original three costs are set (reports keep their old form)."""
        return (SimCosts(self.slippage_bps, self.commission_bps, self.fee_per_order) == self)

    def describe(self) -> str:
        """One line for reports: the cost model in use."""
        parts = [f"slippage {self.slippage_model}"]
        if self.slippage_model == "fixed":
            parts[-1] += f" {self.slippage_bps:g} bps"
        elif self.slippage_model == "volatility":
            parts[-1] += f" x{self.slippage_vol_mult:g} range"
        else:
            parts[-1] += f" coef {self.impact_coef:g}"
        if self.spread_bps or self.spread_range_fraction:
            parts.append(f"spread {self.spread_bps:g} bps + {self.spread_range_fraction:g} "
                         "x range")
        if self.max_participation is not None:
            parts.append(f"participation <= {self.max_participation:g} of bar volume")
        if self.latency_bars or self.latency_fraction:
            parts.append(f"latency {self.latency_bars} bars + {self.latency_fraction:g} bar")
        if self.commission_schedule == "per_share":
            cap = (f", max {self.per_share_max_pct:g} of value"
                   if self.per_share_max_pct is not None else "")
            parts.append(f"commission {self.per_share:g}/unit, min {self.per_share_min:g}{cap}")
        elif self.commission_schedule == "maker_taker":
            parts.append(f"commission maker {self.maker_bps:g} / taker {self.taker_bps:g} bps")
        else:
            parts.append(f"commission {self.commission_bps:g} bps + {self.fee_per_order:g} "
                         "per order")
        if self.borrow_bps_per_year or self.margin_bps_per_year:
            parts.append(f"financing borrow {self.borrow_bps_per_year:g} / margin "
                         f"{self.margin_bps_per_year:g} bps a year")
        return "; ".join(parts)


@dataclass(frozen=True, slots=True)
class Execution:
    """One fill's price and what it paid for crossing the spread and for slippage."""

    price: float
    spread_cost: float  # per unit, in price units (>= 0)
    slippage_cost: float  # per unit, in price units (>= 0)


def half_spread(costs: SimCosts, prev: Bar | None, ref: float) -> float:
    """Half the spread in price units at reference price ``ref``."""
    spread = ref * costs.spread_bps / 10_000.0
    if costs.spread_range_fraction and prev is not None:
        spread += costs.spread_range_fraction * (prev.high - prev.low)
    return spread / 2


def slippage_fraction(costs: SimCosts, prev: Bar | None, quantity: float, bar: Bar) -> float:
    """Slippage as a fraction of price, by the configured model."""
    if costs.slippage_model == "fixed":
        return costs.slippage_bps / 10_000.0
    vol = (prev.high - prev.low) / prev.close if prev is not None and prev.close else 0.0
    if costs.slippage_model == "volatility":
        return costs.slippage_vol_mult * vol
    participation = quantity / bar.volume if bar.volume > 0 else 1.0
    return costs.impact_coef * vol * math.sqrt(participation)


def trigger_price(order: OrderRequest, bar: Bar, ref_open: float) -> float | None:
    """Where an order trades on ``bar`` before costs, or None if it does not trade:
    market at the reference open; limit at its price (or a better open); stop at its
    price (or a worse open)."""
    buy = order.side is Side.BUY
    if order.order_type is OrderType.MARKET:
        return ref_open
    if order.order_type is OrderType.LIMIT:
        limit = order.limit_price
        assert limit is not None
        if buy:
            return min(bar.open, limit) if bar.low <= limit else None
        return max(bar.open, limit) if bar.high >= limit else None
    stop = order.stop_price
    assert stop is not None
    if buy:
        return max(bar.open, stop) if bar.high >= stop else None
    return min(bar.open, stop) if bar.low <= stop else None


def execute(order: OrderRequest, bar: Bar, prev: Bar | None, quantity: float,
            costs: SimCosts) -> Execution | None:
    """The fill of ``quantity`` of ``order`` on ``bar`` with spread and slippage, or None.

    A limit order fills at its price (it rests in the book: no spread, no slippage);
    market and stop orders pay half the spread and the slippage, against the order.
    """
    ref = bar.open + costs.latency_fraction * (bar.close - bar.open)
    base = trigger_price(order, bar, ref)
    if base is None:
        return None
    if order.order_type is OrderType.LIMIT:
        return Execution(base, 0.0, 0.0)
    sign = order.side.sign
    hs = half_spread(costs, prev, base)
    slip = base * slippage_fraction(costs, prev, quantity, bar)
    return Execution(base + sign * (hs + slip), hs, slip)


def participation_cap(costs: SimCosts, bar: Bar, used: float) -> float:
    """Units that may still fill on ``bar`` after ``used`` units filled on it already."""
    if costs.max_participation is None:
        return math.inf
    return max(0.0, costs.max_participation * bar.volume - used)


def commission_of(costs: SimCosts, order: OrderRequest, quantity: float, notional: float,
                  filled_before: float, charged_before: float) -> float:
    """Commission of one fill of ``quantity`` (value ``notional``) of ``order``.

    Per-order amounts (``fee_per_order``, the per-share minimum and maximum) apply to
    the order as a whole: a later partial fill pays what the order's total owes minus
    what earlier fills of it paid.
    """
    value = abs(notional)
    if costs.commission_schedule == "maker_taker":
        rate = costs.maker_bps if order.order_type is OrderType.LIMIT else costs.taker_bps
        return value * rate / 10_000.0
    if costs.commission_schedule == "per_share":
        total_qty = filled_before + quantity
        total = max(costs.per_share_min, costs.per_share * total_qty)
        if costs.per_share_max_pct is not None:
            avg_value = value / quantity if quantity else 0.0
            total = min(total, costs.per_share_max_pct * avg_value * total_qty)
        return max(0.0, total - charged_before)
    fixed = costs.fee_per_order if filled_before == 0 else 0.0
    return value * costs.commission_bps / 10_000.0 + fixed
