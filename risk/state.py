"""Trading state: ACTIVE, REDUCING (only orders that shrink exposure) or HALTED.

The state machine keeps the time spent in each state so reports can show it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

from risk.events import TradingStateChanged
from risk.reasons import RiskReason


class TradingState(StrEnum):
    ACTIVE = "ACTIVE"
    REDUCING = "REDUCING"
    HALTED = "HALTED"


def state_breach(state: TradingState, reduces: bool, own_flatten: bool) -> RiskReason | None:
    """Why the trading state refuses an order, or None if it may pass.

    ``reduces``: the order shrinks the instrument's exposure; ``own_flatten``:
    the order is the risk engine's own flattening (the only thing HALTED lets out).
    """
    if state is TradingState.ACTIVE:
        return None
    if state is TradingState.REDUCING:
        return None if reduces or own_flatten else RiskReason.REDUCING
    return None if own_flatten and reduces else RiskReason.HALTED


class TradingStateMachine:
    """Holds the current state and tells listeners about each change, with its reason."""

    def __init__(self, state: TradingState = TradingState.ACTIVE, since: int | None = None) -> None:
        self.state = state
        self.reason = "start"
        self._since = since
        self.time_in: dict[TradingState, int] = {s: 0 for s in TradingState}
        self.listeners: list[Callable[[TradingStateChanged], None]] = []

    def start(self, ts: int) -> None:
        """Start the clock of time-in-state at the first event seen."""
        if self._since is None:
            self._since = ts

    def change(self, state: TradingState, ts: int, reason: str, detail: str = "") -> bool:
        """Move to ``state``; False (and no event) if already there."""
        if state is self.state:
            return False
        previous = self.state
        self._account(ts)
        self.state = state
        self.reason = reason
        event = TradingStateChanged(ts, previous.value, state.value, reason, detail)
        for listener in self.listeners:
            listener(event)
        return True

    def _account(self, ts: int) -> None:
        if self._since is not None and ts > self._since:
            self.time_in[self.state] += ts - self._since
        self._since = ts if self._since is None or ts > self._since else self._since

    def durations(self, now: int) -> dict[TradingState, int]:
        """Nanoseconds spent in each state up to ``now``."""
        out = dict(self.time_in)
        if self._since is not None and now > self._since:
            out[self.state] += now - self._since
        return out
