"""Turns each model's weights of its own budget into target quantities per instrument.

Targets are fixed in quantity when a model speaks and kept until it speaks
again, so NAV drift alone never causes trading.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from models.intents import Sizing
from trader.core.events import Fill
from trader.engine.portfolio import Portfolio


class Allocator:
    """Weights of each model's budget -> target quantities; sizing per model's policy.

    ``sizing``: what a weight of 1.0 means for a model (default: its whole budget);
    ``min_trade_value``: a model's change of target worth less than this is ignored.
    """

    def __init__(self, portfolio: Portfolio, budgets: Mapping[str, float], *,
                 sizing: Mapping[str, Sizing] | None = None,
                 min_trade_value: Mapping[str, float] | None = None) -> None:
        total = sum(budgets.values())
        if total > 1 + 1e-9:
            raise ValueError(f"model budgets sum to {total:.4f}, which exceeds 1")
        self.portfolio = portfolio
        self.budgets = dict(budgets)
        self.scale = 1.0  # set by drawdown control
        # Regime budgets (trader.engine.regime): model -> budget multiplier; absent = 1.
        self.multipliers: dict[str, float] = {}
        # Per-model multipliers of the portfolio overlays (trader.engine.overlays); absent = 1.
        self.overlay: dict[str, float] = {}
        self.weights: dict[str, dict[str, float]] = {m: {} for m in budgets}
        self.targets: dict[str, dict[str, float]] = {m: {} for m in budgets}
        self.sizing = {m: z for m, z in (sizing or {}).items() if z.by != "weight"}
        self.min_trade_value = {m: v for m, v in (min_trade_value or {}).items() if v > 0}

    def set_weights(self, model: str, weights: Mapping[str, float]) -> list[str]:
        """Record a model's new weights; return the instruments whose target changed."""
        current = self.weights[model]
        changed = []
        floor = self.min_trade_value.get(model) if self.min_trade_value else None
        for inst, w in weights.items():
            if current.get(inst) != w or inst not in self.targets[model]:
                target = self._size(model, inst, w)
                if floor is not None and self._too_small(model, inst, target, floor):
                    continue
                current[inst] = w
                self.targets[model][inst] = target
                changed.append(inst)
        return changed

    def _too_small(self, model: str, inst: str, target: float, floor: float) -> bool:
        pf = self.portfolio
        move = abs(target - pf.model_book(model).quantity(inst))
        return move * pf.marks.get(inst, 0.0) * pf.instruments[inst].multiplier < floor

    def hold(self, model: str, inst: str, quantity: float) -> None:
        """Make a model's target what it holds (an expired entry); its next weight re-applies."""
        self.weights[model][inst] = math.nan  # unequal to any weight the model may send
        self.targets[model][inst] = quantity

    def _size(self, model: str, inst: str, weight: float) -> float:
        pf = self.portfolio
        price = pf.marks.get(inst)
        if not price or weight == 0:
            return 0.0
        mult = pf.instruments[inst].multiplier
        scale = self.scale
        if self.multipliers:
            scale *= self.multipliers.get(model, 1.0)
        if self.overlay:
            scale *= self.overlay.get(model, 1.0)
        sizing = self.sizing.get(model) if self.sizing else None
        if sizing is None:
            return weight * self.budgets[model] * scale * pf.nav / (price * mult)
        # Sizing's validator guarantees the amount named by ``by`` is set.
        if sizing.by == "quantity":
            assert sizing.quantity is not None
            return weight * sizing.quantity * scale
        assert sizing.notional is not None
        return weight * sizing.notional * scale / (price * mult)

    def rescale(self, scale: float) -> list[str]:
        """Apply a new budget scale (drawdown de-risking) to every standing target."""
        self.scale = scale
        changed: set[str] = set()
        for model, weights in self.weights.items():
            for inst, w in weights.items():
                if w != w:  # a held quantity (NaN weight) is not re-sized
                    continue
                self.targets[model][inst] = self._size(model, inst, w)
                changed.add(inst)
        return sorted(changed)

    def set_multipliers(self, multipliers: Mapping[str, float]) -> list[str]:
        """Apply regime budget multipliers; re-size the standing targets of the models whose
        multiplier changed (no other model's target moves), return their instruments."""
        new = {m: v for m, v in multipliers.items() if v != 1.0 and m in self.budgets}
        old, self.multipliers = self.multipliers, new
        return self._resize([m for m in self.weights if old.get(m, 1.0) != new.get(m, 1.0)])

    def set_overlay(self, multipliers: Mapping[str, float], band: float = 0.0) -> list[str]:
        """Apply new overlay multipliers to the given models' standing targets.

        ``band`` (a fraction of the model's budget × NAV): a re-sized target that moves
        the model's position by less than this keeps its old quantity, so small changes
        of scale cause no trading.  A multiplier of 0 (a halted model) always applies.
        Returns the instruments whose target changed.
        """
        self.overlay.update(multipliers)
        return self._resize(list(multipliers), band)

    def _resize(self, models: list[str], band: float = 0.0) -> list[str]:
        """Size the standing targets of ``models`` again; the instruments whose target moved."""
        changed: set[str] = set()
        pf = self.portfolio
        for model in models:
            halted = self.overlay.get(model, 1.0) == 0
            floor = band * self.budgets[model] * pf.nav if band and not halted else 0.0
            targets = self.targets[model]
            for inst, w in self.weights[model].items():
                if w != w:  # a held quantity (NaN weight) is not re-sized
                    continue
                target = self._size(model, inst, w)
                if floor and self._too_small(model, inst, target, floor):
                    continue
                if target != targets.get(inst):
                    targets[inst] = target
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
