"""The account a gateway trades may hold more than the daemon's own positions.

Coins bought by hand before the daemon started, or kept aside on purpose, are
in the wallet but are not the daemon's: reconciliation must compare the
daemon's positions with ``wallet - baseline - external``, not with the wallet.

* ``external`` (gateway config): holdings per asset the operator declares as
  not the daemon's.
* the baseline: taken once, at a gateway's first reconciliation, as the wallet
  minus what the daemon already holds minus ``external``, and kept in the store
  (``account_baselines``); every later start reuses it, so a restart never
  mistakes the daemon's own fills for pre-existing coins or the reverse.

Gateways that hold positions rather than balances (no ``wallet`` method) need
none of this and are left alone.
"""

from __future__ import annotations

from typing import Any

import structlog

from trader.engine.portfolio import Portfolio
from trader.store import Store

log = structlog.get_logger(__name__)


def supports_baseline(gateway: Any) -> bool:
    """True if ``gateway`` reports a wallet whose balances may not all be the daemon's."""
    return all(callable(getattr(gateway, m, None))
               for m in ("wallet", "base_assets", "set_baseline"))


async def apply_baseline(store: Store, gateway: Any, portfolio: Portfolio,
                         ts: int) -> dict[str, float] | None:
    """Load (or, at the first reconciliation, take and store) ``gateway``'s baseline.

    Must run after the missed fills are applied and before ``gateway.account()``
    is compared: the daemon's positions are subtracted when the baseline is taken.
    Returns the baseline in force, or None for gateways without a wallet.
    """
    if not supports_baseline(gateway):
        return None
    baseline = store.account_baseline(gateway.name)
    if baseline is None:
        wallet = await gateway.wallet()
        external = getattr(gateway, "external_holdings", dict)()
        assets = gateway.base_assets()
        ours: dict[str, float] = {}
        for inst, asset in assets.items():
            ours[asset] = ours.get(asset, 0.0) + portfolio.position(inst)
        baseline = {a: wallet.get(a, 0.0) - ours.get(a, 0.0) - external.get(a, 0.0)
                    for a in sorted(set(assets.values()))}
        store.save_account_baseline(gateway.name, ts, baseline)
        log.info("account_baseline_taken", gateway=gateway.name, baseline=baseline,
                 external=external)
    gateway.set_baseline(baseline)
    return baseline
