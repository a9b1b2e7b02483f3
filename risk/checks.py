"""Pre-trade checks: small pure functions, one per rule, each with its own reason code.

A check returns ``None`` when the order passes and a ``Breach`` otherwise.
Caps also say how much of the order would still fit (``fit``, a quantity in
the order's direction), so the engine can scale the order down when the cap's
config says ``scale``.  Exposures are signed values in the account currency.
"""

from __future__ import annotations

from dataclasses import dataclass

from risk.reasons import RiskReason
from trader.core.instruments import Instrument

NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Breach:
    """Why an order breaks a rule; ``fit`` is the largest quantity that would pass."""

    reason: RiskReason
    detail: str
    fit: float = 0.0


# -- sizing helpers ------------------------------------------------------------------
def cap_fit(current: float, delta: float, cap: float) -> float:
    """Largest ``|delta'|`` (same direction as ``delta``) keeping ``|current + delta'| <= cap``.

    Orders that leave ``|current|`` no larger than before always fit in full:
    a cap never blocks a move back toward it.
    """
    new = current + delta
    slack = 1e-9 * abs(cap)  # an order exactly at the cap must not fail on rounding
    if abs(new) <= cap + slack or abs(new) <= abs(current):
        return abs(delta)
    room = cap - current if delta > 0 else cap + current
    return room if room > 0.0 else 0.0


def gross_fit(gross: float, current: float, delta: float, cap: float) -> float:
    """Largest ``|delta'|`` keeping a gross sum ``<= cap`` when one member moves by ``delta'``.

    ``gross`` is the sum of absolute exposures including ``|current|``.
    """
    new = current + delta
    increase = abs(new) - abs(current)
    if increase <= 0 or gross + increase <= cap + 1e-9 * abs(cap):
        return abs(delta)
    headroom = cap - gross
    if current and (current > 0) != (delta > 0):
        # Unwinding ``current`` frees room; only the part beyond zero adds to gross.
        fit = 2 * abs(current) + headroom
        return fit if fit > abs(current) else abs(current)
    return headroom if headroom > 0.0 else 0.0


# -- order-level rules ---------------------------------------------------------------
def check_kill_switch(engaged: bool, own_flatten: bool) -> Breach | None:
    if engaged and not own_flatten:
        return Breach(RiskReason.KILL_SWITCH, "kill switch engaged")
    return None


def check_instrument(inst: Instrument, qty: float, price: float | None,
                     priced: bool) -> Breach | None:
    """Lot, minimum quantity, minimum notional and (for priced orders) tick size."""
    problem = inst.constraint_violation(qty, price, check_tick=priced)
    if problem is None:
        return None
    return Breach(RiskReason.INSTRUMENT_CONSTRAINT, f"{inst.id}: {problem}")


def check_stale(last_ts: int | None, now: int, interval_s: int, max_bars: int) -> Breach | None:
    """No order on an instrument whose last bar is older than ``max_bars`` intervals."""
    if last_ts is None:
        return Breach(RiskReason.NO_PRICE, "no bar seen yet")
    age = now - last_ts
    if age > max_bars * interval_s * NS:
        return Breach(
            RiskReason.STALE_PRICE,
            f"last bar is {age / NS:.0f}s old, more than {max_bars} x {interval_s}s",
        )
    return None


def check_price_band(order_price: float | None, last: float, band: float) -> Breach | None:
    """A limit/stop price must lie within ``band`` (fraction) of the last price."""
    if order_price is None:
        return None
    off = abs(order_price / last - 1.0)
    if off > band + 1e-12:  # 110/100 - 1 is 0.10000000000000009 in binary floating point
        return Breach(
            RiskReason.PRICE_BAND,
            f"price {order_price} is {off:.2%} from last {last}, band is {band:.2%}",
        )
    return None


def check_max_notional(qty: float, unit_value: float, limit: float) -> Breach | None:
    """Order value ``qty * unit_value`` (price x multiplier) at most ``limit``."""
    value = qty * unit_value
    if value <= limit * (1 + 1e-9):
        return None
    return Breach(
        RiskReason.MAX_ORDER_NOTIONAL,
        f"order value {value:,.2f} above limit {limit:,.2f}",
        limit / unit_value,
    )


def check_order_rate(sent_last_second: int, sent_last_minute: int,
                     per_second: int | None, per_minute: int | None) -> Breach | None:
    """At most ``per_second`` / ``per_minute`` orders (counts exclude this order)."""
    if per_second is not None and sent_last_second >= per_second:
        return Breach(RiskReason.ORDER_RATE, f"{sent_last_second} orders in the last second, "
                                             f"limit {per_second}")
    if per_minute is not None and sent_last_minute >= per_minute:
        return Breach(RiskReason.ORDER_RATE, f"{sent_last_minute} orders in the last minute, "
                                             f"limit {per_minute}")
    return None


def check_duplicate(last_same_ts: int | None, now: int, window_ns: int) -> Breach | None:
    """Reject an order identical (instrument, side, quantity) to one sent within the window."""
    if last_same_ts is not None and now - last_same_ts <= window_ns:
        return Breach(RiskReason.DUPLICATE_ORDER,
                      f"same order sent {(now - last_same_ts) / NS:.3f}s ago")
    return None


# -- exposure caps -------------------------------------------------------------------
def check_instrument_exposure(current: float, delta: float, nav: float, limit: float,
                              unit_value: float) -> Breach | None:
    """``|exposure after the order| <= limit * NAV`` for one instrument."""
    cap = limit * nav
    fit = cap_fit(current, delta, cap)
    if fit >= abs(delta):
        return None
    return Breach(
        RiskReason.INSTRUMENT_EXPOSURE,
        f"exposure would be {abs(current + delta):,.2f}, cap {cap:,.2f} ({limit:.0%} of NAV)",
        fit / unit_value,
    )


def check_class_exposure(asset_class: str, class_gross: float, current: float, delta: float,
                         nav: float, limit: float, unit_value: float) -> Breach | None:
    """Gross exposure of one asset class ``<= limit * NAV``."""
    cap = limit * nav
    fit = gross_fit(class_gross, current, delta, cap)
    if fit >= abs(delta):
        return None
    after = class_gross - abs(current) + abs(current + delta)
    return Breach(
        RiskReason.ASSET_CLASS_EXPOSURE,
        f"{asset_class} exposure would be {after:,.2f}, cap {cap:,.2f} ({limit:.0%} of NAV)",
        fit / unit_value,
    )


def check_gross_leverage(gross: float, current: float, delta: float, nav: float,
                         limit: float, unit_value: float) -> Breach | None:
    """Sum of absolute exposures ``<= limit * NAV``."""
    cap = limit * nav
    fit = gross_fit(gross, current, delta, cap)
    if fit >= abs(delta):
        return None
    after = gross - abs(current) + abs(current + delta)
    return Breach(
        RiskReason.GROSS_LEVERAGE,
        f"gross exposure would be {after / nav:.3f}x NAV, cap {limit}x",
        fit / unit_value,
    )


def check_net_exposure(net: float, delta: float, nav: float, limit: float,
                       unit_value: float) -> Breach | None:
    """``|sum of signed exposures| <= limit * NAV``."""
    cap = limit * nav
    fit = cap_fit(net, delta, cap)
    if fit >= abs(delta):
        return None
    return Breach(
        RiskReason.NET_EXPOSURE,
        f"net exposure would be {(net + delta) / nav:.3f}x NAV, cap {limit}x",
        fit / unit_value,
    )
