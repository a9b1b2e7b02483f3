"""MT5 gateway speed on loopback against the stand-in terminal, with ccxt's figures beside it.

1. Poll-to-bar: a bar closes at the stand-in (its clock passes the bar's end)
   until the gateway's poll puts it on a live ``Kernel``'s bus, p50/p99 over N
   bars at ``--poll`` seconds.  Baseline in the same process: one bare mt5linux
   ``copy_rates_from_pos`` round trip (the floor of a poll).
2. Submit-to-deal: ``gateway.submit`` of a market order until its ``Fill`` (the
   deal) is on the bus, over M orders.  Baselines: a bare mt5linux ``order_send``
   round trip, and ccxt's submit-to-ack on the Binance stand-in
   (``bench/ccxt_gateway.py``), measured here in the same run.

    .venv/bin/python bench/mt5_gateway.py                 # 100 bars, 200 orders
    .venv/bin/python bench/mt5_gateway.py --bars 50 --orders 100 --poll 0.02
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

from bench.ack_latency import Arrivals, live_kernel, pct  # noqa: E402
from bench.ack_latency import line as latency_line  # noqa: E402
from bench.ccxt_gateway import bench_ack  # noqa: E402
from gateways.testing.mt5_harness import FAST_TIMING, NS, Mt5Harness  # noqa: E402
from gateways.testing.venue import row  # noqa: E402
from trader.core.events import Bar, Fill, OrderRequest, OrderType, Side  # noqa: E402


def line(label: str, xs: list[float]) -> str:
    """A latency row, one digit wider: MT5's poll-bound figures run to hundreds of ms."""
    return latency_line(label, xs, width=7)


def bare_client(h: Mt5Harness) -> Any:
    """mt5linux alone, logged in to the stand-in: the baseline's client."""
    from mt5linux import MetaTrader5

    assert h.server is not None
    client = MetaTrader5(host=h.server.host, port=h.server.port)
    client.initialize(login=h.login, password=h.password, server="StandIn-Demo")
    return client


async def bench_bars(n: int, poll: float) -> tuple[list[float], list[float]]:
    h = await Mt5Harness().start()
    lat: list[float] = []
    raw: list[float] = []
    try:
        async with live_kernel() as kernel:
            seen = Arrivals(kernel, Bar, lambda b: b.ts_open)
            timing = FAST_TIMING.model_copy(update={"poll_interval_s": poll})
            gw = h.gateway(kernel.post, trading=False, timing=timing)
            h.install_history(h.instrument_id, [row(h.bar_open(k), 1.1) for k in range(-3, 0)])
            await h.connect(gw)
            rows = {}
            for i in range(n):
                t = h.bar_open(0)
                rows[t] = row(t, 1.1 + (i % 7) / 1000)
                h.install_history(h.instrument_id, list(rows.values()))
                t0 = time.perf_counter()
                h.set_now(t + 60 * NS + NS)  # the bar closes now
                lat.append(await seen.since(t, t0))
            client = bare_client(h)
            for _ in range(n):
                t0 = time.perf_counter()
                client.copy_rates_from_pos("EURUSD", 1, 0, 3)
                raw.append((time.perf_counter() - t0) * 1e3)
    finally:
        await h.stop()
    return lat, raw


async def bench_deals(m: int) -> tuple[list[float], list[float]]:
    h = await Mt5Harness().start()
    h.control("_set", balance=1e9)
    lat: list[float] = []
    raw: list[float] = []
    try:
        async with live_kernel() as kernel:
            filled = Arrivals(kernel, Fill, lambda f: f.client_order_id)
            gw = h.gateway(kernel.post)
            await h.connect(gw)
            for i in range(m):
                coid = f"B-{i}"
                side = Side.BUY if i % 2 == 0 else Side.SELL
                t0 = time.perf_counter()
                gw.submit(OrderRequest(time.time_ns(), coid, h.instrument_id, side, 0.1,
                                       OrderType.MARKET))
                lat.append(await filled.since(coid, t0))
            client = bare_client(h)
            for i in range(m):
                t0 = time.perf_counter()
                client.order_send({"action": 1, "symbol": "EURUSD", "volume": 0.1,
                                   "type": i % 2, "magic": 1, "comment": f"R-{i}",
                                   "type_filling": 0})
                raw.append((time.perf_counter() - t0) * 1e3)
    finally:
        await h.stop()
    return lat, raw


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=100)
    ap.add_argument("--orders", type=int, default=200)
    ap.add_argument("--poll", type=float, default=0.05)
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    lat, raw = await bench_bars(args.bars, args.poll)
    print(f"poll-to-bar, {args.bars} bars, poll every {args.poll * 1e3:.0f} ms (ms):")
    print(line("bar closes -> Bar on the kernel bus", lat))
    print(line("mt5linux copy_rates_from_pos alone", raw))
    print(f"  ratio p50 to the poll interval       : {pct(lat, .5) / (args.poll * 1e3):6.3f}")
    deal, send = await bench_deals(args.orders)
    acked, direct = await bench_ack(args.orders)
    print(f"submit-to-deal, {args.orders} market orders on loopback (ms):")
    print(line("mt5 gateway submit -> Fill on bus", deal))
    print(line("mt5linux order_send alone", send))
    print(line("ccxt (Binance) submit -> ACCEPTED", acked))
    print(line("ccxt create_order alone", direct))
    print(f"  ratio p50 mt5 gateway/order_send     : {pct(deal, .5) / pct(send, .5):6.3f}")
    print(f"  ratio p50 mt5 deal / ccxt ack        : {pct(deal, .5) / pct(acked, .5):6.3f}")


if __name__ == "__main__":
    asyncio.run(main())
