"""Replay throughput: SmaCross(10, 30) on one-minute bars through the full kernel.

Prints bars per second through the kernel (feed, aggregator, model, allocator,
planner, risk, simulated fills, portfolio, recorder) next to a plain-Python loop
that computes the same crossover with no engine (the floor), their ratio, and
the peak RSS of runs on 1,000,000 and 5,000,000 bars, each in its own process
so peak memory is measured separately.

    .venv/bin/python bench/replay_throughput.py            # 1M and 5M bars
    .venv/bin/python bench/replay_throughput.py --bars 200000 --sizes 200000
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MINUTE_NS = 60_000_000_000


def make_bars(path: Path, n: int, seed: int = 7) -> None:
    """A geometric random walk of one-minute bars written in chunks (bounded memory)."""
    rng = np.random.default_rng(seed)
    start = np.datetime64("2015-01-01T00:00:00", "ns").astype(np.int64)
    price = 100.0
    writer = None
    chunk = 500_000
    schema = pa.schema([("ts", pa.timestamp("ns", tz="UTC")), ("open", pa.float64()),
                        ("high", pa.float64()), ("low", pa.float64()), ("close", pa.float64()),
                        ("volume", pa.float64())])
    done = 0
    while done < n:
        m = min(chunk, n - done)
        rets = rng.normal(0.0, 0.0008, m)
        closes = price * np.exp(np.cumsum(rets))
        opens = np.concatenate(([price], closes[:-1]))
        wig = np.abs(rng.normal(0.0, 0.0004, m))
        highs = np.maximum(opens, closes) * (1 + wig)
        lows = np.minimum(opens, closes) * (1 - wig)
        ts = start + (np.arange(done, done + m, dtype=np.int64) * MINUTE_NS)
        table = pa.table([pa.array(ts, pa.timestamp("ns", tz="UTC")), opens, highs, lows, closes,
                          rng.uniform(1, 100, m)], schema=schema)
        if writer is None:
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(table)
        price = float(closes[-1])
        done += m
    assert writer is not None
    writer.close()


def config_for(path: Path):
    from trader.engine.config import AppConfig

    return AppConfig.model_validate({
        "name": "bench",
        "execution": {"slippage_bps": 0, "commission_bps": 0, "fee_per_order": 0},
        "instruments": [{"id": "X", "symbol": "X", "venue": "SIM", "asset_class": "equity",
                         "tick_size": 0.01, "lot_step": 1, "min_quantity": 1,
                         "data": {"path": str(path), "timeframe": "1m"}}],
        "models": [{"name": "sma", "model": "SmaCross", "budget": 1.0, "instruments": ["X"],
                    "timeframe": "1m", "params": {"fast": 10, "slow": 30}}],
        # Every check is on; the caps admit a single model holding its whole
        # budget so the stream of orders is approved, not rejected and logged.
        "risk": {"instrument_exposure": {"limit": 1.0}, "net_exposure": {"limit": 1.0},
                 "gross_leverage": {"limit": 1.2},
                 # A random walk may well fall 20%; the halt would then turn the
                 # rest of the run into rejections, which is not what is measured.
                 "drawdown": {"trigger": 0.9, "halt": 0.95}},
    })


def run_kernel(path: Path) -> tuple[float, int, int]:
    from trader.core.logging import configure_logging
    from trader.replay.backtest import run_backtest

    configure_logging("error", sys.stderr)

    cfg = config_for(path)
    t0 = time.perf_counter()
    result = run_backtest(cfg, None)
    dt = time.perf_counter() - t0
    return dt, result.metrics["bars"], result.metrics["trades"]


def run_floor(path: Path) -> tuple[float, int, int]:
    """Same crossover, no engine: read the file and loop over closes."""
    t0 = time.perf_counter()
    crosses = 0
    n = 0
    fast: deque[float] = deque(maxlen=10)
    slow: deque[float] = deque(maxlen=30)
    fsum = ssum = 0.0
    above = None
    for batch in pq.ParquetFile(path).iter_batches(batch_size=65_536, columns=["close"]):
        for c in batch.column(0).to_numpy().tolist():
            n += 1
            if len(fast) == 10:
                fsum -= fast[0]
            fast.append(c)
            fsum += c
            if len(slow) == 30:
                ssum -= slow[0]
            slow.append(c)
            ssum += c
            if len(slow) == 30:
                a = fsum / 10 > ssum / 30
                if a != above:
                    if above is not None or a:
                        crosses += 1
                    above = a
    return time.perf_counter() - t0, n, crosses


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def child(n: int, path: Path) -> None:
    dt, bars, trades = run_kernel(path)
    print(json.dumps({"bars": bars, "seconds": dt, "trades": trades, "rss_mb": peak_rss_mb()}))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bars", type=int, default=1_000_000, help="bars for the throughput run")
    ap.add_argument("--sizes", type=str, default="1000000,5000000", help="sizes for the RSS runs")
    ap.add_argument("--repeat", type=int, default=3, help="runs of floor and kernel; best kept")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.bars, args.child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        sizes = sorted({args.bars, *(int(s) for s in args.sizes.split(",") if s)})
        files = {}
        for n in sizes:
            files[n] = Path(tmp) / f"bars_{n}.parquet"
            make_bars(files[n], n)
        path = files[args.bars]
        # Best of N, floor and kernel interleaved: this shared VM's speed drifts,
        # and the best run is the one least disturbed by neighbours.
        floor_dt = kern_dt = float("inf")
        for _ in range(args.repeat):
            dt, floor_n, crosses = run_floor(path)
            floor_dt = min(floor_dt, dt)
            dt, kern_n, trades = run_kernel(path)
            kern_dt = min(kern_dt, dt)
        print(f"bars: {kern_n:,} (best of {args.repeat} runs each)")
        print(f"floor (plain loop, same crossover): {floor_n / floor_dt:12,.0f} bars/s "
              f"({crosses:,} crossovers)")
        print(f"full kernel:                        {kern_n / kern_dt:12,.0f} bars/s "
              f"({trades:,} fills)")
        print(f"kernel / floor time ratio:          {kern_dt / floor_dt:12.2f}x")
        rss = {}
        for n in sizes:
            out = subprocess.run([sys.executable, __file__, "--bars", str(n), "--child",
                                  str(files[n])], capture_output=True, text=True, check=True)
            r = json.loads(out.stdout.strip().splitlines()[-1])
            rss[n] = r["rss_mb"]
            print(f"{n:>10,} bars in a fresh process: {r['bars'] / r['seconds']:10,.0f} bars/s, "
                  f"peak RSS {r['rss_mb']:7.1f} MB")
        if len(sizes) > 1:
            lo, hi = sizes[0], sizes[-1]
            print(f"peak RSS ratio {hi:,} / {lo:,} bars: {rss[hi] / rss[lo]:.3f}")


if __name__ == "__main__":
    main()
