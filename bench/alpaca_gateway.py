"""Alpaca gateway speed on loopback against the Alpaca stand-in, with ccxt's figures beside it.

1. Bars: a burst of N closed minute bars (``b``, one msgpack frame each) from the
   stand-in's crypto data stream, decoded by alpaca-py's ``CryptoDataStream``,
   converted and guarded by the gateway and posted into a live ``Kernel`` whose bus
   counts them.  Baseline in the same process: a bare aiohttp websocket client that
   only msgpack-decodes the same burst.  Beside it, the ccxt gateway on the Binance
   stand-in and its JSON floor (``bench/ccxt_gateway.py``), measured in this run.
2. Submit-to-ack: ``gateway.submit`` of a resting limit order until its ACCEPTED
   ``OrderUpdate`` reaches the kernel, p50/p99 over M orders; baseline: the same
   order through alpaca-py's ``TradingClient.submit_order`` called directly (blocking,
   no thread hop).  Beside it, ccxt's submit-to-ack and its direct ``create_order``.

    .venv/bin/python bench/alpaca_gateway.py                  # 20,000 bars, 300 orders
    .venv/bin/python bench/alpaca_gateway.py --bars 5000 --orders 100
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path

import aiohttp
import msgpack

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.ack_latency import BarCount, limit_buy, line, live_kernel, pct, submit_to_ack  # noqa: E402
from bench.ccxt_gateway import bench_ack as ccxt_ack  # noqa: E402
from bench.ccxt_gateway import bench_gateway as ccxt_bars  # noqa: E402
from bench.ccxt_gateway import bench_raw as ccxt_raw  # noqa: E402
from gateways.testing.alpaca import AlpacaStandin  # noqa: E402
from gateways.testing.alpaca_harness import MINUTE_MS, AlpacaHarness  # noqa: E402
from gateways.testing.harness import ANCHOR_MS  # noqa: E402

SYMBOL = "BTC/USD"


def frames(n: int) -> list[bytes]:
    """``n`` closed minute bars after the anchor, one msgpack frame each."""
    out = []
    for i in range(n):
        px = 100.0 + (i % 50)
        c = [float(ANCHOR_MS + i * MINUTE_MS), px, px + 1, px - 1, px + 0.5, 1.0]
        out.append(msgpack.packb([AlpacaStandin.bar_msg("b", SYMBOL, c)]))
    return out


async def send_all(h: AlpacaHarness, msgs: list[bytes]) -> None:
    for ws in list(h.standin.streams):
        for i, m in enumerate(msgs):
            await ws.send_bytes(m)
            if i % 256 == 0:
                await asyncio.sleep(0)  # let the client side run, as a real socket would


async def bench_raw(n: int) -> float:
    h = await AlpacaHarness().start()
    msgs = frames(n)
    got = 0
    try:
        async with aiohttp.ClientSession() as sess:
            async with sess.ws_connect(h.standin.urls()["crypto_stream"]) as ws:
                await ws.receive()  # connected
                await ws.send_bytes(msgpack.packb({"action": "auth", "key": h.standin.api_key,
                                                   "secret": h.standin.secret}))
                await ws.receive()
                await ws.send_bytes(msgpack.packb({"action": "subscribe", "bars": [SYMBOL]}))
                await ws.receive()
                t0 = time.perf_counter()
                sender = asyncio.ensure_future(send_all(h, msgs))
                while got < n:
                    msg = await ws.receive()
                    msgpack.unpackb(msg.data)
                    got += 1
                dt = time.perf_counter() - t0
                await sender
    finally:
        await h.stop()
    return n / dt


async def bench_gateway(n: int) -> tuple[float, int]:
    h = await AlpacaHarness().start()
    try:
        async with live_kernel() as kernel:
            bars = BarCount(kernel, n)
            gw = h.gateway(kernel.post, trading=False)
            await h.connect(gw)
            msgs = frames(n)
            t0 = time.perf_counter()
            sender = asyncio.ensure_future(send_all(h, msgs))
            await asyncio.wait_for(bars.done.wait(), timeout=600)
            dt = time.perf_counter() - t0
            await sender
    finally:
        await h.stop()
    return n / dt, bars.count


async def bench_ack(m: int) -> tuple[list[float], list[float]]:
    h = await AlpacaHarness().start()
    raw_ms: list[float] = []
    try:
        async with live_kernel() as kernel:
            gw = h.gateway(kernel.post, market_data=False)
            h.standin.balances["USD"] = 1e12  # every resting order stays affordable
            await h.connect(gw)
            gateway_ms = await submit_to_ack(kernel, gw, m,
                                             limit_buy(h.instrument_id, 0.001, 40_000.0))
            from alpaca.trading.requests import LimitOrderRequest

            client = gw._trading
            loop = asyncio.get_running_loop()
            for i in range(m):
                req = LimitOrderRequest(symbol=SYMBOL, qty=0.001, side="buy",
                                        time_in_force="gtc", limit_price=40_000.0,
                                        client_order_id=f"R-{i}")
                # the stand-in serves from this loop: the blocking call runs in a thread,
                # timed there, so the figure is the client's own round trip
                raw_ms.append(await loop.run_in_executor(None, _timed_submit, client, req))
    finally:
        await h.stop()
    return gateway_ms, raw_ms


def _timed_submit(client: object, req: object) -> float:
    t0 = time.perf_counter()
    client.submit_order(req)  # type: ignore[attr-defined]
    return (time.perf_counter() - t0) * 1e3


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bars", type=int, default=20_000)
    ap.add_argument("--orders", type=int, default=300)
    args = ap.parse_args()
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    logging.getLogger("alpaca").setLevel(logging.ERROR)

    raw = await bench_raw(args.bars)
    rate, delivered = await bench_gateway(args.bars)
    c_raw = await ccxt_raw(args.bars)
    c_rate, c_delivered, _ = await ccxt_bars(args.bars, args.bars)
    print(f"bar burst: {args.bars:,} closed bars, one frame each")
    print(f"  alpaca: raw aiohttp ws + msgpack     : {raw:10,.0f} msg/s (floor)")
    print(f"  alpaca: gateway -> kernel             : {rate:10,.0f} bars/s "
          f"(ratio {rate / raw:.3f}; delivered {delivered:,})")
    print(f"  ccxt:   raw aiohttp ws + json.loads  : {c_raw:10,.0f} msg/s (floor)")
    print(f"  ccxt:   gateway -> kernel (binance)   : {c_rate:10,.0f} bars/s "
          f"(ratio {c_rate / c_raw:.3f}; delivered {c_delivered:,})")
    print(f"  alpaca/ccxt gateway bars/s            : {rate / c_rate:6.3f}")
    g, r = await bench_ack(args.orders)
    cg, cr = await ccxt_ack(args.orders)
    print(f"submit-to-ack, {args.orders} resting limit orders on loopback (ms):")
    print(line("alpaca gateway submit -> ACCEPTED", g, pad=34))
    print(line("alpaca-py submit_order directly", r, pad=34))
    print(line("ccxt gateway submit -> ACCEPTED", cg, pad=34))
    print(line("ccxt create_order directly", cr, pad=34))
    print(f"  ratio p50 alpaca gateway/direct   : {pct(g, .5) / pct(r, .5):6.3f}")
    print(f"  ratio p50 ccxt gateway/direct     : {pct(cg, .5) / pct(cr, .5):6.3f}")
    print(f"  ratio p50 alpaca/ccxt gateway     : {pct(g, .5) / pct(cg, .5):6.3f}")


if __name__ == "__main__":
    asyncio.run(main())
