"""The ccxt gateway inside the live kernel: bars to the bus, orders through the Router.

Real parts end to end: ``Kernel.post`` as the gateway's sink, ``Kernel.run_async``
dispatching, the ``Router`` (OMS) owning orders, ccxt talking to the Binance stand-in.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from gateways.testing.harness import ANCHOR_MS, MINUTE_MS, BinanceHarness, candle, wait_until
from trader.core.clock import LiveClock
from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from trader.core.kernel import Kernel
from trader.engine.router import Router


async def test_paper_session_path_through_kernel_and_router() -> None:
    h = await BinanceHarness().start()
    kernel = Kernel(LiveClock())
    kernel.bind_loop()
    seen_bars: list[Bar] = []
    kernel.bus.subscribe(Bar, seen_bars.append)
    journal: list[Any] = []
    kernel.consumers.append(journal.append)
    stop = asyncio.Event()
    runner = asyncio.ensure_future(kernel.run_async(stop))
    gw = h.gateway(kernel.post)
    router = Router({gw.name: gw}, kernel.clock, id_prefix="P")
    kernel.bus.subscribe(OrderUpdate, router.on_update)
    kernel.bus.subscribe(Fill, router.on_fill)
    try:
        h.history(3)
        await gw.connect()
        await h.wait_market_ws()
        await h.wait_private_ws(gw)
        for k in range(3):
            await h.standin.push_candle(h.venue_id, candle(ANCHOR_MS + k * MINUTE_MS, 50_000.0))
        await wait_until(lambda: len(seen_bars) == 2, what="bars on the bus")

        market = router.submit(OrderRequest(time.time_ns(), router.next_client_order_id(),
                                            h.instrument_id, Side.BUY, 0.01, gateway=gw.name))
        limit = router.submit(OrderRequest(time.time_ns(), router.next_client_order_id(),
                                           h.instrument_id, Side.BUY, 0.01, OrderType.LIMIT,
                                           40_000.0, gateway=gw.name))
        assert market is not None and limit is not None
        await wait_until(lambda: market.status is OrderStatus.FILLED, what="market filled")
        await wait_until(lambda: limit.status is OrderStatus.ACCEPTED, what="limit working")
        router.cancel(limit.client_order_id)
        await wait_until(lambda: limit.status is OrderStatus.CANCELED, what="limit canceled")
        assert market.trade_ids == {h.standin.trades[0].trade_id}
        assert market.avg_fill_price == h.standin.trades[0].price
        assert limit.broker_order_id and router.illegal_transitions == 0
        assert router.open_quantity(h.instrument_id) == 0.0
        # everything the kernel dispatched is in its consumer (the journal's feed), in order
        kinds = [type(e).__name__ for e in journal]
        assert kinds.count("Bar") == 2 and kinds.count("Fill") == 1
        assert [e.status for e in journal if isinstance(e, OrderUpdate)
                and e.client_order_id == limit.client_order_id] == [
            OrderStatus.ACCEPTED, OrderStatus.CANCELED]
    finally:
        stop.set()
        await runner
        await h.stop()
