"""The kill switch kept in the database, so every process sharing it sees one truth.

Same shape as the risk package's file backend: ``engaged() -> (bool, reason)``,
``engage(reason, who)``, ``release(reason, who)``.  Each change is also a
``risk_events`` row, which makes the switch's history auditable.
"""

from __future__ import annotations

from sqlalchemy import insert, select, update

from trader.clock import Clock, LiveClock
from trader.store.store import KILL_SWITCH, RISK_EVENTS, Store


class DbKillSwitch:
    """A kill switch row a running daemon polls and an operator flips from the CLI."""

    def __init__(self, store: Store, clock: Clock | None = None, scope: str = "default") -> None:
        self.store = store
        self.clock = clock or LiveClock()
        self.scope = scope

    def engaged(self) -> tuple[bool, str]:
        with self.store.read() as conn:
            row = conn.execute(
                select(KILL_SWITCH.c.engaged, KILL_SWITCH.c.reason)
                .where(KILL_SWITCH.c.scope == self.scope)
            ).first()
        return (bool(row[0]), row[1]) if row else (False, "")

    def engage(self, reason: str, who: str) -> None:
        self._set(True, reason, who)

    def release(self, reason: str, who: str) -> None:
        self._set(False, reason, who)

    def _set(self, on: bool, reason: str, who: str) -> None:
        if not reason.strip():
            raise ValueError("the kill switch needs a reason to change")
        ts = self.clock.now()
        values = {"engaged": on, "reason": reason, "changed_by": who, "ts": ts}
        with self.store.write() as conn:
            done = conn.execute(
                update(KILL_SWITCH).where(KILL_SWITCH.c.scope == self.scope).values(**values)
            ).rowcount
            if not done:
                conn.execute(insert(KILL_SWITCH).values(scope=self.scope, **values))
            conn.execute(insert(RISK_EVENTS).values(
                ts=ts, kind="kill_switch_engaged" if on else "kill_switch_released",
                reason=reason, detail={"by": who, "scope": self.scope}))
        self.store.flush()
