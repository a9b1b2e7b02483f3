"""What the dashboard shows, read from the status snapshot and the store (read-only)."""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

from sqlalchemy import select

from trader.core.events import ns_to_iso
from trader.live.status import liveness, read_snapshot
from trader.store.lifecycle import Lifecycle
from trader.store.tables import FILLS, RISK_EVENTS, SESSIONS
from trader.store.views import daemon_positions

RECENT = 50  # fills and risk events shown
SESSIONS_SHOWN = 20


def status_view(data_dir: Path, now_ns: int | None = None) -> dict[str, Any]:
    """The daemon's last snapshot with ``running`` and the heartbeat's age added."""
    try:
        snap = read_snapshot(data_dir)
    except ValueError as exc:
        return {"state": "unreadable", "error": str(exc), "running": False}
    if snap is None:
        return {"state": "none", "running": False,
                "note": f"no daemon has run with data directory {data_dir}"}
    running, age = liveness(snap, now_ns)
    return {**snap, "running": running, "heartbeat_age_s": round(age, 3)}


def store_view(store: Any, mode: str | None) -> dict[str, Any]:
    """Recent fills, risk events, sessions and model stages from the store."""
    with store.query() as query:
        positions = daemon_positions(query, mode or "")
    with store.read() as conn:
        fills = [dict(r) for r in conn.execute(
            select(FILLS).order_by(FILLS.c.id.desc()).limit(RECENT)).mappings()]
        risk = [dict(r) for r in conn.execute(
            select(RISK_EVENTS).order_by(RISK_EVENTS.c.id.desc()).limit(RECENT)).mappings()]
        sessions = [dict(r) for r in conn.execute(
            select(SESSIONS).order_by(SESSIONS.c.id.desc()).limit(SESSIONS_SHOWN)).mappings()]
    return {
        "database": store.safe_url,
        "positions": positions,
        "fills": [{"ts": ns_to_iso(f["ts"]) if f.get("ts") else "", **{
            k: f.get(k) for k in ("client_order_id", "instrument_id", "side", "quantity",
                                  "price", "commission", "gateway")}} for f in fills],
        "risk_events": [{"ts": ns_to_iso(r["ts"]), "kind": r["kind"], "reason": r["reason"]}
                        for r in risk],
        "sessions": [{"id": s["id"], "mode": s["mode"], "name": s["name"],
                      "started": ns_to_iso(s["started_ts"]),
                      "ended": ns_to_iso(s["ended_ts"]) if s["ended_ts"] else "",
                      "prefix": s["id_prefix"]} for s in sessions],
        "stages": Lifecycle(store).stages(),
    }


class NavHistory:
    """NAV as the dashboard saw it in the snapshot, one point per new heartbeat."""

    def __init__(self, size: int = 2000) -> None:
        self.points: deque[tuple[int, float]] = deque(maxlen=size)

    def observe(self, snap: dict[str, Any]) -> None:
        nav = snap.get("nav")
        stamp = int(snap.get("updated_wall_ns") or time.time_ns())
        if nav is None or (self.points and self.points[-1][0] >= stamp):
            return
        self.points.append((stamp, float(nav)))

    def as_list(self) -> list[list[float]]:
        return [[t / 1e9, v] for t, v in self.points]
