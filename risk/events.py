"""Events the risk engine publishes on the bus: every non-approval and every change of state.

They derive from the kernel's ``Event`` (msgspec, frozen, tagged, ``ts`` in UTC
nanoseconds) so a session journal can encode them like any other event.
"""

from __future__ import annotations

from trader.core.events import Event


class OrderRiskEvent(Event, frozen=True, tag="risk_order"):
    """An order the risk engine scaled down or rejected, and why."""

    client_order_id: str
    instrument_id: str
    side: str
    quantity: float
    action: str  # "scale" | "reject"
    allowed_quantity: float
    reason: str
    detail: str = ""


class TradingStateChanged(Event, frozen=True, tag="risk_state"):
    """The trading state moved (ACTIVE / REDUCING / HALTED)."""

    previous: str
    state: str
    reason: str
    detail: str = ""


class DrawdownEvent(Event, frozen=True, tag="risk_drawdown"):
    """Drawdown control acted: ``level`` is "derisk" (budgets scaled) or "halt"."""

    level: str
    drawdown: float
    nav: float
    peak: float
    budget_scale: float


class KillSwitchChanged(Event, frozen=True, tag="risk_kill_switch"):
    """The kill switch was engaged or released."""

    engaged: bool
    reason: str
    who: str = ""





class RiskDirective(Event, frozen=True, tag="risk_directive"):
    """What the decision pipeline must do after a risk decision; risk itself sends nothing.

    ``budget_scale``: rescale every model's budget to this and re-plan (None: keep);
    ``cancel_open``: cancel the working orders; ``flatten``: close every position with
    reduce-only market orders, once, until flat; ``stop_flatten``: stop doing so.
    """

    kind: str  # "derisk" | "restore" | "halt" | "kill_switch" | "release" | "restored"
    budget_scale: float | None = None
    cancel_open: bool = False
    flatten: bool = False
    stop_flatten: bool = False
    reason: str = ""
