"""Run records: a run's summary in the store, its config digest, its metrics as storable JSON."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select

from trader.store.tables import RUNS

if TYPE_CHECKING:
    from trader.store.store import Store


def config_hash(cfg: Any) -> str:
    """A stable digest of a validated config (which models, which data, which settings)."""
    # Where state, reports and tracked runs are kept, and what alerts and the dashboard do,
    # do not change what a run does.
    if not hasattr(cfg, "model_dump_json"):
        return hashlib.sha256(str(cfg).encode()).hexdigest()
    exclude = {"store", "report", "alerts", "web", "tracking"}
    # Sections added later count only when used, so older configs keep their digest.
    exclude.update(k for k in ("regimes", "regime_budgets") if not getattr(cfg, k, None))
    text = cfg.model_dump_json(exclude=exclude)
    return hashlib.sha256(text.encode()).hexdigest()


def json_safe(value: Any) -> Any:
    """Metrics as JSON both backends accept: no NaN or infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


class RunQueries:
    """``Store`` methods over run records (mixed into ``Store``)."""

    def record_run(
        self: Store,
        kind: str,
        name: str,
        config_hash: str,
        models: Sequence[str],
        started_ts: int,
        ended_ts: int | None,
        metrics: Mapping[str, Any],
        *,
        session_id: int | None = None,
    ) -> int:
        """Store a run's summary (which config, which models, what came out); its id."""
        with self.write() as conn:
            rid = conn.execute(
                insert(RUNS).values(kind=kind, name=name, config_hash=config_hash,
                                    models=list(models), started_ts=started_ts,
                                    ended_ts=ended_ts, metrics=dict(metrics),
                                    session_id=session_id)
                .returning(RUNS.c.id)
            ).scalar_one()
        self.flush()
        return int(rid)

    def runs(self: Store, kind: str | None = None) -> list[dict[str, Any]]:
        """Stored runs, oldest first (of one kind, or all)."""
        q = select(RUNS).order_by(RUNS.c.id)
        if kind is not None:
            q = q.where(RUNS.c.kind == kind)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]
