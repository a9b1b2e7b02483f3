"""Peers: the same SmaCross(10, 30) on the same bars in our kernel, backtesting.py and backtrader.

Each engine trades SMA 10/30 long-only on the synthetic one-minute bars of
``bench/replay_throughput.py`` (its ``make_bars``): decide on a bar's close, fill
at the next bar's open, no costs, and size each entry as our allocator does for a
model with the whole budget -- ``floor(NAV / close)`` shares at the deciding
close, all of it sold on the cross down.  Every engine runs in a fresh process per
round (peak memory is the process's own high-water mark), rounds are interleaved
and the median of each engine's rounds is kept, so the speed ratios are taken
under the same load.  The timed span is the same for all: from the Parquet file
to the finished run, after a first run of the same engine on 2,000 bars in the
same process (imports and first-use set-up, e.g. lazy imports, are paid there:
start-up is bench/startup.py's business), in CPU time of the process -- on this
shared machine wall time includes waiting for a core, which moved one engine's
rounds by 1.8x (wall time is kept in the JSON).

The kernel runs ``run_backtest`` with ``replay_throughput.config_for`` (all risk
checks on).  backtesting.py and backtrader are installed into a venv of their own
(``bench/.peers-venv``, made on first use and reused; never the project's
dependencies).  Every engine's fills (time, signed quantity, price) are compared
with a plain-Python reference of the same rules, and its final equity (cash plus
the position at the last close) with the reference's.

    .venv/bin/python bench/peers.py                    # 300,000 bars, 3 rounds
    .venv/bin/python bench/peers.py --bars 1000000     # backtrader needs ~80 s a round
    .venv/bin/python bench/peers.py --engines kernel,backtesting --rounds 5
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PEERS_VENV = ROOT / "bench" / ".peers-venv"
# Pinned so that a rerun measures the same peers; pandas and pyarrow load the bars.
PEER_PACKAGES = ["backtesting==0.6.6", "backtrader==1.9.78.123", "pandas", "pyarrow"]
FAST, SLOW = 10, 30
CASH = 100_000.0  # the kernel's default initial cash
WARM_BARS = 2_000
ENGINES = ("floor", "kernel", "backtesting", "backtrader")
PEERS = ("backtesting", "backtrader")

Fill = tuple[int, float, float]  # (bar open time in ns, signed quantity, price)


# --- the rules, and the comparison ------------------------------------------------------

def target_shares(nav: float, close: float) -> float:
    """The allocator's whole-budget size: NAV over the close, floored to whole shares."""
    return float(math.floor(nav / close + 1e-9))  # Instrument.round_quantity's tolerance


def reference_fills(ts: Sequence[int], opens: Sequence[float], closes: Sequence[float],
                    fast: int = FAST, slow: int = SLOW,
                    cash: float = CASH) -> tuple[list[Fill], float]:
    """The fills and final equity of the rules with no engine: the referee of the peers.

    Long while the fast SMA is above the slow one; enters on the first full window if
    fast is already above (as ``SmaCross`` does); an order decided on bar i's close
    fills at bar i+1's open; an order decided on the last bar never fills.
    """
    fills: list[Fill] = []
    shares = 0.0
    pending: float | None = None
    last_above: bool | None = None
    fsum = ssum = 0.0
    for i, c in enumerate(closes):
        if pending is not None:
            cash -= pending * opens[i]
            shares += pending
            fills.append((ts[i], pending, opens[i]))
            pending = None
        fsum += c
        ssum += c
        if i >= fast:
            fsum -= closes[i - fast]
        if i >= slow:
            ssum -= closes[i - slow]
        if i + 1 < slow:
            continue
        above = fsum / fast > ssum / slow
        if above == last_above:
            continue
        first = last_above is None
        last_above = above
        if first and not above:
            continue
        target = target_shares(cash + shares * c, c) if above else 0.0
        if target != shares:
            pending = target - shares
    return fills, cash + shares * closes[-1] if closes else cash


@dataclass
class Agreement:
    """How one engine's fills and final equity compare with the reference's."""

    fills: int
    reference_fills: int
    matched: int  # leading fills equal to the reference's
    first_difference: tuple[Fill | None, Fill | None] | None
    pnl: float
    reference_pnl: float

    @property
    def identical(self) -> bool:
        return self.first_difference is None

    @property
    def pnl_difference(self) -> float:
        """The PnL difference relative to the reference's final equity."""
        return abs(self.pnl - self.reference_pnl) / (CASH + abs(self.reference_pnl))


