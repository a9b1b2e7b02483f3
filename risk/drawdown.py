"""Drawdown control: de-risk at the trigger, halt at the halt level, optionally restore.

The monitor keeps its own peak of NAV (normally the portfolio's high-water
mark) so that resuming after a halt can start again from the current NAV
without rewriting the portfolio's own statistics.
"""

from __future__ import annotations

from enum import StrEnum

_EPS = 1e-12  # 1 - 88/110 is 0.19999999999999996: a level reached exactly counts


class DrawdownAction(StrEnum):
    DERISK = "derisk"
    HALT = "halt"
    RESTORE = "restore"


def drawdown(nav: float, peak: float) -> float:
    """Fractional fall of ``nav`` below ``peak`` (0 at or above the peak)."""
    if peak <= 0 or nav >= peak:
        return 0.0
    return 1.0 - nav / peak


def drawdown_action(
    dd: float, trigger: float, halt: float, derisked: bool, halted: bool,
    restore_at: float | None = None,
) -> DrawdownAction | None:
    """What drawdown control must do now; each level acts once, the first time it is reached.

    With ``restore_at`` set, a de-risked book gets its budgets back once the
    drawdown has recovered to that level, and the trigger is armed again.
    """
    if halted:
        return None
    if dd >= halt - _EPS:
        return DrawdownAction.HALT
    if not derisked:
        return DrawdownAction.DERISK if dd >= trigger - _EPS else None
    if restore_at is not None and dd <= restore_at + _EPS:
        return DrawdownAction.RESTORE
    return None


class DrawdownMonitor:
    """Tracks the NAV peak and says when a level is reached.

    ``floor`` and ``ceiling`` are the NAVs beyond which ``update`` has something
    to say; the engine compares against them on every bar and calls ``update``
    only then.
    """

    __slots__ = ("trigger", "halt", "restore_at", "peak", "derisked", "halted", "last", "floor",
                 "ceiling")

    def __init__(self, trigger: float, halt: float, peak: float,
                 restore_at: float | None = None) -> None:
        self.trigger = trigger
        self.halt = halt
        self.restore_at = restore_at
        self.peak = peak
        self.derisked = False
        self.halted = False
        self.last = 0.0
        self.floor = 0.0
        self.ceiling = float("inf")
        self.refresh_floor()

    def refresh_floor(self) -> None:
        """Recompute ``floor`` and ``ceiling`` after the peak or the state changed."""
        inf = float("inf")
        if self.halted:
            self.floor, self.ceiling = -inf, inf
            return
        level = self.halt if self.derisked else self.trigger
        self.floor = self.peak * (1.0 - level + _EPS)
        if self.derisked and self.restore_at is not None:
            self.ceiling = self.peak * (1.0 - self.restore_at - _EPS)
        else:
            self.ceiling = inf

    def update(self, nav: float) -> DrawdownAction | None:
        if nav > self.peak:
            self.observe(nav)
        dd = self.last = drawdown(nav, self.peak)
        action = drawdown_action(dd, self.trigger, self.halt, self.derisked, self.halted,
                                 self.restore_at)
        if action is DrawdownAction.HALT:
            self.halted = True
        elif action is DrawdownAction.DERISK:
            self.derisked = True
        elif action is DrawdownAction.RESTORE:
            self.derisked = False
        if action is not None:
            self.refresh_floor()
        return action

    def rebase(self, nav: float) -> None:
        """Start measuring from ``nav`` again (after an explicit resume)."""
        self.peak = nav
        self.halted = False
        self.last = 0.0
        self.refresh_floor()

    def observe(self, nav: float) -> None:
        """Raise the peak without acting (NAV seen at a fill, between bars)."""
        if nav > self.peak:
            self.peak = nav
            self.refresh_floor()
