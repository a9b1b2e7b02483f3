"""Optimisation throughput: trials per second with N workers against N x one backtest.

A random search over SmaCross on the shipped BTC/USD hourly bars (a year, ~8,700
bars per trial) runs with 1 and with N worker processes on a SQLite study; the
baseline is one backtest of the same config timed in this process (data read and
replay, what `trader backtest` spends). Prints trials/s and the ratio
trials/s / (workers / backtest seconds): 1.0 would be N perfectly parallel backtests
with no study overhead; then the same from the first trial's start to the last
trial's end (without the workers' start-up, which a long study amortises).

    .venv/bin/python bench/optimize_throughput.py --workers 2 --trials 16
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE = """\
name: bench
data: {start: "2017-06-01", end: "2018-06-01"}
instruments:
  - {id: BTCUSD, symbol: BTC/USD, venue: COINBASE, asset_class: crypto, lot_step: 0.0001,
     min_quantity: 0.0001, data: {path: data/btcusd_1h.parquet, timeframe: 1h}}
models:
  - {name: btc_sma, model: SmaCross, budget: 0.5, instruments: [BTCUSD], timeframe: 1h,
     params: {fast: 10, slow: 50}}
"""
EXPERIMENT = """\
name: bench-{workers}
config: ../base.yaml
method: random
trials: {trials}
seed: 1
params:
  models.btc_sma.params.fast: {{type: int, low: 3, high: 30}}
  models.btc_sma.params.slow: {{type: int, low: 40, high: 200}}
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--trials", type=int, default=16)
    args = ap.parse_args()

    from trader.core.logging import StderrProxy, configure_logging
    from trader.optimize.experiment import load_experiment
    from trader.optimize.run import run_experiment
    from trader.replay.backtest import run_backtest

    configure_logging("error", StderrProxy())
    work = Path(tempfile.mkdtemp(prefix="bench-optimize-"))
    try:
        (work / "config" / "experiments").mkdir(parents=True)
        shutil.copytree(ROOT / "data", work / "data")
        (work / "config" / "base.yaml").write_text(BASE)
        os.chdir(work)
        exp1 = None
        for n in (1, args.workers):
            path = work / "config" / "experiments" / f"e{n}.yaml"
            path.write_text(EXPERIMENT.format(workers=n, trials=args.trials))
            exp = load_experiment(path)
            exp1 = exp1 or exp
            out = run_experiment(exp, f"sqlite:///{work / f'b{n}.db'}", n,
                                 report_dir=work / f"r{n}")
            rate = out.trials_run / out.seconds
            if n == 1:
                run_backtest(exp.base, None)  # warm imports, as a worker is after its first
                t0 = time.perf_counter()
                run_backtest(exp.base, None)
                single = time.perf_counter() - t0
                print(f"one backtest (data read + replay): {single:.3f} s "
                      f"= {1 / single:.2f} backtests/s")
            print(f"{n} worker(s): {out.trials_run} trials in {out.seconds:.1f} s = "
                  f"{rate:.2f} trials/s; against {n} x one backtest ({n / single:.2f}/s): "
                  f"ratio {rate * single / n:.2f}")
            # Without the workers' start-up (a fresh interpreter importing the kernel and
            # Optuna): first trial's start to last trial's end, what a long study sees.
            trials = out.study.trials
            span = (max(t.datetime_complete for t in trials if t.datetime_complete)
                    - min(t.datetime_start for t in trials if t.datetime_start)).total_seconds()
            steady = len(trials) / span
            print(f"  steady state: {steady:.2f} trials/s, ratio {steady * single / n:.2f}")
    finally:
        os.chdir(ROOT)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
