"""Drawdown control: de-risk at the trigger, halt at the halt level.

The monitor keeps its own peak of NAV (normally the portfolio's high-water
mark) so that resuming after a halt can start again from the current NAV
without rewriting the portfolio's own statistics.
"""

from __future__ import annotations

from enum import StrEnum


class DrawdownAction(StrEnum):
    DERISK = "derisk"
    HALT = "halt"


def drawdown(nav: float, peak: float) -> float:
    """Fractional fall of ``nav`` below ``peak`` (0 at or above the peak)."""
    if peak <= 0 or nav >= peak:
        return 0.0
    return 1.0 - nav / peak


def drawdown_action(
    dd: float, trigger: float, halt: float, derisked: bool, halted: bool
) -> DrawdownAction | None:
    """What drawdown control must do now; each level acts once, the first time it is reached."""
    # 1 - 88/110 is 0.19999999999999996: a level reached exactly must count as reached.
    if dd >= halt - 1e-12 and not halted:
        return DrawdownAction.HALT
    if dd >= trigger - 1e-12 and not derisked and not halted:
        return DrawdownAction.DERISK
    return None


class DrawdownMonitor:
    """Tracks the NAV peak and says when a level is reached for the first time."""

    __slots__ = ("trigger", "halt", "peak", "derisked", "halted", "last", "floor")

    def __init__(self, trigger: float, halt: float, peak: float) -> None:
        self.trigger = trigger
        self.halt = halt
        self.peak = peak
        self.derisked = False
        self.halted = False
        self.last = 0.0
        self.floor = 0.0
        self.refresh_floor()

    def refresh_floor(self) -> None:
        """Recompute ``floor`` after the peak or the levels reached changed."""
        # The NAV at or below which the next level is reached: callers on the hot
        # path compare against it and call ``update`` only then.
        if self.halted:
            self.floor = float("-inf")
            return
        level = self.halt if self.derisked else self.trigger
        self.floor = self.peak * (1.0 - level + 1e-12)

    def update(self, nav: float) -> DrawdownAction | None:
        if nav > self.peak:
            self.observe(nav)
            self.last = 0.0
            return None
        dd = self.last = drawdown(nav, self.peak)
        if dd < self.trigger - 1e-12:
            return None
        action = drawdown_action(dd, self.trigger, self.halt, self.derisked, self.halted)
        if action is DrawdownAction.HALT:
            self.halted = True
        elif action is DrawdownAction.DERISK:
            self.derisked = True
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
