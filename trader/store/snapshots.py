"""Account and position snapshots, and the compact state a trading session started from."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from trader.store.tables import ACCOUNTS, POSITIONS, RESTORED

if TYPE_CHECKING:
    from trader.store.store import Store


def state_hash(state: Mapping[str, Any]) -> str:
    """A content hash of a JSON-able state: canonical JSON, SHA-256."""
    text = json.dumps(state, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


class SnapshotQueries:
    """``Store`` methods over snapshots (mixed into ``Store``)."""

    def snapshot_account(
        self: Store,
        ts: int,
        source: str,
        cash: Mapping[str, float],
        positions: Mapping[str, float],
        *,
        nav: float | None = None,
        avg_prices: Mapping[str, float] | None = None,
    ) -> int:
        """Store cash and positions as ``source`` (a gateway or "portfolio") saw them; its id."""
        with self.write() as conn:
            sid = conn.execute(
                insert(ACCOUNTS).values(ts=ts, source=source, cash=dict(cash), nav=nav)
                .returning(ACCOUNTS.c.id)
            ).scalar_one()
            rows = [
                {"snapshot_id": sid, "instrument_id": inst, "quantity": qty,
                 "avg_price": (avg_prices or {}).get(inst)}
                for inst, qty in sorted(positions.items())
            ]
            if rows:
                conn.execute(insert(POSITIONS), rows)
        return int(sid)

    def latest_snapshot(self: Store, source: str) -> dict[str, Any] | None:
        """The newest snapshot of ``source`` with its ``positions``, or None."""
        with self.read() as conn:
            acct = conn.execute(
                select(ACCOUNTS).where(ACCOUNTS.c.source == source)
                .order_by(ACCOUNTS.c.ts.desc(), ACCOUNTS.c.id.desc()).limit(1)
            ).mappings().first()
            if acct is None:
                return None
            pos = conn.execute(
                select(POSITIONS).where(POSITIONS.c.snapshot_id == acct["id"])
            ).mappings().all()
        out = dict(acct)
        out["positions"] = {p["instrument_id"]: p["quantity"] for p in pos}
        return out

    def save_restored_state(self: Store, session_id: int | None, ts: int,
                            state: Mapping[str, Any]) -> tuple[int, str]:
        """Store the state a session starts from; return (snapshot id, content hash)."""
        digest = state_hash(state)
        with self.write() as conn:
            rid = conn.execute(
                insert(RESTORED).values(session_id=session_id, ts=ts, content_hash=digest,
                                        state=dict(state)).returning(RESTORED.c.id)
            ).scalar_one()
        self.flush()
        return int(rid), digest

    def restored_state(self: Store, snapshot_id: int) -> dict[str, Any] | None:
        """A stored start state with its ``content_hash``, or None."""
        with self.read() as conn:
            row = conn.execute(select(RESTORED).where(RESTORED.c.id == snapshot_id)
                               ).mappings().first()
        return dict(row) if row else None
