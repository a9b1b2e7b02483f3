"""The XGBoost model's cost per bar, against SmaCross on the same bars in the same process,
and the training time of the shipped example (config/btc_xgb.train.yaml).

    .venv/bin/python bench/xgboost_model.py

Both models see the bars the replay kernel hands the XGBoost model (BTC/USD 4-hour
decisions, daily slow bars); the figures are per decision bar, best of three passes.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _per_bar(make, bars, decisions: int, passes: int = 3) -> float:
    best = float("inf")
    for _ in range(passes):
        model = make()
        on_bar = model.on_bar
        t0 = time.perf_counter()
        for bar in bars:
            on_bar(bar)
        best = min(best, time.perf_counter() - t0)
    return best / decisions


def main() -> None:
    from models.ml.features import FeatureEngine
    from models.sma_cross import SmaCross
    from models.xgboost import XGBoost
    from trader.cli.train import kernel_bars, model_entry, train_model
    from trader.engine.config import load_config

    train_file = ROOT / "config" / "btc_xgb.train.yaml"
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "artifact"
        t0 = time.perf_counter()
        train_model(train_file, out=out, record=False)
        train_s = time.perf_counter() - t0

        cfg, mc = model_entry(load_config(ROOT / "config" / "btc_xgb.yaml"), "btc_xgb", "bench")
        cfg = cfg.model_copy(update={"data": cfg.data.model_copy(update={"start": None})})
        params = {**mc.params, "artifact": str(out)}
        xgb = XGBoost(mc.name, mc.instruments, mc.timeframe, params)
        bars = kernel_bars(cfg, mc, tuple(tf for _, tf in xgb.subscriptions()))
        decision = [b for b in bars if b.timeframe == xgb.timeframe]
        n = len(decision)
        x = _per_bar(lambda: XGBoost(mc.name, mc.instruments, mc.timeframe, params), bars, n)
        f = _per_bar(lambda: FeatureEngine(xgb.params.features, xgb.timeframe), bars, n)
        s = _per_bar(lambda: SmaCross("sma", mc.instruments, mc.timeframe,
                                      {"fast": 10, "slow": 30}), decision, n)
    print(f"training the shipped example (4 folds + final, OOS replay): {train_s:.2f} s")
    print(f"decision bars: {n:,} ({len(bars) - n:,} slow bars also fed to XGBoost)")
    print(f"XGBoost.on_bar:  {x * 1e6:8.1f} us per decision bar (features + booster + rule)")
    print(f"  of which features (FeatureEngine.on_bar): {f * 1e6:8.1f} us")
    print(f"SmaCross.on_bar: {s * 1e6:8.1f} us per decision bar")
    print(f"ratio: {x / s:,.0f}x SmaCross")


if __name__ == "__main__":
    main()
