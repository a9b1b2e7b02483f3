"""Pre-trade risk: checks, trading state, drawdown control and the kill switch."""

from risk.engine import RiskAction, RiskDecision, RiskEngine

__all__ = ["RiskAction", "RiskDecision", "RiskEngine"]
