"""The decision pipeline: models -> allocator -> planner -> risk -> router."""

from __future__ import annotations

from collections.abc import Iterable

import structlog

from models.base import Model
from risk.engine import RiskAction, RiskEngine
from trader.core.clock import Clock
from trader.core.events import Bar
from trader.engine.allocator import Allocator
from trader.engine.planner import Planner, to_request
from trader.engine.router import Router

log = structlog.get_logger(__name__)


class ModelRunner:
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
    ) -> None:
        self.models = list(models)
        self.allocator = allocator
        self.planner = planner
        self.risk = risk
        self.router = router
        self.clock = clock
        self.gateway_of = gateway_of or {}
        self.subscribe(self.models)
        self.trading = True  # False while warming up or shutting down

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
        for models in self._subs.values():
            for i, m in enumerate(models):
                if m is old:
                    models[i] = new

    def subscriptions(self) -> list[tuple[str, int]]:
        return list(self._subs)

    def on_bar(self, bar: Bar) -> None:
        by_tf = self._by_instrument.get(bar.instrument_id)
        if by_tf is None:
            return
        models = by_tf.get(bar.timeframe)
        if models is None:
            return
        changed: set[str] | None = None  # built only on the rare bar where a view changes
        for model in models:
            weights = model.on_bar(bar)
            if weights:
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
            self.rebalance(sorted(changed), seen if seen > ts else ts)

    def rebalance(self, instrument_ids: list[str], ts: int | None = None) -> None:
        """Plan, check and route orders for the given instruments.

        ``ts`` is the time of the event that caused the decision (a bar's close):
        stamping orders with it rather than the wall clock is what makes a live
        session's orders identical to the replay of its journal.
        """
        if ts is None:
            ts = self.clock.now()
        for planned in self.planner.plan(instrument_ids):
            request = to_request(
                planned, self.router.next_client_order_id(), ts,
                self.gateway_of.get(planned.instrument_id, "sim"),
            )
            decision = self.risk.check(request)
            if decision.action is RiskAction.REJECT:
                continue
            if decision.action is RiskAction.SCALE:
                inst = self.planner.instruments[request.instrument_id]
                qty = inst.round_quantity(decision.quantity)
                if qty <= 0:
                    continue
                request = type(request)(
                    request.ts, request.client_order_id, request.instrument_id, request.side,
                    qty, request.order_type, request.limit_price, request.stop_price,
                    request.reduce_only, request.gateway,
                )
            self.router.submit(request)
