"""Sessions: one row per process start (replay, paper or live), the source of order id prefixes."""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select, update

from trader.store.tables import SESSIONS

if TYPE_CHECKING:
    from trader.store.store import Store


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One process start: its row id and the client order id prefix derived from it."""

    id: int
    mode: str
    prefix: str
    start_seq: int


def session_prefix(mode: str, session_id: int) -> str:
    """Client order id prefix: short, alphanumeric, unique because session ids are."""
    return f"{(mode[:1] or 's').lower()}{session_id}"


class SessionQueries:
    """``Store`` methods over sessions (mixed into ``Store``)."""

    def begin_session(self: Store, mode: str, name: str, ts: int) -> SessionInfo:
        """Register a process start; its id makes this session's client order ids unique."""
        with self.write() as conn:
            # The prefix needs the id, so insert with a placeholder unique to this row first.
            placeholder = f"~{uuid.uuid4().hex[:30]}"
            sid = conn.execute(
                insert(SESSIONS).values(mode=mode, name=name, started_ts=ts, id_prefix=placeholder,
                                        last_seq=0).returning(SESSIONS.c.id)
            ).scalar_one()
            prefix = session_prefix(mode, sid)
            conn.execute(update(SESSIONS).where(SESSIONS.c.id == sid).values(id_prefix=prefix))
        self.flush()
        return SessionInfo(sid, mode, prefix, 0)

    def end_session(self: Store, session_id: int, ts: int) -> None:
        """Stamp the session's end."""
        with self.write() as conn:
            conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(ended_ts=ts))
        self.flush()

    def session(self: Store, session_id: int) -> dict[str, Any] | None:
        """The stored row of one session, or None."""
        with self.read() as conn:
            q = select(SESSIONS).where(SESSIONS.c.id == session_id)
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def previous_session(self: Store, mode: str, before_session: int) -> dict[str, Any] | None:
        """The latest session of ``mode`` that started before ``before_session``, or None."""
        with self.read() as conn:
            q = (select(SESSIONS).where(SESSIONS.c.mode == mode)
                 .where(SESSIONS.c.id < before_session).order_by(SESSIONS.c.id.desc()).limit(1))
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def set_last_bars(self: Store, session_id: int, last_bars: Mapping[str, int]) -> None:
        """Remember the ts of the last bar the session consumed, per instrument (replay feed)."""
        with self.write() as conn:
            conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id)
                         .values(last_bars={k: int(v) for k, v in last_bars.items()}))
        self.flush()

    def consumed_bars(self: Store, mode: str, before_session: int | None = None) -> dict[str, int]:
        """Per instrument, the newest bar ts any earlier ``mode`` session consumed."""
        q = select(SESSIONS.c.last_bars).where(SESSIONS.c.mode == mode) \
            .where(SESSIONS.c.last_bars.is_not(None))
        if before_session is not None:
            q = q.where(SESSIONS.c.id < before_session)
        out: dict[str, int] = {}
        with self.read() as conn:
            for (bars,) in conn.execute(q):
                for inst, ts in (bars or {}).items():
                    out[inst] = max(int(ts), out.get(inst, int(ts)))
        return out
