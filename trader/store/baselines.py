"""``Store`` methods over account baselines: what an account held before the daemon."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from sqlalchemy import insert, select

from trader.store.tables import BASELINES

if TYPE_CHECKING:
    from trader.store.store import Store


class BaselineQueries:
    """Mixed into ``Store``: one baseline per gateway, written once and never moved."""

    def account_baseline(self: Store, gateway: str) -> dict[str, float] | None:
        """The per-asset balances ``gateway``'s account held before the daemon, or None."""
        with self.read() as conn:
            v = conn.execute(select(BASELINES.c.balances)
                             .where(BASELINES.c.gateway == gateway)).scalar_one_or_none()
        return {k: float(x) for k, x in v.items()} if v is not None else None

    def save_account_baseline(self: Store, gateway: str, ts: int,
                              balances: Mapping[str, float]) -> None:
        """Keep the baseline of ``gateway`` (the first one wins: it is the starting point)."""
        if self.account_baseline(gateway) is not None:
            return
        with self.write() as conn:
            conn.execute(insert(BASELINES).values(gateway=gateway, ts=ts,
                                                  balances={k: float(v)
                                                            for k, v in balances.items()}))
        self.flush()
