"""Cost of the risk engine: ``RiskEngine.check()`` per order, and replay with risk on vs off.

1. ``check()`` on a book of four instruments (two with positions, one with a
   working order) with every check on: kill switch, state, instrument
   constraints, stale price, price band, max notional, order rate, duplicate
   guard, per-instrument, per-asset-class, gross and net caps.  Each call is
   timed on its own (timer overhead included, printed for reference); most
   orders pass, about one in ten is scaled by a cap, as in a live book.
2. The replay of a synthetic GBM series of one-minute bars with SmaCross(10, 30)
   through the full kernel, once with the risk engine disabled (it still sits in
   the pipeline and approves) and once with all checks on, interleaved, best of
   ``--repeat``; the ratio is the slowdown.  Caps are set so that they bind
   rarely, which keeps both runs trading the same orders; a third run with the
   default caps (40% per instrument: every entry is scaled) is shown for scale.

    .venv/bin/python bench/risk_check.py                  # 200k bars
    .venv/bin/python bench/risk_check.py --bars 50000 --orders 20000
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import structlog

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.replay_throughput import config_for, make_bars  # noqa: E402

NS = 1_000_000_000

ALL_ON_LOOSE: dict[str, Any] = {
    "instrument_constraints": True,
    "price": {"band": 0.10, "stale_bars": 3},
    "max_order_notional": {"limit": 10_000_000},
    "order_rate": {"per_second": 50, "per_minute": 1000},
    "instrument_exposure": {"limit": 1.05},
    "asset_class_exposure": {"limits": {"crypto": 0.2, "equity": 1.1, "fx": 0.5}},
    "gross_leverage": {"limit": 1.2},
    "net_exposure": {"limit": 1.1},
    "duplicate": {"window_seconds": 1.0},
    # SmaCross on a driftless walk loses to costs; keep drawdown control armed but out
    # of the way so that both replays trade the same orders.
    "drawdown": {"trigger": 0.9, "halt": 0.99},
}


def quiet_logs() -> Any:
    """Send structlog output to /dev/null: formatting is measured, terminal I/O is not."""
    sink = open(os.devnull, "w")  # noqa: SIM115 - lives as long as the process
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sink))
    return sink


def bench_check(n_orders: int, seed: int = 3) -> dict[str, float]:
    from trader.core.events import Bar, Fill, OrderRequest, OrderType, Side
    from trader.engine.build import build_engine
    from trader.engine.config import AppConfig

    insts = [
        {"id": "AAA", "symbol": "AAA", "venue": "X", "asset_class": "equity", "lot_step": 1,
         "min_quantity": 1},
        {"id": "BBB", "symbol": "BBB", "venue": "X", "asset_class": "equity", "lot_step": 1,
         "min_quantity": 1},
        {"id": "BTC", "symbol": "BTC", "venue": "X", "asset_class": "crypto", "lot_step": 0.001,
         "min_quantity": 0.001, "min_notional": 10},
        {"id": "EUR", "symbol": "EUR", "venue": "X", "asset_class": "fx", "tick_size": 0.00001,
         "lot_step": 1000, "min_quantity": 1000},
    ]
    for i in insts:
        i["data"] = {"path": "unused.parquet", "timeframe": "1m"}
    risk = dict(ALL_ON_LOOSE)
    risk["instrument_exposure"] = {"limit": 0.4}
    cfg = AppConfig.model_validate({"instruments": insts, "risk": risk})
    engine = build_engine(cfg, models=[])
    prices = {"AAA": 100.0, "BBB": 50.0, "BTC": 20_000.0, "EUR": 1.1}
    t0 = 1_700_000_040 * NS
    engine.kernel.run([Bar(t0, i, 60, t0 - 60 * NS, p, p, p, p, 1.0) for i, p in prices.items()])
    pf = engine.portfolio
    pf.on_fill(Fill(t0, "seed-1", "s1", "AAA", Side.BUY, 200, 100.0))
    pf.on_fill(Fill(t0, "seed-2", "s2", "BTC", Side.BUY, 0.5, 20_000.0))
    engine.router.submit(OrderRequest(t0, "w-1", "BBB", Side.SELL, 100))

    rng = np.random.default_rng(seed)
    ids = list(prices)
    orders = []
    for k in range(n_orders):
        inst = ids[k % 4]
        px = prices[inst]
        lot = {"AAA": 1, "BBB": 1, "BTC": 0.001, "EUR": 1000}[inst]
        # Mostly 1-12% of NAV; about one in ten asks for more than its cap allows.
        frac = rng.uniform(0.01, 0.12) if rng.random() > 0.1 else rng.uniform(0.5, 0.9)
        qty = max(lot, round(frac * 100_000 / px / lot) * lot)
        side = Side.BUY if rng.random() > 0.5 else Side.SELL
        limit = round(px * (1 + rng.uniform(-0.02, 0.02)), 2) if k % 5 == 0 and inst != "EUR" \
            else None
        ts = t0 + 60 * NS + k * NS // 10  # 10 orders per second, inside every rate limit
        orders.append(OrderRequest(ts, f"b-{k}", inst, side, qty,
                                   OrderType.LIMIT if limit else OrderType.MARKET, limit))
    clock = engine.kernel.clock
    check = engine.risk.check
    perf = time.perf_counter_ns
    times = []
    by_action: dict[str, list[int]] = {}
    for o in orders:
        clock.advance(o.ts)
        # Keep the last bars fresh so the stale check passes, as in a live feed.
        if o.ts - pf.last_bar_ts[o.instrument_id] > 60 * NS:
            for i in ids:
                pf.last_bar_ts[i] = o.ts
        a = perf()
        d = check(o)
        dt = perf() - a
        times.append(dt)
        by_action.setdefault(d.action.value, []).append(dt)
    overhead = []
    for _ in range(10_000):
        a = perf()
        overhead.append(perf() - a)
    def stats(ts: list[int]) -> dict[str, float]:
        ts = sorted(ts)
        return {"n": len(ts), "median_us": statistics.median(ts) / 1000,
                "p99_us": ts[int(len(ts) * 0.99)] / 1000, "mean_us": sum(ts) / len(ts) / 1000}

    out = {"all": stats(times), "timer_us": statistics.median(overhead) / 1000}
    for action, ts in sorted(by_action.items()):
        out[action] = stats(ts)
    return out


def replay(path: Path, risk: Any) -> tuple[float, int, int]:
    from trader.replay.backtest import run_backtest

    cfg = config_for(path)
    if risk is not None:
        cfg = cfg.model_copy(update={"risk": type(cfg.risk).model_validate(risk)})
    # CPU time of this process: the benchmark machine is shared, wall time drifts.
    t0 = time.process_time()
    result = run_backtest(cfg, None)
    return time.process_time() - t0, result.metrics["bars"], result.metrics["trades"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bars", type=int, default=200_000)
    ap.add_argument("--orders", type=int, default=50_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    quiet_logs()

    c = bench_check(args.orders)
    print(f"RiskEngine.check(), all checks on, {args.orders:,} orders "
          f"(timer overhead {c['timer_us']:.2f} us included):")
    for key in ("all", "approve", "scale", "reject"):
        if key in c:
            r = c[key]
            print(f"  {key:8s} n={r['n']:6,}  median {r['median_us']:6.2f} us   "
                  f"p99 {r['p99_us']:7.2f} us   mean {r['mean_us']:6.2f} us")
    print("  (scale and reject publish an event and log it: the default structlog console "
          "renderer, to /dev/null, is most of their cost)")

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "gbm.parquet"
        make_bars(path, args.bars)
        runs: dict[str, list[float]] = {"off": [], "on": [], "default": []}
        fills: dict[str, int] = {}
        variants = {"off": {"enabled": False}, "on": ALL_ON_LOOSE,
                    "default": {"drawdown": ALL_ON_LOOSE["drawdown"]}}
        replay(path, variants["off"])  # warm the caches and imports once
        for k in range(args.repeat):
            # Alternate the order: the machine's background load drifts.
            for name, risk in (variants.items() if k % 2 == 0 else
                               reversed(list(variants.items()))):
                dt, bars, trades = replay(path, risk)
                runs[name].append(dt)
                fills[name] = trades
        best = {k: min(v) for k, v in runs.items()}
        print(f"replay, SmaCross(10, 30), {bars:,} one-minute GBM bars, best of {args.repeat} "
              f"(CPU time):")
        print(f"  risk off (approves):         {bars / best['off']:10,.0f} bars/s  "
              f"{fills['off']:,} fills")
        print(f"  risk on, all checks:         {bars / best['on']:10,.0f} bars/s  "
              f"{fills['on']:,} fills")
        print(f"  risk on, default caps:       {bars / best['default']:10,.0f} bars/s  "
              f"{fills['default']:,} fills (every entry scaled to 40% of NAV)")
        print(f"  slowdown, all checks on / off: {best['on'] / best['off']:.3f}x "
              f"({(best['on'] / best['off'] - 1):+.1%})")


if __name__ == "__main__":
    main()