def same_fill(a: Fill, b: Fill) -> bool:
    """Same bar, same quantity, same price (prices are the file's, so near-exact)."""
    return (a[0] == b[0] and abs(a[1] - b[1]) < 1e-9
            and abs(a[2] - b[2]) <= 1e-12 * max(abs(a[2]), 1.0))


def compare_fills(got: Sequence[Fill], reference: Sequence[Fill], pnl: float,
                  reference_pnl: float) -> Agreement:
    """Fill by fill: how many agree from the start, and the first pair that does not."""
    matched = 0
    for a, b in zip(got, reference, strict=False):
        if not same_fill(a, b):
            break
        matched += 1
    first = None
    if matched < max(len(got), len(reference)):
        first = (got[matched] if matched < len(got) else None,
                 reference[matched] if matched < len(reference) else None)
    return Agreement(len(got), len(reference), matched, first, pnl, reference_pnl)


# --- the engines (each runs in a child process) ---------------------------------------

def peak_rss_mb() -> float:
    """This process's own peak RSS (VmHWM).

    Not ``ru_maxrss``: Linux carries that across fork and exec, so a child would
    report its parent's peak when the parent is the larger.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class Timer:
    """CPU and wall seconds of a block (``with Timer() as t: ...``, then ``t.cpu``, ``t.wall``)."""

    def __enter__(self) -> Timer:
        self._cpu, self._wall = time.process_time(), time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cpu = time.process_time() - self._cpu
        self.wall = time.perf_counter() - self._wall


def run_floor(path: Path) -> dict[str, Any]:
    from bench.replay_throughput import run_floor as floor

    with Timer() as timer:
        _, bars, crosses = floor(path)
    return {"seconds": timer.cpu, "wall": timer.wall, "bars": bars, "fills": None,
            "crosses": crosses, "pnl": None}


def run_kernel(path: Path) -> dict[str, Any]:
    from bench.replay_throughput import config_for
    from trader.replay.backtest import run_backtest

    cfg = config_for(path)
    with Timer() as timer:
        result = run_backtest(cfg, None)
    engine = result.engine
    fills = [(f.ts, f.quantity * f.side.sign, f.price) for f in engine.gateways["sim"].fills]
    return {"seconds": timer.cpu, "wall": timer.wall, "bars": result.metrics["bars"],
            "fills": fills, "pnl": engine.portfolio.nav - engine.portfolio.initial_cash}


def _frame(path: Path):  # -> pandas.DataFrame, in the peers' venv
    import pyarrow.parquet as pq

    df = pq.read_table(path).to_pandas()
    df = df.rename(columns=str.capitalize).set_index("Ts")
    df.index = df.index.tz_localize(None).as_unit("ns")  # both peers want naive timestamps
    return df


def run_backtesting(path: Path) -> dict[str, Any]:
    import numpy as np
    import pandas as pd
    from backtesting import Backtest, Strategy

    def sma(values, n: int):
        # Zeros, not NaN, over the warm-up: backtesting.py would otherwise start
        # calling next() one bar after the slow window fills, a bar later than the
        # other engines decide.  next() skips the warm-up itself.
        return np.nan_to_num(pd.Series(values).rolling(n).mean().to_numpy())

    class SmaCross(Strategy):
        def init(self) -> None:
            self.fast = self.I(sma, self.data.Close, FAST)
            self.slow = self.I(sma, self.data.Close, SLOW)
            self.above: bool | None = None

        def next(self) -> None:
            if len(self.data) < SLOW:
                return
            above = bool(self.fast[-1] > self.slow[-1])
            if above == self.above:
                return
            first = self.above is None
            self.above = above
            if above:
                self.buy(size=int(target_shares(self.equity, self.data.Close[-1])))
            elif not first:
                self.position.close()

    with Timer() as timer:
        df = _frame(path)
        # margin 0.5: an entry sized at the close may cost a little more at the next open;
    # the kernel admits that (gross leverage cap 1.2), backtesting.py would cancel it.
        bt = Backtest(df, SmaCross, cash=CASH, commission=0.0, margin=0.5, trade_on_close=False)
        stats = bt.run()
    ns = df.index.asi8  # naive UTC ns
    fills: list[Fill] = []
    for t in stats._trades.itertuples():
        fills.append((int(t.EntryTime.value), float(t.Size), float(t.EntryPrice)))
        fills.append((int(t.ExitTime.value), -float(t.Size), float(t.ExitPrice)))
    for t in stats._strategy.trades:  # still open at the end
        fills.append((int(ns[t.entry_bar]), float(t.size), float(t.entry_price)))
    fills.sort(key=lambda f: f[0])
    return {"seconds": timer.cpu, "wall": timer.wall, "bars": len(df), "fills": fills,
            "pnl": float(stats["Equity Final [$]"]) - CASH}


def run_backtrader(path: Path) -> dict[str, Any]:
    import backtrader as bt

    class SmaCross(bt.Strategy):
        def __init__(self) -> None:
            self.fast = bt.ind.SMA(self.data.close, period=FAST)
            self.slow = bt.ind.SMA(self.data.close, period=SLOW)
            self.above: bool | None = None
            self.fills: list[tuple[int, float, float]] = []

        def notify_order(self, order) -> None:
            if order.status == order.Completed:
                # The bar index, not backtrader's float date (days since 0001):
                # converted back to ns against the frame's index below.
                self.fills.append((len(self) - 1, order.executed.size, order.executed.price))

        def next(self) -> None:  # called from the bar the slow SMA is full
            above = self.fast[0] > self.slow[0]
            if above == self.above:
                return
            first = self.above is None
            self.above = above
            if above:
                self.buy(size=target_shares(self.broker.getvalue(), self.data.close[0]))
            elif not first:
                self.close()

    with Timer() as timer:
        df = _frame(path)
        cerebro = bt.Cerebro(stdstats=False)  # no observers: the kernel's recorder is its own
        cerebro.adddata(bt.feeds.PandasData(dataname=df))
        cerebro.addstrategy(SmaCross)
        cerebro.broker.setcash(CASH)
        # Leverage 2 for the same reason as backtesting.py's margin; no commission.
        cerebro.broker.setcommission(commission=0.0, leverage=2.0)
        strat = cerebro.run()[0]
    ns = df.index.asi8
    # notify_order runs at the start of the fill bar's cycle, when len(self) already counts it.
    fills = [(int(ns[i]), float(q), float(p)) for i, q, p in strat.fills]
    return {"seconds": timer.cpu, "wall": timer.wall, "bars": len(df), "fills": fills,
            "pnl": cerebro.broker.getvalue() - CASH}


RUNNERS = {"floor": run_floor, "kernel": run_kernel, "backtesting": run_backtesting,
           "backtrader": run_backtrader}


def child(engine: str, path: Path, warm: Path | None = None) -> None:
    if engine == "kernel":
        from trader.core.logging import configure_logging

        configure_logging("error", sys.stderr)
    if warm is not None:
        RUNNERS[engine](warm)
    out = RUNNERS[engine](path)
    out["engine"] = engine
    out["rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


# --- the peers' venv and the interleaved rounds ---------------------------------------

def peers_python(venv: Path = PEERS_VENV) -> Path:
    """The peers' interpreter, the venv made and the peers installed on first use."""
    py = venv / "bin" / "python"
    probe = [str(py), "-c", "import backtesting, backtrader, pandas, pyarrow"]
    if py.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return py
    print(f"installing {', '.join(PEER_PACKAGES)} into {venv} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
    pip = subprocess.run([str(py), "-m", "pip", "install", "-q", *PEER_PACKAGES],
                         capture_output=True, text=True)
    if pip.returncode != 0:
        raise RuntimeError(f"installing the peers failed:\n{pip.stderr[-4000:]}")
    return py


def run_child(python: Path, engine: str, path: Path, warm: Path) -> dict[str, Any]:
    # cwd and PYTHONPATH: the peers' venv does not have the project installed, and the
    # child imports this file's module by path (bench.replay_throughput for the floor).
    out = subprocess.run([str(python), __file__, "--child", engine, "--file", str(path),
                          "--warm", str(warm)],
                         capture_output=True, text=True, cwd=ROOT,
                         env={**os.environ, "PYTHONPATH": str(ROOT)})
    if out.returncode != 0:
        raise RuntimeError(f"{engine} failed:\n{out.stderr[-4000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def read_bars(path: Path) -> tuple[list[int], list[float], list[float]]:
    import pyarrow.parquet as pq

    t = pq.read_table(path, columns=["ts", "open", "close"])
    return ([int(x) for x in t.column("ts").cast("int64").to_pylist()],
            t.column("open").to_pylist(), t.column("close").to_pylist())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bars", type=int, default=300_000,
                    help="bars (default 300,000: backtrader takes ~25 s a round)")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds; medians kept")
    ap.add_argument("--engines", default=",".join(ENGINES), help="subset of " + ",".join(ENGINES))
    ap.add_argument("--json", type=Path, help="also write the figures here")
    ap.add_argument("--child", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--file", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--warm", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        sys.path.insert(0, str(ROOT))
        child(args.child, args.file, args.warm)
        return

    sys.path.insert(0, str(ROOT))
    from bench.replay_throughput import make_bars

    engines = [e for e in args.engines.split(",") if e]
    unknown = set(engines) - set(ENGINES)
    if unknown:
        ap.error(f"unknown engines: {sorted(unknown)}")
    pythons = {e: Path(sys.executable) for e in engines}
    if any(e in PEERS for e in engines):
        peer_py = peers_python()
        pythons.update({e: peer_py for e in engines if e in PEERS})
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bars.parquet"
        make_bars(path, args.bars)
        warm = Path(tmp) / "warm.parquet"
        make_bars(warm, WARM_BARS, seed=8)
        ts, opens, closes = read_bars(path)
        ref_fills, ref_equity = reference_fills(ts, opens, closes)
        del ts, opens, closes
        runs: dict[str, list[dict[str, Any]]] = {e: [] for e in engines}
        for r in range(args.rounds):
            # Rotate the order each round: no engine always runs first or last.
            for e in engines[r % len(engines):] + engines[:r % len(engines)]:
                runs[e].append(run_child(pythons[e], e, path, warm))
                print(f"round {r + 1}: {e:<12} {runs[e][-1]['seconds']:8.2f} s CPU "
                      f"({runs[e][-1]['wall']:.2f} s wall)", flush=True)
    report = summarise(runs, ref_fills, ref_equity - CASH, args.bars, args.rounds)
    print_report(report)
    if args.json:
        args.json.write_text(json.dumps(report, indent=1))


def summarise(runs: dict[str, list[dict[str, Any]]], ref_fills: list[Fill], ref_pnl: float,
              bars: int, rounds: int) -> dict[str, Any]:
    """Medians, ratios to the kernel, peak RSS and each engine's agreement with the reference."""
    out: dict[str, Any] = {"bars": bars, "rounds": rounds, "reference_fills": len(ref_fills),
                           "reference_pnl": ref_pnl, "engines": {}}
    kernel = statistics.median(r["seconds"] for r in runs["kernel"]) if "kernel" in runs else None
    for e, rs in runs.items():
        sec = statistics.median(r["seconds"] for r in rs)
        row: dict[str, Any] = {"seconds": sec, "bars_per_s": rs[0]["bars"] / sec,
                               "wall_seconds": statistics.median(r["wall"] for r in rs),
                               "peak_rss_mb": statistics.median(r["rss_mb"] for r in rs)}
        if kernel is not None:
            row["time_vs_kernel"] = sec / kernel
        last = rs[-1]
        if last["fills"] is not None:
            fills = [tuple(f) for f in last["fills"]]
            a = compare_fills(fills, ref_fills, last["pnl"], ref_pnl)
            row.update(fills=a.fills, matched=a.matched, identical=a.identical, pnl=a.pnl,
                       pnl_difference=a.pnl_difference,
                       first_difference=a.first_difference)
        else:
            row["crosses"] = last["crosses"]
        out["engines"][e] = row
    return out


def print_report(report: dict[str, Any]) -> None:
    print(f"\n{report['bars']:,} one-minute bars, SMA {FAST}/{SLOW} long-only, next-open fills, "
          f"no costs; medians of {report['rounds']} interleaved rounds (CPU time), each in a "
          "fresh process")
    print(f"reference (plain Python, same rules): {report['reference_fills']:,} fills, "
          f"PnL {report['reference_pnl']:,.2f}")
    print(f"{'engine':<12} {'bars/s':>12} {'time/kernel':>12} {'peak RSS':>10} "
          f"{'fills':>8}  agreement with the reference")
    for e, row in report["engines"].items():
        ratio = f"{row['time_vs_kernel']:11.2f}x" if "time_vs_kernel" in row else f"{'':>12}"
        if "fills" in row:
            agree = ("identical fills" if row["identical"] else
                     f"first {row['matched']:,} fills equal, then {row['first_difference']}")
            agree += f"; PnL {row['pnl']:,.2f} (rel. diff {row['pnl_difference']:.1e})"
            n = f"{row['fills']:>8,}"
        else:
            agree, n = f"plain loop floor, {row['crosses']:,} crossovers, no engine", f"{'':>8}"
        print(f"{e:<12} {row['bars_per_s']:12,.0f} {ratio} {row['peak_rss_mb']:8.0f} MB "
              f"{n}  {agree}")
    eng = report["engines"]
    if "kernel" in eng:
        for e in ("floor", *PEERS):
            if e in eng:
                k = eng[e]["time_vs_kernel"]
                what = (f"kernel / floor time ratio: {1 / k:.2f}x" if e == "floor"
                        else f"kernel speed vs {e}: {k:.2f}x")
                print(what)


if __name__ == "__main__":
    main()
