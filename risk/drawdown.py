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

    __slots__ = ("trigger", "halt", "peak", "derisked", "halted", "last")

    def __init__(self, trigger: float, halt: float, peak: float) -> None:
        self.trigger = trigger
        self.halt = halt
        self.peak = peak
        self.derisked = False
        self.halted = False
        self.last = 0.0

    def update(self, nav: float) -> DrawdownAction | None:
        if nav > self.peak:
            self.peak = nav
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
        return action

    def rebase(self, nav: float) -> None:
        """Start measuring from ``nav`` again (after an explicit resume)."""
        self.peak = nav
        self.halted = False
        self.last = 0.0

    def observe(self, nav: float) -> None:
        """Raise the peak without acting (NAV seen at a fill, between bars)."""
        if nav > self.peak:
            self.peak = nav
