"""Turns each model's weights of its own budget into target quantities per instrument.

Targets are fixed in quantity when a model speaks and kept until it speaks
again, so NAV drift alone never causes trading.
"""

from __future__ import annotations

from collections.abc import Mapping

from trader.core.events import Fill
from trader.engine.portfolio import Portfolio


class Allocator:
    def __init__(self, portfolio: Portfolio, budgets: Mapping[str, float]) -> None:
        total = sum(budgets.values())
        if total > 1 + 1e-9:
            raise ValueError(f"model budgets sum to {total:.4f}, which exceeds 1")
        self.portfolio = portfolio
        self.budgets = dict(budgets)
        self.scale = 1.0  # set by drawdown control
        self.weights: dict[str, dict[str, float]] = {m: {} for m in budgets}
        self.targets: dict[str, dict[str, float]] = {m: {} for m in budgets}

    def set_weights(self, model: str, weights: Mapping[str, float]) -> list[str]:
        """Record a model's new weights; return the instruments whose target changed."""
        current = self.weights[model]
        changed = []
        for inst, w in weights.items():
            if current.get(inst) != w or inst not in self.targets[model]:
                current[inst] = w
                self.targets[model][inst] = self._size(model, inst, w)
                changed.append(inst)
        return changed

    def _size(self, model: str, inst: str, weight: float) -> float:
        pf = self.portfolio
        price = pf.marks.get(inst)
        if not price or weight == 0:
            return 0.0
        mult = pf.instruments[inst].multiplier
        return weight * self.budgets[model] * self.scale * pf.nav / (price * mult)

    def rescale(self, scale: float) -> list[str]:
        """Apply a new budget scale (drawdown de-risking) to every standing target."""
        self.scale = scale
        changed: set[str] = set()
        for model, weights in self.weights.items():
            for inst, w in weights.items():
                self.targets[model][inst] = self._size(model, inst, w)
                changed.add(inst)
        return sorted(changed)

    def net_target(self, inst: str) -> float:
        total = 0.0
        for targets in self.targets.values():
            total += targets.get(inst, 0.0)
        return total

    def attribute(self, fill: Fill) -> dict[str, float]:
        """Split a fill across the models still short of their targets, pro rata."""
        signed = fill.quantity * fill.side.sign
        inst = fill.instrument_id
        pf = self.portfolio
        gaps = {}
        for model, targets in self.targets.items():
            if inst in targets:
                gap = targets[inst] - pf.model_book(model).quantity(inst)
                if gap and (gap > 0) == (signed > 0):
                    gaps[model] = gap
        total = sum(gaps.values())
        if not gaps:
            return {}
        share = min(1.0, signed / total)
        return {m: g * share for m, g in gaps.items()}
