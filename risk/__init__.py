"""Pre-trade risk: checks, trading state, drawdown control and the kill switch.

The engine's names are exported lazily: ``risk.config`` (read by every config load,
``trader status`` included) must not import the engine, structlog and the checks.
"""

from __future__ import annotations

from typing import Any

__all__ = ["RiskAction", "RiskDecision", "RiskEngine"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from risk import engine

        return getattr(engine, name)
    raise AttributeError(f"module 'risk' has no attribute {name!r}")
