"""The decision pipeline: models -> allocator -> planner -> risk -> router.

Every order of the session comes from here: the models' rebalances, the
re-plan after a de-risk, and the flattening after a halt or kill switch.  Risk
only decides (``RiskDirective`` on the bus); this plans and sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

import structlog

from models.base import Model
from models.gates import Gates
from models.intents import Intent
from risk.engine import RiskAction, RiskEngine
from risk.events import RiskDirective
from trader.core.clock import Clock
from trader.core.events import Bar, DataEnded, Fill, OrderRequest, OrderType, Side
from trader.engine.allocator import Allocator
from trader.engine.exits import Bracket, ExitEmulator, limit_price
from trader.engine.planner import Planner, to_request
from trader.engine.router import Router

log = structlog.get_logger(__name__)

# A flatten order that keeps being rejected or cancelled is re-sent at most this often.
MAX_FLATTEN_ATTEMPTS = 5


class Pipeline:
    """Feeds subscribed bars to models and turns their new weights into orders."""

    def __init__(
        self,
        models: Iterable[Model],
        allocator: Allocator,
        planner: Planner,
        risk: RiskEngine,
        router: Router,
        clock: Clock,
        *,
        gateway_of: dict[str, str] | None = None,
        trading: bool = True,
        exits: ExitEmulator | None = None,
        gates: dict[str, Gates] | None = None,
    ) -> None:
        self.models = list(models)
        self.allocator = allocator
        self.planner = planner
        self.risk = risk
        self.router = router
        self.clock = clock
        self.gateway_of = gateway_of or {}
        self.subscribe(self.models)
        self.trading = trading  # False while warming up or shutting down
        self.flattening = False
        self._flatten_ids: set[str] = set()
        self._flatten_attempts: Counter[str] = Counter()
        self._ended: set[str] = set()  # instruments whose data ended (closed, never traded)
        # Order intents: emulated exits, cooldown and limit entries of models with a policy.
        self.exits = exits
        self._emulated = frozenset(exits.policies) if exits is not None else frozenset()
        self.gates = gates or {}
        # client order id -> why it was sent; orders of a model's own signal are not kept
        # ("signal" is the default), so this stays as small as the exceptions.
        self.reasons: dict[str, str] = {}

    def subscribe(self, active: Iterable[Model]) -> None:
        """Route bars to ``active`` models only (a paused model keeps its targets)."""
        subs: dict[tuple[str, int], list[Model]] = {}
        for m in active:
            for key in m.subscriptions():
                subs.setdefault(key, []).append(m)
        self._subs = subs
        # instrument -> timeframe -> models: two dict lookups, no key tuple per bar.
        self._by_instrument: dict[str, dict[int, list[Model]]] = {}
        for (inst, tf), models in subs.items():
            self._by_instrument.setdefault(inst, {})[tf] = models

    def replace_model(self, old: Model, new: Model) -> None:
        """Swap a model for a fresh one (a reload with new parameters)."""
        self.models[self.models.index(old)] = new
        gate = self.gates.get(new.name)
        if gate is not None:
            gate.model = new  # its score comes from the model that now runs
        for models in self._subs.values():
            for i, m in enumerate(models):
                if m is old:
                    models[i] = new

    def subscriptions(self) -> list[tuple[str, int]]:
        return list(self._subs)

    def on_bar(self, bar: Bar) -> None:
        if self.flattening:
            self._flatten(bar.ts)
        by_tf = self._by_instrument.get(bar.instrument_id)
        if by_tf is None:
            return
        models = by_tf.get(bar.timeframe)
        if models is None:
            return
        changed: set[str] | None = None  # built only on the rare bar where a view changes
        why: dict[str, str] | None = None
        limits: dict[str, tuple[str, float]] | None = None
        emulated = self._emulated
        for model in models:
            if emulated and model.name in emulated:
                reason = self._emulate(model.name, bar)
                if reason is not None:
                    changed = changed or set()
                    changed.add(bar.instrument_id)
                    why = why or {}
                    why[bar.instrument_id] = reason
            weights = model.on_bar(bar)
            if weights and self._ended:
                weights = {k: w for k, w in weights.items() if k not in self._ended}
            if self.gates:
                gate = self.gates.get(model.name)
                if gate is not None:
                    weights = gate.on_bar(bar, weights)
            if weights:
                if emulated and model.name in emulated:
                    limits = limits or {}
                    weights = self._intents(model.name, weights, limits)
                elif any(isinstance(w, Intent) for w in weights.values()):
                    weights = {i: w.weight if isinstance(w, Intent) else w
                               for i, w in weights.items()}
                moved = self.allocator.set_weights(model.name, weights)
                if moved:
                    if changed is None:
                        changed = set(moved)
                    else:
                        changed.update(moved)
        # During warm-up models form their view but nothing is traded.
        if changed and self.trading:
            # A higher-timeframe bar whose window lacked its last base bars is
            # published when a later base bar proves it closed; that later bar's
            # close already marks the portfolio the orders are sized from, so the
            # decision is stamped with it, never earlier than the data it used.
            ts = bar.ts
            seen = self.planner.portfolio.last_bar_ts.get(bar.instrument_id, ts)
            self.rebalance(sorted(changed), seen if seen > ts else ts, why, limits)

    def _emulate(self, model: str, bar: Bar) -> str | None:
        """The emulated-order rules on a model's closed bar: expire its limit entries, and
        turn a triggered exit into a flat target; the exit's reason, if one fired."""
        exits = self.exits
        assert exits is not None
        inst = bar.instrument_id
        for coid in exits.expired(model, inst):
            if coid in self.router.active:
                self.router.cancel(coid)
                self.allocator.hold(model, inst,
                                    self.planner.portfolio.model_book(model).quantity(inst))
        reason = exits.on_bar(model, bar)
        if reason is not None:
            self.allocator.set_weights(model, {inst: 0.0})
        if exits.to_cancel:
            for coid in exits.to_cancel:
                if coid in self.router.active:
                    self.router.cancel(coid)
            exits.to_cancel.clear()
        if exits.to_arm:
            for bracket in exits.to_arm:
                self._send_bracket(bracket, bar.ts)
            exits.to_arm.clear()
        return reason

    def _send_bracket(self, b: Bracket, ts: int) -> None:
        """A position's native children: a reduce-only STOP and/or LIMIT (take-profit)."""
        exits = self.exits
        assert exits is not None
        inst = self.planner.instruments[b.instrument_id]
        side = Side.SELL if b.side > 0 else Side.BUY
        gateway = self._gateway_for(b.instrument_id)
        for kind, price, reason in ((OrderType.STOP, b.stop, "stop"),
                                    (OrderType.LIMIT, b.target, "target")):
            if price is None:
                continue
            price = round(round(price / inst.tick_size) * inst.tick_size, 12)  # on the grid
            coid = self.router.next_client_order_id()
            request = OrderRequest(ts, coid, b.instrument_id, side, b.quantity, kind,
                                   price if kind is OrderType.LIMIT else None,
                                   price if kind is OrderType.STOP else None, True, gateway)
            if self._send(request, reason):
                exits.child_sent(coid, b.model, b.instrument_id)

    def on_fill(self, fill: Fill) -> None:
        """Before the portfolio books it: a native child's fill moves its model's target
        with it (so the fill is the model's), and cancels the child's siblings (OCO)."""
        exits = self.exits
        if exits is None or not exits.child_of:
            return
        owner = exits.child_of.get(fill.client_order_id)
        if owner is None:
            return
        model, inst = owner
        held = self.planner.portfolio.model_book(model).quantity(inst)
        self.allocator.hold(model, inst, held + fill.quantity * fill.side.sign)
        for coid in exits.siblings(fill.client_order_id):
            if coid in self.router.active:
                self.router.cancel(coid)

    def _intents(self, model: str, weights: dict, limits: dict[str, tuple[str, float]]
                 ) -> dict[str, float]:
        """Weights of a model with an order policy: cooldown, levels and limit entries."""
        exits = self.exits
        assert exits is not None
        policy = exits.policies[model]
        book = self.planner.portfolio.model_book(model)
        out: dict[str, float] = {}
        for inst, w in weights.items():
            intent = w if isinstance(w, Intent) else None
            weight = intent.weight if intent is not None else w
            entry = weight != 0 and abs(book.quantity(inst)) < 1e-12
            if entry and not exits.allows_entry(model, inst):
                continue  # cooling down after an exit
            if weight != 0 and exits.exiting(model, inst):
                continue  # an emulated exit is on its way: the signal does not undo it
            if intent is not None:
                exits.remember_levels(model, inst, intent)
            if entry and policy.entry.type == "limit":
                mark = self.planner.portfolio.marks.get(inst)
                price = intent.limit_price if intent and intent.limit_price else (
                    limit_price(1 if weight > 0 else -1, mark, policy.entry.limit_offset_bps,
                                self.planner.instruments[inst].tick_size) if mark else None)
                if price is not None:
                    limits[inst] = (model, price)
            out[inst] = weight
        return out

    def start_trading(self, *, trade_standing_targets: bool = True) -> None:
        """READY: trade from now on, and (by default) trade the targets formed in warm-up.

        Without the second step a model that turned long during warm-up would stay
        unexecuted until its next signal.  Targets are sized again at the prices
        of READY; an instrument is traded only where the book's side disagrees
        with the target's (long, short or flat), so a restart never trades mere
        drift.  The decision is stamped with the last bar seen, so the replay of
        a journal makes the same one.
        """
        self.trading = True
        last_bar = self.planner.portfolio.last_bar_ts
        if not trade_standing_targets or not last_bar:
            return
        pf = self.planner.portfolio
        todo = [
            inst for inst in self.allocator.rescale(self.allocator.scale)
            if _side(self.allocator.net_target(inst))
            != _side(pf.position(inst) + self.router.open_quantity(inst))
        ]
        if todo:
            self.rebalance(todo, max(last_bar.values()))

    def rebalance(self, instrument_ids: list[str], ts: int | None = None,
                  reasons: dict[str, str] | None = None,
                  limits: dict[str, tuple[str, float]] | None = None) -> None:
        """Plan, check and route orders for the given instruments.

        ``ts`` is the time of the event that caused the decision (a bar's close):
        stamping orders with it rather than the wall clock is what makes a live
        session's orders identical to the replay of its journal.  ``reasons``: why an
        instrument trades when it is not a model's signal (stop, target, risk, ...);
        ``limits``: entries a model's policy sends as limit orders (model, price).
        """
        if ts is None:
            ts = self.clock.now()
        for planned in self.planner.plan(instrument_ids):
            limit = limits.get(planned.instrument_id) if limits else None
            if limit is not None and planned.reduce_only:
                limit = None  # only entries wait at a limit; reductions go at market
            request = to_request(
                planned, self.router.next_client_order_id(), ts,
                self.gateway_of.get(planned.instrument_id, "sim"),
                limit[1] if limit is not None else None,
            )
            if limit is not None:
                assert self.exits is not None
                self.exits.entry_sent(request.client_order_id, limit[0], planned.instrument_id)
            self._send(request, reasons.get(request.instrument_id) if reasons else None)

    def _send(self, request: OrderRequest, reason: str | None = None) -> bool:
        """Risk-check an order (scaled down if risk says so) and route it; True if sent."""
        decision = self.risk.check(request)
        if decision.action is RiskAction.REJECT:
            return False
        if decision.action is RiskAction.SCALE:
            inst = self.planner.instruments[request.instrument_id]
            qty = inst.round_quantity(decision.quantity)
            if qty <= 0:
                return False
            request = type(request)(
                request.ts, request.client_order_id, request.instrument_id, request.side,
                qty, request.order_type, request.limit_price, request.stop_price,
                request.reduce_only, request.gateway,
            )
        if reason is not None:
            self.reasons[request.client_order_id] = reason
        self.router.submit(request)
        return True

    def on_data_end(self, event: DataEnded) -> None:
        """An instrument's data ended before the replay: no model trades it again, and its
        position is closed (a zero target, planned and checked like any order)."""
        inst = event.instrument_id
        self._ended.add(inst)
        for model in self.allocator.weights:
            if inst in self.allocator.weights[model]:
                self.allocator.set_weights(model, {inst: 0.0})
        if self.trading:
            self.rebalance([inst], event.ts)

    # -- risk directives -------------------------------------------------------------
    def on_directive(self, d: RiskDirective) -> None:
        """Carry out a risk decision: re-plan at a new budget scale, cancel, flatten."""
        if d.budget_scale is not None:
            changed = self.allocator.rescale(d.budget_scale)
            if changed and self.trading and not d.flatten:
                self.rebalance(changed, d.ts, dict.fromkeys(changed, "risk"))
        if d.cancel_open:
            self._cancel_all_but_flatten()
        if d.flatten:
            if not self.flattening:
                self.flattening = True
                self._flatten_attempts.clear()
            self._flatten(d.ts)
        if d.stop_flatten:
            self.flattening = False

    def _cancel_all_but_flatten(self) -> None:
        for coid in [c for c in self.router.active if c not in self._flatten_ids]:
            self.router.cancel(coid)

    def _flatten(self, ts: int) -> None:
        """Send reduce-only market orders closing what no working flatten order closes.

        An instrument with a flatten order still working gets no second one: the
        same reduce-only order is never sent twice.
        """
        router = self.router
        working: dict[str, float] = {}
        for coid in list(self._flatten_ids):
            o = router.active.get(coid)
            if o is None:
                self._flatten_ids.discard(coid)  # done: filled, cancelled or rejected
                continue
            iid = o.request.instrument_id
            working[iid] = working.get(iid, 0.0) + o.signed_remaining()
        instruments = self.planner.instruments
        for iid, p in list(self.planner.portfolio.account.positions.items()):
            q = p.quantity
            inst = instruments.get(iid)
            if not q or inst is None:
                continue
            need = inst.round_quantity(-(q + working.get(iid, 0.0)))
            if not need or self._flatten_attempts[iid] >= MAX_FLATTEN_ATTEMPTS:
                continue
            self._flatten_attempts[iid] += 1
            request = OrderRequest(ts, router.next_client_order_id(), iid,
                                   Side.BUY if need > 0 else Side.SELL, abs(need),
                                   OrderType.MARKET, None, None, True, self._gateway_for(iid))
            if self.risk.check(request, flatten=True).action is RiskAction.APPROVE:
                self._flatten_ids.add(request.client_order_id)
                self.reasons[request.client_order_id] = "halt"
                router.submit(request)

    def _gateway_for(self, inst_id: str) -> str:
        gw = self.gateway_of.get(inst_id)
        if gw is not None:
            return gw
        gateways = self.router.gateways
        return "sim" if "sim" in gateways or not gateways else next(iter(gateways))


def _side(quantity: float) -> int:
    """-1, 0 or 1: short, flat or long (dust below 1e-12 is flat)."""
    return 0 if abs(quantity) < 1e-12 else (1 if quantity > 0 else -1)
