"""Reconciliation on start: make the stored view and the broker's view agree before trading.

Order of work, chosen so that nothing is counted twice:

1. stored open orders go back into the router (with their fills re-counted from
   the stored fills, which are authoritative);
2. the broker's fills since the oldest open order (or the last stored fill) are
   applied through the router: a fill already stored is refused by the unique
   (gateway, trade id) key, a missed one is stored once and reaches the portfolio;
3. each restored order is compared with the broker's status: an order the broker
   never heard of was written ahead but not sent (or lost): it is closed, never
   re-sent; otherwise the broker's status is applied;
4. open orders at the broker that the store does not know, and positions or
   cash that differ, are flagged.  A wallet gateway's positions are the wallet
   minus what the account held before the daemon (``trader.live.baseline``), and
   positions agree within half a lot step of the instrument.  Policy ``adopt``
   takes the broker's truth (recorded as a risk event); ``refuse`` raises with
   the report.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

import structlog

from gateways.base import Gateway, OrderReport
from trader.core.events import OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from trader.engine.orders import Order
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router
from trader.live.baseline import apply_baseline
from trader.store import Store

log = structlog.get_logger(__name__)

S = OrderStatus
NEVER_SENT = "not known to the broker after restart: written ahead but never sent"
VANISHED = "no longer known to the broker after restart"
FILLED_BY_FILLS = "reconciled: the stored fills cover the whole order"


@dataclass(frozen=True, slots=True)
class ReconcilePolicy:
    """What to do with differences, and how close is equal."""

    mode: Literal["adopt", "refuse"] = "refuse"
    # Two amounts agree when they differ by at most max(absolute, relative x the larger
    # magnitude): a fixed cash tolerance is below float rounding once balances are large.
    quantity_tolerance: float = 1e-9
    quantity_rel_tolerance: float = 1e-9
    cash_tolerance: float = 0.01
    cash_rel_tolerance: float = 1e-9
    currency: str | None = "USD"  # None: cash is not compared
    # Extra history to ask the broker for before the oldest open order / last fill.
    fills_lookback_ns: int = 0
    # Positions also agree within this fraction of the instrument's lot step: nothing
    # smaller can be traded, so a smaller difference is rounding (a venue keeps fewer
    # decimals than a float sum of fills), not a lost or extra fill.
    lot_step_fraction: float = 0.5

    @classmethod
    def from_config(cls, cfg: Any) -> ReconcilePolicy:
        """The policy an ``AppConfig`` asks for (``store.reconcile_policy``, its currency)."""
        return cls(mode=cfg.store.reconcile_policy, currency=cfg.portfolio.currency)


@dataclass
class ReconciliationReport:
    """Everything reconciliation found and did, for the log, the store and the operator."""

    gateway: str
    policy: str
    restored_orders: list[str] = field(default_factory=list)
    adopted_fills: list[str] = field(default_factory=list)
    unknown_order_fills: list[str] = field(default_factory=list)
    status_changes: list[tuple[str, str, str]] = field(default_factory=list)
    vanished_orders: list[str] = field(default_factory=list)
    unknown_broker_orders: list[str] = field(default_factory=list)
    fill_gaps: list[str] = field(default_factory=list)
    position_diffs: dict[str, tuple[float, float]] = field(default_factory=dict)
    cash_diffs: dict[str, tuple[float, float]] = field(default_factory=dict)
    adopted_broker_truth: bool = False

    @property
    def consistent(self) -> bool:
        """True when nothing needs the policy: no unknown orders, position or cash difference."""
        return not (self.unknown_broker_orders or self.position_diffs or self.cash_diffs
                    or self.fill_gaps or self.unknown_order_fills)

    def summary(self) -> dict[str, Any]:
        return {
            "gateway": self.gateway, "policy": self.policy,
            "restored_orders": self.restored_orders, "adopted_fills": self.adopted_fills,
            "unknown_order_fills": self.unknown_order_fills,
            "status_changes": [list(c) for c in self.status_changes],
            "vanished_orders": self.vanished_orders,
            "unknown_broker_orders": self.unknown_broker_orders, "fill_gaps": self.fill_gaps,
            "position_diffs": {k: list(v) for k, v in self.position_diffs.items()},
            "cash_diffs": {k: list(v) for k, v in self.cash_diffs.items()},
            "adopted_broker_truth": self.adopted_broker_truth,
        }

    def text(self) -> str:
        lines = [f"reconciliation with {self.gateway} (policy {self.policy}):"]
        lines.append(f"  restored {len(self.restored_orders)} open orders, adopted "
                     f"{len(self.adopted_fills)} fills missed while down, closed "
                     f"{len(self.vanished_orders)} orders the broker does not know")
        for coid in self.unknown_broker_orders:
            lines.append(f"  broker has open order {coid} that the store does not know")
        for trade in self.unknown_order_fills:
            lines.append(f"  broker reports fill {trade} of an order the store does not know")
        for coid in self.fill_gaps:
            lines.append(f"  broker says {coid} filled more than the fills it reported")
        for inst, (ours, theirs) in sorted(self.position_diffs.items()):
            lines.append(f"  position {inst}: ours {ours:g}, broker {theirs:g}")
        for ccy, (ours, theirs) in sorted(self.cash_diffs.items()):
            lines.append(f"  cash {ccy}: ours {ours:,.2f}, broker {theirs:,.2f}")
        if self.consistent:
            lines.append("  consistent")
        return "\n".join(lines)


class ReconciliationError(Exception):
    """The broker disagrees with the store and the policy says not to start."""

    def __init__(self, report: ReconciliationReport) -> None:
        super().__init__(report.text() + "\nrefusing to start (store.reconcile_policy: refuse); "
                         "resolve the differences or start with policy adopt")
        self.report = report


async def reconcile(
    store: Store,
    gateway: Gateway,
    router: Router,
    portfolio: Portfolio,
    policy: ReconcilePolicy | None = None,
) -> ReconciliationReport:
    """Bring router, store and portfolio in line with ``gateway``; see the module doc."""
    policy = policy or ReconcilePolicy()
    gw = gateway.name
    report = ReconciliationReport(gw, policy.mode)
    ts = router.clock.now()

    restored: list[Order] = []
    for order in store.load_open_orders(gateway=gw):
        if order.client_order_id in router.active:
            continue
        router.adopt(order)
        restored.append(order)
        report.restored_orders.append(order.client_order_id)

    await _adopt_fills(store, gateway, router, policy, restored, report)

    for order in restored:
        await _settle_order(gateway, router, order, ts, report)

    for rep in await gateway.open_orders():
        if store.order_row(rep.client_order_id) is None:
            report.unknown_broker_orders.append(rep.client_order_id)
            if policy.mode == "adopt":
                _adopt_broker_order(router, rep, ts, gw)

    # Wallet gateways: what the account held before the daemon is not its position.
    await apply_baseline(store, gateway, portfolio, ts)
    account = await gateway.account()
    for inst in sorted(set(account.positions) | set(portfolio.account.positions)):
        ours = portfolio.position(inst)
        theirs = account.positions.get(inst, 0.0)
        if not agree(ours, theirs, quantity_tolerance(policy, portfolio, inst),
                     policy.quantity_rel_tolerance):
            report.position_diffs[inst] = (ours, theirs)
    if policy.currency is not None and policy.currency in account.cash:
        ours_cash, theirs_cash = portfolio.account.cash, account.cash[policy.currency]
        if not agree(ours_cash, theirs_cash, policy.cash_tolerance, policy.cash_rel_tolerance):
            report.cash_diffs[policy.currency] = (ours_cash, theirs_cash)

    store.snapshot_account(ts, gw, account.cash, account.positions)
    if not report.consistent:
        if policy.mode == "refuse":
            store.record_risk_event(ts, "reconcile_refused", report.text(), report.summary())
            log.error("reconciliation_refused", **report.summary())
            raise ReconciliationError(report)
        _adopt_account(portfolio, report, policy)
        report.adopted_broker_truth = True
        store.record_risk_event(ts, "reconcile_adopted", report.text(), report.summary())
        log.warning("reconciliation_adopted_broker_truth", **report.summary())
    else:
        log.info("reconciliation_consistent", gateway=gw, restored=len(report.restored_orders),
                 adopted_fills=len(report.adopted_fills))
    store.snapshot_account(ts, "portfolio", {policy.currency or "cash": portfolio.account.cash},
                           {i: p.quantity for i, p in portfolio.account.positions.items()
                            if p.quantity}, nav=portfolio.nav)
    store.flush()
    return report


async def _adopt_fills(store: Store, gateway: Gateway, router: Router, policy: ReconcilePolicy,
                       restored: list[Order], report: ReconciliationReport) -> None:
    starts = [o.request.ts for o in restored]
    last = store.last_fill_ts(gateway.name)
    if last is not None:
        starts.append(last)
    if not starts:
        return  # nothing stored yet: no fill of ours can have been missed
    since = min(starts) - policy.fills_lookback_ns
    known = {f.trade_id for f in store.fills(gateway=gateway.name, since=since)}
    journal = router.journal
    if journal is not None and getattr(journal, "default_gateway", None) == "":
        # A fill of an order nobody wrote is keyed by the gateway that reported it.
        journal.default_gateway = gateway.name  # type: ignore[attr-defined]
    for fill in sorted(await gateway.fills_since(since), key=lambda f: (f.ts, f.trade_id)):
        if fill.trade_id in known:
            continue
        if router.order(fill.client_order_id) is None and \
                store.order_row(fill.client_order_id) is None:
            # Someone else traded the account: stored only if the policy takes broker truth.
            report.unknown_order_fills.append(fill.trade_id)
            if policy.mode != "adopt":
                continue
        router.on_fill(fill)
        known.add(fill.trade_id)
        report.adopted_fills.append(fill.trade_id)


async def _settle_order(gateway: Gateway, router: Router, order: Order, ts: int,
                        report: ReconciliationReport) -> None:
    coid = order.client_order_id
    before = order.status
    rep = await gateway.order_status(coid)
    if _status_from_fills(order) is S.FILLED:
        # The stored fills cover the whole order: it is filled, whatever the venue says
        # now (a restarted paper venue knows nothing; a real one may report it cancelled
        # after the fill).  A crash between storing the fill and its status gets here.
        if rep is not None and rep.filled_quantity > order.filled_quantity + 1e-9:
            report.fill_gaps.append(coid)
        if order.status is not S.FILLED:
            router.on_update(OrderUpdate(ts, coid, S.FILLED, FILLED_BY_FILLS,
                                         rep.broker_order_id if rep is not None else ""))
    elif rep is None:
        if order.status in (S.PENDING_SUBMIT, S.SUBMITTED, S.OUTCOME_UNKNOWN):
            router.on_update(OrderUpdate(ts, coid, S.REJECTED, NEVER_SENT))
        else:
            router.on_update(OrderUpdate(ts, coid, S.CANCELED, VANISHED))
        report.vanished_orders.append(coid)
    else:
        gap = rep.filled_quantity > order.filled_quantity + 1e-9
        if gap:
            report.fill_gaps.append(coid)
        target = rep.status
        if not gap and target in (S.PARTIALLY_FILLED, S.FILLED):
            # Our stored fills are complete: the status is what they add up to (a crash may
            # have come between storing a fill and storing the status it implied).
            target = _status_from_fills(order)
        if target is not None and target != order.status and not order.status.is_terminal:
            router.on_update(OrderUpdate(ts, coid, target, "reconciled", rep.broker_order_id))
    if order.status != before:
        report.status_changes.append((coid, before.value, order.status.value))


def _status_from_fills(order: Order) -> OrderStatus | None:
    if order.filled_quantity >= order.request.quantity * (1 - 1e-9):
        return S.FILLED
    if order.filled_quantity > 0:
        return S.PARTIALLY_FILLED
    return None


def _adopt_broker_order(router: Router, rep: OrderReport, ts: int, gw: str) -> None:
    req = OrderRequest(ts, rep.client_order_id, rep.instrument_id, Side(rep.side), rep.quantity,
                       OrderType.LIMIT if rep.limit_price is not None else OrderType.MARKET,
                       rep.limit_price, None, False, gw)
    order = Order(req, S.PENDING_SUBMIT, rep.filled_quantity, 0.0, rep.broker_order_id,
                  "adopted from broker at reconciliation")
    if router.journal is not None:
        router.journal.order_created(order)
    router.adopt(order)
    router.on_update(OrderUpdate(ts, rep.client_order_id, rep.status, "adopted from broker",
                                 rep.broker_order_id))


def _adopt_account(portfolio: Portfolio, report: ReconciliationReport,
                   policy: ReconcilePolicy) -> None:
    cash = None
    for _ccy, (_ours, theirs) in report.cash_diffs.items():
        cash = theirs
    portfolio.adopt({inst: theirs for inst, (_ours, theirs) in report.position_diffs.items()},
                    cash)


def quantity_tolerance(policy: ReconcilePolicy, portfolio: Portfolio, inst: str) -> float:
    """The absolute tolerance of a position in ``inst``: the policy's, or part of a lot step."""
    instrument = portfolio.instruments.get(inst)
    step = instrument.lot_step if instrument is not None else 0.0
    return max(policy.quantity_tolerance, policy.lot_step_fraction * step)


def agree(a: float, b: float, abs_tol: float, rel_tol: float) -> bool:
    """Equal within max(``abs_tol``, ``rel_tol`` x the larger magnitude)."""
    return abs(a - b) <= max(abs_tol, rel_tol * max(abs(a), abs(b)))


def positions_equal(a: Mapping[str, float], b: Mapping[str, float], tol: float = 1e-9) -> bool:
    """Same non-zero positions within ``tol`` (for checks and tests)."""
    keys = set(a) | set(b)
    return all(abs(a.get(k, 0.0) - b.get(k, 0.0)) <= tol for k in keys)
