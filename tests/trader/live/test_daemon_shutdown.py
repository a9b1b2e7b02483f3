"""Shutdown policy: stop model orders, optionally cancel open orders, journal the decision."""

from __future__ import annotations

import pytest
from daemon_harness import write_config

from trader.core.events import OrderRequest, OrderStatus, OrderType, Side
from trader.engine.config import load_config
from trader.live.daemon import Daemon
from trader.live.notify import Notifier
from trader.live.session import build_session


def _daemon_with_resting_order(tmp_path, cancel: bool):
    cfg = load_config(write_config(tmp_path, daemon={"cancel_open_orders_on_shutdown": cancel}))
    d = Daemon(cfg, "paper", data_dir=tmp_path / "d", notifier=Notifier(""))
    d.session = build_session(cfg, d.clock, mode="paper", id_prefix="T")
    d.session.engine.pipeline.trading = True
    router = d.session.engine.router
    # A limit far below the market rests at the simulated exchange.
    router.submit(OrderRequest(1, router.next_client_order_id(), "SPY", Side.BUY, 1.0,
                               OrderType.LIMIT, limit_price=1.0))
    assert len(router.active) == 1
    return d, router


@pytest.mark.parametrize("cancel", [True, False])
def test_shutdown_stops_orders_and_cancels_only_when_configured(tmp_path, cancel):
    d, router = _daemon_with_resting_order(tmp_path, cancel)
    order = next(iter(router.active.values()))
    try:
        d.begin_shutdown("test")
    finally:
        d._exit_timer.cancel()  # the hang guard would end the test process
    assert d.stop.is_set() and d.state == "stopping"
    assert d.session.engine.pipeline.trading is False and router.accepting is False
    if cancel:
        assert order.status is OrderStatus.CANCELED and not router.active
    else:
        assert order.status is OrderStatus.ACCEPTED and len(router.active) == 1
    # A model order after the stop never reaches a gateway.
    assert router.submit(OrderRequest(2, "late", "SPY", Side.BUY, 1.0)) is None
    d.begin_shutdown("again")  # idempotent: a second TERM does not start another shutdown
