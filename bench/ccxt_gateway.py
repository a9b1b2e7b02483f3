"""ccxt gateway speed on loopback against the Binance stand-in.

1. Bars: a burst of N kline messages (each opens a new minute, so each closes
   the previous bar) from the stand-in's websocket, parsed by ccxt.pro, closed
   by the gateway and posted into a live ``Kernel`` whose bus counts them.
   Baseline in the same process: a bare aiohttp websocket client that only
   JSON-decodes the same burst (the floor no client library can beat).
2. Submit-to-ack: ``gateway.submit`` of a limit order until its ACCEPTED
   ``OrderUpdate`` reaches the kernel, p50/p99 over M orders; baseline: the same
   order placed by calling ccxt's ``create_order`` directly.

    .venv/bin/python bench/ccxt_gateway.py                 # 100,000 klines, 500 orders
    .venv/bin/python bench/ccxt_gateway.py --klines 20000 --orders 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import BarCount, limit_buy, line, live_kernel, pct, submit_to_ack  # noqa: E402
from gateways.testing.harness import ANCHOR_MS, MINUTE_MS, BinanceHarness  # noqa: E402


def burst(h: BinanceHarness, n: int) -> list[str]:
    s = h.standin
    out = []
    for i in range(n):
        t = ANCHOR_MS + i * MINUTE_MS
        px = 100.0 + (i % 50)
        c = [float(t), px, px + 1, px - 1, px + 0.5, 1.0]
        s.candles[h.venue_id].append(c)  # REST agrees with the stream, should a gap be filled
        out.append(s.kline_message(h.venue_id, c, True))  # type: ignore[attr-defined]
    return out


async def send_all(h: BinanceHarness, msgs: list[str]) -> None:
    for ws in list(h.standin.market_ws):
        for i, m in enumerate(msgs):
            await ws.send_str(m)
            if i % 256 == 0:
                await asyncio.sleep(0)  # let the client side run, as a real socket would


async def bench_raw(n: int) -> float:
    h = await BinanceHarness().start()
    msgs = burst(h, n)
    got = 0
    try:
        async with aiohttp.ClientSession() as sess:
            async with sess.ws_connect(f"{h.standin.ws}/ws/0") as ws:
                await ws.send_json({"method": "SUBSCRIBE", "params": ["btcusdt@kline_1m"],
                                    "id": 1})
                await ws.receive()  # the subscription answer
                t0 = time.perf_counter()
                sender = asyncio.ensure_future(send_all(h, msgs))
                while got < n:
                    msg = await ws.receive()
                    json.loads(msg.data)
                    got += 1
                dt = time.perf_counter() - t0
                await sender
    finally:
        await h.stop()
    return n / dt


async def bench_gateway(n: int, cache: int | None = None) -> tuple[float, int, int]:
    h = await BinanceHarness().start()
    h.history(3)
    try:
        async with live_kernel() as kernel:
            bars = BarCount(kernel, n - 1)
            # the venue clock sits after the burst so a REST gap fill sees closed candles; the
            # quiet-market REST close is pushed out of the way (it would short-cut the stream)
            h.standin.set_clock(ANCHOR_MS + (n + 1) * MINUTE_MS)
            timing = h.config().timing.model_copy(update={"close_grace_s": 1e9})
            options = {"OHLCVLimit": cache} if cache else {}
            gw = h.gateway(kernel.post, trading=False, timing=timing, options=options)
            await gw.connect()
            # the stream continues from here
            await gw.warm_up((ANCHOR_MS - 3 * MINUTE_MS) * 1_000_000)
            await h.wait_market_ws()
            msgs = burst(h, n)
            t0 = time.perf_counter()
            sender = asyncio.ensure_future(send_all(h, msgs))
            await asyncio.wait_for(bars.done.wait(), timeout=600)
            dt = time.perf_counter() - t0
            await sender
    finally:
        await h.stop()
    return (n - 1) / dt, bars.count, gw.stats.backfilled_bars


async def bench_ack(m: int) -> tuple[list[float], list[float]]:
    h = await BinanceHarness().start()
    raw_ms: list[float] = []
    try:
        async with live_kernel() as kernel:
            gw = h.gateway(kernel.post, use_websocket=False)
            await gw.connect()
            gateway_ms = await submit_to_ack(kernel, gw, m,
                                             limit_buy(h.instrument_id, 0.001, 40_000.0))
            ex: Any = gw.exchange
            for i in range(m):
                t0 = time.perf_counter()
                await ex.create_order(h.symbol, "limit", "buy", 0.001, 40_000.0,
                                      {"clientOrderId": f"R-{i}"})
                raw_ms.append((time.perf_counter() - t0) * 1e3)
    finally:
        await h.stop()
    return gateway_ms, raw_ms


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--klines", type=int, default=100_000)
    ap.add_argument("--orders", type=int, default=500)
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))

    raw = await bench_raw(args.klines)
    print(f"klines burst: {args.klines:,}")
    print(f"  raw aiohttp ws + json.loads      : {raw:10,.0f} msg/s (floor)")
    for label, cache in (("default (1,000)", None), (f"{args.klines:,}", args.klines)):
        rate, delivered, backfilled = await bench_gateway(args.klines, cache)
        print(f"  gateway -> kernel, ccxt cache {label:>15}: {rate:10,.0f} bars/s "
              f"(ratio {rate / raw:.3f}; delivered {delivered:,}, "
              f"{backfilled:,} of them by REST gap fill)")
    g, r = await bench_ack(args.orders)
    print(f"submit-to-ack, {args.orders} limit orders on loopback (ms):")
    print(line("gateway submit -> ACCEPTED on bus", g, pad=34))
    print(line("ccxt create_order directly", r, pad=34))
    print(f"  ratio p50 gateway/direct          : {pct(g, .5) / pct(r, .5):6.3f}")


if __name__ == "__main__":
    asyncio.run(main())
