"""A folder laid out like a clone (config/, data/) with small configs over the shipped
sample data, for the optimisation and tracking tests, and ``trader`` run as a user does."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
TRADER = [sys.executable, "-m", "trader.cli"]

# SmaCross on two years of QQQ daily bars: a trial replays ~500 bars.
BASE = """\
name: sma-small
data: {start: "2016-01-01", end: "2018-01-01"}
instruments:
  - {id: QQQ, symbol: QQQ, venue: NASDAQ, asset_class: equity, lot_step: 1, min_quantity: 1,
     data: {path: data/qqq_1d.parquet, timeframe: 1d}}
models:
  - {name: qqq_sma, model: SmaCross, budget: 0.9, instruments: [QQQ], timeframe: 1d,
     params: {fast: 10, slow: 50}}
risk:
  price: {stale_bars: 5}
  instrument_exposure: {limit: 1.0, on_breach: scale}
"""

# BTC/USD hourly bars for a year: slower trials (~20k bars), for interruption tests.
SLOW_BASE = """\
name: btc-slow
data: {start: "2017-06-01", end: "2018-06-01"}
instruments:
  - {id: BTCUSD, symbol: BTC/USD, venue: COINBASE, asset_class: crypto, lot_step: 0.0001,
     min_quantity: 0.0001, data: {path: data/btcusd_1h.parquet, timeframe: 1h}}
models:
  - {name: btc_sma, model: SmaCross, budget: 0.5, instruments: [BTCUSD], timeframe: 1h,
     params: {fast: 10, slow: 50}}
"""


def make_clone(tmp_path: Path) -> Path:
    """A working directory with config/ and data/ as shipped, plus the tests' configs."""
    for d in ("config", "data"):
        shutil.copytree(REPO / d, tmp_path / d)
    (tmp_path / "config" / "small.yaml").write_text(BASE)
    (tmp_path / "config" / "slow.yaml").write_text(SLOW_BASE)
    return tmp_path


def write_experiment(clone: Path, name: str, body: str) -> Path:
    path = clone / "config" / "experiments" / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(body)
    return path


def trader(args: list[str], cwd: Path, timeout: float = 300,
           env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    """``trader ARGS`` in ``cwd`` as a user runs it (the environment's own variables kept)."""
    full = {k: v for k, v in os.environ.items()
            if k not in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL", "MLFLOW_TRACKING_URI",
                         "TRADER_OPTIMIZE_STORAGE")}
    full.update(env or {})
    return subprocess.run([*TRADER, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=full)
