"""The risk engine: every order passes ``check`` before it may reach a gateway."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from trader.events import OrderRequest


class RiskAction(StrEnum):
    APPROVE = "approve"
    SCALE = "scale"
    REJECT = "reject"


@dataclass(frozen=True, slots=True)
class RiskDecision:
    action: RiskAction
    quantity: float = 0.0
    reason: str = ""
    detail: str = ""


class RiskEngine:
    """Placeholder engine: approves everything. The risk issue fills in the checks."""

    def __init__(self) -> None:
        self.enabled = True

    def check(self, order: OrderRequest) -> RiskDecision:
        return RiskDecision(RiskAction.APPROVE, order.quantity)
