"""Turns net targets minus positions and working orders into orders."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from trader.core.events import OrderRequest, OrderType, Side
from trader.core.instruments import Instrument
from trader.engine.allocator import Allocator
from trader.engine.portfolio import Portfolio


@dataclass(frozen=True, slots=True)
class PlannedOrder:
    instrument_id: str
    quantity: float  # signed
    reduce_only: bool

    # Written out, not generated: mypyc compiles a class's own ``__init__``, while the
    # one the dataclass decorator writes at import time stays interpreted (about nine
    # times slower to construct in the compiled build; the same in the pure one).
    def __init__(self, instrument_id: str, quantity: float, reduce_only: bool) -> None:
        object.__setattr__(self, "instrument_id", instrument_id)
        object.__setattr__(self, "quantity", quantity)
        object.__setattr__(self, "reduce_only", reduce_only)


def plan_quantity(
    target: float, position: float, working: float, inst: Instrument, price: float,
    min_trade_value: float = 0.0,
) -> PlannedOrder | None:
    """The order that moves ``position + working`` to ``target``, rounded to lots, or None."""
    delta = inst.round_quantity(target - position - working)
    if not delta:
        return None
    qty = abs(delta)
    if qty < inst.min_quantity * (1 - 1e-9):
        return None
    notional = qty * price * inst.multiplier
    if notional < inst.min_notional or notional < min_trade_value:
        return None
    expected = position + working
    reduce_only = expected != 0 and (delta > 0) != (expected > 0) and qty <= abs(expected) + 1e-12
    return PlannedOrder(inst.id, delta, reduce_only)


class Planner:
    def __init__(
        self,
        allocator: Allocator,
        portfolio: Portfolio,
        working: Callable[[str], float],
        instruments: dict[str, Instrument],
        *,
        min_trade_fraction: float = 0.0,
    ) -> None:
        self.allocator = allocator
        self.portfolio = portfolio
        self.working = working
        self.instruments = instruments
        self.min_trade_fraction = min_trade_fraction

    def plan(self, instrument_ids: Iterable[str]) -> list[PlannedOrder]:
        out = []
        pf = self.portfolio
        min_value = self.min_trade_fraction * pf.nav
        for inst_id in instrument_ids:
            price = pf.marks.get(inst_id)
            if not price:
                continue
            p = plan_quantity(
                self.allocator.net_target(inst_id), pf.position(inst_id),
                self.working(inst_id), self.instruments[inst_id], price, min_value,
            )
            if p is not None:
                out.append(p)
        return out


def to_request(
    planned: PlannedOrder, client_order_id: str, ts: int, gateway: str = "sim",
    limit_price: float | None = None,
) -> OrderRequest:
    """The order for a planned quantity: at market, or at ``limit_price`` if given."""
    side = Side.BUY if planned.quantity > 0 else Side.SELL
    kind = OrderType.MARKET if limit_price is None else OrderType.LIMIT
    return OrderRequest(
        ts, client_order_id, planned.instrument_id, side, abs(planned.quantity),
        kind, limit_price, None, planned.reduce_only, gateway,
    )
