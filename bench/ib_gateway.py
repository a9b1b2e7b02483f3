"""IB gateway speed on loopback against the stand-in TWS, with ccxt's figures beside it.

1. Bars: a burst of N keepUpToDate updates from the stand-in, each opening a new
   minute (so each closes the previous bar), decoded by ib_async, closed by the
   gateway and posted into a live ``Kernel`` whose bus counts them.  Baseline in
   the same process: ib_async alone, counting its ``updateEvent`` for the same burst.
2. Submit-to-ack: ``gateway.submit`` of a resting limit order until its ACCEPTED
   ``OrderUpdate`` reaches the kernel, p50/p99 over M orders; baseline: the same
   order through ib_async's ``placeOrder`` until its status reads Submitted.
   ib_async paces its own messages at 45 per second; both sides pay it alike.
3. ccxt on the Binance stand-in (``bench/ccxt_gateway.py``), measured in this
   process, for comparison with the other gateway of the project.

    .venv/bin/python bench/ib_gateway.py                  # 20,000 updates, 200 orders
    .venv/bin/python bench/ib_gateway.py --updates 5000 --orders 50 --no-ccxt
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import BarCount, limit_buy, line, live_kernel, pct, submit_to_ack  # noqa: E402
from bench.ccxt_gateway import bench_ack as ccxt_ack  # noqa: E402
from bench.ccxt_gateway import bench_gateway as ccxt_bars  # noqa: E402
from gateways.testing.ib_harness import IbHarness  # noqa: E402
from gateways.testing.tws import NS  # noqa: E402
from gateways.testing.venue import row  # noqa: E402

SYMBOL = "AAPL"


async def push_burst(h: IbHarness, n: int) -> None:
    start = h.bar_open(0)
    for i in range(n + 1):
        await h.tws.push_update(SYMBOL, row(start + i * 60 * NS, 100.0 + i % 50))


async def bars_raw(n: int) -> float:
    """ib_async alone: updates decoded and delivered as ``updateEvent``."""
    from ib_async import IB, Stock

    h = await IbHarness().start()
    h.install_history(h.instrument_id, [row(h.bar_open(k - 3), 100.0) for k in range(3)])
    ib = IB()
    got = 0
    done = asyncio.Event()

    def on_update(_bars: Any, new: bool) -> None:
        nonlocal got
        if new:
            got += 1
            if got >= n:
                done.set()

    try:
        await ib.connectAsync("127.0.0.1", h.tws.port, 99, readonly=True)
        [c] = await ib.qualifyContractsAsync(Stock(SYMBOL, "SMART", "USD"))
        bars = await ib.reqHistoricalDataAsync(c, "", "600 S", "1 min", "TRADES", False, 2,
                                               keepUpToDate=True)
        bars.updateEvent += on_update
        t0 = time.perf_counter()
        await push_burst(h, n)
        await asyncio.wait_for(done.wait(), 600)
        dt = time.perf_counter() - t0
    finally:
        ib.disconnect()
        await h.stop()
    return n / dt


async def bars_gateway(n: int) -> float:
    h = await IbHarness().start()
    h.install_history(h.instrument_id, [row(h.bar_open(k - 3), 100.0) for k in range(3)])
    try:
        async with live_kernel() as kernel:
            bars = BarCount(kernel, n)
            gw = h.gateway(kernel.post, trading=False, bar_band=None)
            await h.connect(gw)
            t0 = time.perf_counter()
            await push_burst(h, n)
            await asyncio.wait_for(bars.done.wait(), 600)
            dt = time.perf_counter() - t0
    finally:
        await h.stop()
    return n / dt


async def ack_gateway(m: int) -> list[float]:
    h = await IbHarness().start()
    try:
        async with live_kernel() as kernel:
            gw = h.gateway(kernel.post, market_data=False)
            await h.connect(gw, stream=False)
            return await submit_to_ack(kernel, gw, m, limit_buy(h.instrument_id, 1.0, 50.0))
    finally:
        await h.stop()


async def ack_raw(m: int) -> list[float]:
    from ib_async import IB, LimitOrder, Stock

    h = await IbHarness().start()
    ib = IB()
    out: list[float] = []
    try:
        await ib.connectAsync("127.0.0.1", h.tws.port, 98, account=h.account)
        [c] = await ib.qualifyContractsAsync(Stock(SYMBOL, "SMART", "USD"))
        for i in range(m):
            t0 = time.perf_counter()
            trade = ib.placeOrder(c, LimitOrder("BUY", 1, 50.0, orderRef=f"R-{i}"))
            while trade.orderStatus.status != "Submitted":
                await trade.statusEvent
            out.append((time.perf_counter() - t0) * 1e3)
    finally:
        ib.disconnect()
        await h.stop()
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--updates", type=int, default=20_000)
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--no-ccxt", action="store_true", help="skip ccxt's figures")
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("ib_async").setLevel(logging.ERROR)

    raw = await bars_raw(args.updates)
    gw = await bars_gateway(args.updates)
    print(f"bar burst: {args.updates:,} keepUpToDate updates, each closing a bar")
    print(f"  ib_async alone (updateEvent)        : {raw:10,.0f} bars/s (floor)")
    print(f"  IB gateway -> kernel bus            : {gw:10,.0f} bars/s (ratio {gw / raw:.3f})")
    if not args.no_ccxt:
        c_rate, _n, _b = await ccxt_bars(args.updates)
        print(f"  ccxt gateway -> kernel (Binance)    : {c_rate:10,.0f} bars/s "
              f"(IB/ccxt {gw / c_rate:.3f})")
    g = await ack_gateway(args.orders)
    r = await ack_raw(args.orders)
    print(f"submit-to-ack, {args.orders} resting limit orders on loopback (ms):")
    print(line("IB gateway submit -> ACCEPTED on bus", g))
    print(line("ib_async placeOrder -> Submitted", r))
    print(f"  ratio p50 gateway/ib_async          : {pct(g, .5) / pct(r, .5):6.3f}")
    if not args.no_ccxt:
        cg, _cr = await ccxt_ack(args.orders)
        print(line("ccxt gateway submit -> ACCEPTED", cg))
        print(f"  ratio p50 IB/ccxt                   : {pct(g, .5) / pct(cg, .5):6.3f}")


if __name__ == "__main__":
    asyncio.run(main())
