"""Risk memory that survives restarts: trading state, risk events, the risk engine's state."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from risk.killswitch import KillSwitchRecord
from trader.core.events import ns_to_iso
from trader.store.tables import KILL_SWITCH, RISK_EVENTS, RISK_STATE, TRADING_STATE
from trader.store.views import kill_switch_row

if TYPE_CHECKING:
    from trader.store.store import Store


def _upsert(conn: Any, table: Any, scope: str, values: Mapping[str, Any]) -> None:
    """Update the row of ``scope``, or insert it (one row per scope, any backend)."""
    done = conn.execute(update(table).where(table.c.scope == scope).values(**values)).rowcount
    if not done:
        conn.execute(insert(table).values(scope=scope, **values))


class RiskStateQueries:
    """``Store`` methods over risk state and events (mixed into ``Store``)."""

    def record_risk_event(self: Store, ts: int, kind: str, reason: str = "",
                          detail: Mapping[str, Any] | None = None) -> None:
        """Keep a risk decision or incident (rejection, halt, reconciliation flag)."""
        with self.write() as conn:
            # The full text stays in ``detail`` when the reason column cannot hold it.
            conn.execute(insert(RISK_EVENTS).values(ts=ts, kind=kind, reason=reason[:1000],
                                                    detail=dict(detail or {})))

    def risk_events(self: Store, kind: str | None = None) -> list[dict[str, Any]]:
        """Stored risk events, oldest first (of one kind, or all)."""
        q = select(RISK_EVENTS).order_by(RISK_EVENTS.c.id)
        if kind is not None:
            q = q.where(RISK_EVENTS.c.kind == kind)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def trading_state(self: Store, scope: str = "default") -> tuple[str, str]:
        """(state, reason); ACTIVE when nothing was ever stored."""
        with self.read() as conn:
            row = conn.execute(
                select(TRADING_STATE.c.state, TRADING_STATE.c.reason)
                .where(TRADING_STATE.c.scope == scope)
            ).first()
        return (row[0], row[1]) if row else ("ACTIVE", "")

    def set_trading_state(self: Store, state: str, reason: str, who: str, ts: int,
                          scope: str = "default") -> None:
        """Persist the trading state (and a risk event saying who changed it, and why)."""
        values = {"state": state, "reason": reason, "changed_by": who, "ts": ts}
        with self.write() as conn:
            _upsert(conn, TRADING_STATE, scope, values)
            conn.execute(insert(RISK_EVENTS).values(
                ts=ts, kind="trading_state", reason=reason,
                detail={"state": state, "by": who, "scope": scope}))
        self.flush()

    def save_risk_state(self: Store, state: Mapping[str, Any], ts: int = 0,
                        scope: str = "default") -> None:
        """Persist the risk engine's state (halts, drawdown high-water mark...) as JSON."""
        with self.write() as conn:
            _upsert(conn, RISK_STATE, scope, {"state": dict(state), "ts": ts})
        self.flush()

    def load_risk_state(self: Store, scope: str = "default") -> dict[str, Any] | None:
        """The risk state last saved for ``scope``, or None."""
        with self.read() as conn:
            v = conn.execute(select(RISK_STATE.c.state).where(RISK_STATE.c.scope == scope)
                             ).scalar_one_or_none()
        return dict(v) if v is not None else None

    def load_kill_switch(self: Store, scope: str = "default") -> KillSwitchRecord | None:
        """The kill switch row of ``scope`` (``risk.killswitch.DatabaseBackend`` reads it)."""
        with self.query() as query:
            row = kill_switch_row(query, scope)
        if row is None:
            return None
        engaged, reason, who, ts = row
        return KillSwitchRecord(engaged, reason, ts, who, ns_to_iso(ts))

    def save_kill_switch(self: Store, record: KillSwitchRecord, scope: str = "default") -> None:
        """Write the kill switch row, and the change as a ``risk_events`` row (its history)."""
        values = {"engaged": record.engaged, "reason": record.reason[:1000],
                  "changed_by": record.who[:200], "ts": record.ts}
        with self.write() as conn:
            done = conn.execute(
                update(KILL_SWITCH).where(KILL_SWITCH.c.scope == scope).values(**values)
            ).rowcount
            if not done:
                conn.execute(insert(KILL_SWITCH).values(scope=scope, **values))
            conn.execute(insert(RISK_EVENTS).values(
                ts=record.ts,
                kind="kill_switch_engaged" if record.engaged else "kill_switch_released",
                reason=record.reason[:1000], detail={"by": record.who, "scope": scope}))
        self.flush()
