"""The regime engine: classifiers on closed bars, ``RegimeChanged`` on the bus, regime budgets.

Rules (README "Regimes and regime budgets"):

* **When budgets switch.**  A state that changes on the bar closing at *t*
  is published at once (``RegimeChanged``, ``ts`` = *t*) but reaches the
  budgets only at the first bar closing *after* *t*: before any model decides
  on that bar, every model's multiplier is recomputed, the standing targets of
  the models whose multiplier moved are re-sized at the marks of that moment,
  and their instruments are rebalanced with that bar's close as the decision
  time (the orders fill at the next bar's open, like any decision).  So no
  decision is ever taken with budgets half-switched by bars of the same
  timestamp, and a journal replay switches at the same record.
* **How multipliers combine.**  A model's multiplier is the product, over the
  regimes that have a state with an entry in ``regime_budgets``, of its own
  entry there, else the entry of its instruments' asset class (a model across
  several classes takes the smallest of their entries), else 1.
* **Caps.**  A multiplier below 1 always applies.  Multipliers above 1 (boosts)
  are shrunk towards 1 by one common factor, the largest that keeps the sum of
  effective budgets (budget x multiplier) within ``min(1, risk.gross_leverage)``
  and, for each capped asset class of ``risk.asset_class_exposure``, the budgets
  of the models trading that class within its cap.  Risk still checks every order.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import structlog

from models.regimes import RegimeClassifier
from trader.core.events import Bar, RegimeChanged, ns_to_iso
from trader.engine.allocator import Allocator

log = structlog.get_logger(__name__)

REASON = "regime"  # why the orders of a budget switch are sent (trades.csv ``reason``)


class RegimeBudgets:
    """``regime_budgets`` turned into per-model budget multipliers, boosts clipped to the caps.

    ``rules``: regime -> state -> model or asset class -> multiplier; ``classes``: the
    asset classes each model trades; ``class_caps``: asset class -> cap (fraction of NAV).
    """

    def __init__(self, rules: Mapping[str, Mapping[str, Mapping[str, float]]],
                 budgets: Mapping[str, float], classes: Mapping[str, frozenset[str]],
                 total_cap: float = 1.0, class_caps: Mapping[str, float] | None = None) -> None:
        self.rules = {r: {s: dict(t) for s, t in by.items()} for r, by in rules.items()}
        self.budgets = dict(sorted(budgets.items()))
        self.classes = dict(classes)
        self.total_cap = total_cap
        self.class_caps = dict(sorted((class_caps or {}).items()))

    def raw(self, states: Mapping[str, str | None]) -> dict[str, float]:
        """Each model's multiplier from the current states, before the caps."""
        out = {}
        for model in self.budgets:
            mult = 1.0
            for regime, by_state in self.rules.items():
                state = states.get(regime)
                targets = by_state.get(state) if state is not None else None
                if not targets:
                    continue
                if model in targets:
                    mult *= targets[model]
                else:
                    classes = sorted(self.classes.get(model, ()))
                    found = [targets[c] for c in classes if c in targets]
                    if found:
                        mult *= min(found)
            out[model] = mult
        return out

    def multipliers(self, states: Mapping[str, str | None]) -> dict[str, float]:
        """Each model's multiplier from the current states, boosts clipped to the caps."""
        raw = self.raw(states)
        boosted = [m for m, x in raw.items() if x > 1.0]
        if not boosted:
            return raw
        limits: list[tuple[list[str], float]] = [(list(self.budgets), self.total_cap)]
        for cls, cap in self.class_caps.items():
            members = [m for m in self.budgets if cls in self.classes.get(m, ())]
            limits.append((members, cap))
        k = 1.0
        for members, limit in limits:
            fixed = sum(self.budgets[m] * min(raw[m], 1.0) for m in members)
            extra = sum(self.budgets[m] * (raw[m] - 1.0) for m in members if raw[m] > 1.0)
            if extra > 0:
                k = min(k, max(0.0, (limit - fixed) / extra))
        return {m: 1.0 + k * (x - 1.0) if x > 1.0 else x for m, x in raw.items()}


class RegimeEngine:
    """Routes closed bars to the classifiers, publishes ``RegimeChanged``, applies budgets.

    Subscribed to ``Bar`` only when a config has regimes, after the portfolio has
    marked the bar and before the pipeline lets models decide on it.
    ``rebalance(instruments, ts, reasons)`` and ``trading()`` are the pipeline's.
    """

    def __init__(self, classifiers: list[RegimeClassifier], publish: Callable[[Any], None],
                 allocator: Allocator, budgets: RegimeBudgets | None,
                 rebalance: Callable[[list[str], int, dict[str, str]], None],
                 trading: Callable[[], bool], last_bar_ts: Mapping[str, int]) -> None:
        self.classifiers = classifiers
        self.publish = publish
        self.allocator = allocator
        self.budgets = budgets
        self.rebalance = rebalance
        self.trading = trading
        self.last_bar_ts = last_bar_ts
        self.states: dict[str, str | None] = {c.name: None for c in classifiers}
        self.declared = {c.name: frozenset(c.states()) for c in classifiers}
        self.history: list[RegimeChanged] = []
        # (decision ts, multipliers) each time budgets were switched, for reports and tests
        self.switches: list[tuple[int, dict[str, float]]] = []
        self._routes: dict[tuple[str, int], list[RegimeClassifier]] = {}
        for c in classifiers:
            for key in c.subscriptions():
                self._routes.setdefault(key, []).append(c)
        self._pending: int | None = None  # ts of the bar whose regime change awaits its budgets
        self._reported: set[tuple[str, str]] = set()  # undeclared states already logged

    def subscriptions(self) -> list[tuple[str, int]]:
        """Every (instrument, timeframe) a classifier reads."""
        return list(self._routes)

    def on_bar(self, bar: Bar) -> None:
        """Apply budgets of a change on an earlier bar, then classify this bar."""
        pending = self._pending
        if pending is not None and bar.ts > pending:
            self._apply(bar)
        classifiers = self._routes.get((bar.instrument_id, bar.timeframe))
        if classifiers is None:
            return
        for clf in classifiers:
            state = clf.on_bar(bar)
            previous = self.states[clf.name]
            if state is None or state == previous:
                continue
            if state not in self.declared[clf.name]:
                # A user classifier's bug: no budget rule can name that state, so it is
                # not taken (the regime keeps its state), in replay and live alike.
                self._undeclared(clf, state, bar.ts)
                continue
            self.states[clf.name] = state
            event = RegimeChanged(bar.ts, clf.name, state, previous or "")
            self.history.append(event)
            self._pending = bar.ts
            self.publish(event)

    def _undeclared(self, clf: RegimeClassifier, state: str, ts: int) -> None:
        key = (clf.name, state)
        if key in self._reported:
            return
        self._reported.add(key)
        log.error("regime_state_undeclared", regime=clf.name, classifier=type(clf).__name__,
                  state=state, declared=sorted(self.declared[clf.name]), bar=ns_to_iso(ts),
                  action="ignored: the regime keeps its state")

    def _apply(self, bar: Bar) -> None:
        self._pending = None
        if self.budgets is None:
            return
        mult = self.budgets.multipliers(self.states)
        # Stamped like the pipeline's decisions: never before the data the sizes used.
        ts = max(bar.ts, self.last_bar_ts.get(bar.instrument_id, bar.ts))
        self.switches.append((ts, mult))
        changed = self.allocator.set_multipliers(mult)
        if changed and self.trading():
            self.rebalance(changed, ts, dict.fromkeys(changed, REASON))
