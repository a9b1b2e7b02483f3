"""The kill switch kept in the database, so every process sharing it sees one truth.

``DbKillSwitch`` is a ``risk.killswitch.KillSwitchBackend`` (``load``, ``save``,
``version``), so ``KillSwitch(backend=DbKillSwitch(store))`` keeps the switch in
a table instead of a flag file.  It can also be used on its own:
``engaged() -> (bool, reason)``, ``engage(reason, who)``, ``release(reason, who)``.
Each change is also a ``risk_events`` row, which makes the switch's history
auditable.
"""

from __future__ import annotations

from collections.abc import Hashable

from sqlalchemy import insert, select, update

from risk.killswitch import KillSwitchRecord
from trader.core.clock import Clock, LiveClock
from trader.core.events import ns_to_iso
from trader.store.store import KILL_SWITCH, RISK_EVENTS, Store


class DbKillSwitch:
    """A kill switch row a running daemon polls and an operator flips from the CLI."""

    def __init__(self, store: Store, clock: Clock | None = None, scope: str = "default") -> None:
        self.store = store
        self.clock = clock or LiveClock()
        self.scope = scope

    # -- KillSwitchBackend ---------------------------------------------------------
    def load(self) -> KillSwitchRecord | None:
        row = self._row()
        if row is None:
            return None
        engaged, reason, who, ts = row
        return KillSwitchRecord(bool(engaged), reason, ts, who, ns_to_iso(ts))

    def save(self, record: KillSwitchRecord) -> None:
        values = {"engaged": record.engaged, "reason": record.reason[:1000],
                  "changed_by": record.who[:200], "ts": record.ts}
        with self.store.write() as conn:
            done = conn.execute(
                update(KILL_SWITCH).where(KILL_SWITCH.c.scope == self.scope).values(**values)
            ).rowcount
            if not done:
                conn.execute(insert(KILL_SWITCH).values(scope=self.scope, **values))
            conn.execute(insert(RISK_EVENTS).values(
                ts=record.ts,
                kind="kill_switch_engaged" if record.engaged else "kill_switch_released",
                reason=record.reason[:1000], detail={"by": record.who, "scope": self.scope}))
        self.store.flush()

    def version(self) -> Hashable:
        return self._row()

    # -- direct use ------------------------------------------------------------------
    def engaged(self) -> tuple[bool, str]:
        row = self._row()
        return (bool(row[0]), row[1]) if row else (False, "")

    def engage(self, reason: str, who: str) -> None:
        self._set(True, reason, who)

    def release(self, reason: str, who: str) -> None:
        self._set(False, reason, who)

    def _set(self, on: bool, reason: str, who: str) -> None:
        if not reason.strip():
            raise ValueError("the kill switch needs a reason to change")
        ts = self.clock.now()
        self.save(KillSwitchRecord(on, reason, ts, who, ns_to_iso(ts)))

    def _row(self) -> tuple | None:
        with self.store.read() as conn:
            row = conn.execute(
                select(KILL_SWITCH.c.engaged, KILL_SWITCH.c.reason, KILL_SWITCH.c.changed_by,
                       KILL_SWITCH.c.ts).where(KILL_SWITCH.c.scope == self.scope)
            ).first()
        return tuple(row) if row else None
