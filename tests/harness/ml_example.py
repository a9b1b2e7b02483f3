"""A small XGBoost example on a slice of the shipped BTC hourly data (tests/models)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BTC_1H = REPO / "data" / "btcusd_1h.parquet"
START, END = "2018-01-01", "2018-06-01"


def write_example(folder: Path, *, features: dict[str, Any] | None = None,
                  data_path: Path = BTC_1H, start: str = START, end: str = END,
                  model_params: dict[str, Any] | None = None,
                  labels: dict[str, Any] | None = None) -> tuple[Path, Path]:
    """A deployment config running model ``xgb`` and its training file; (train, config)."""
    folder.mkdir(parents=True, exist_ok=True)
    feats = features or {"name": "technical", "params": {"slow_timeframe": "1d"}}
    cfg = {
        "name": "xgb-test",
        "data": {"start": start, "end": end},
        "daemon": {"data_dir": str(folder / "var")},
        "execution": {"slippage_bps": 2, "commission_bps": 1},
        "instruments": [{"id": "BTCUSD", "symbol": "BTC/USD", "venue": "COINBASE",
                         "asset_class": "crypto", "lot_step": 0.0001, "min_quantity": 0.0001,
                         "data": {"path": str(data_path), "timeframe": "1h"}}],
        "models": [{"name": "xgb", "model": "XGBoost", "budget": 0.5, "instruments": ["BTCUSD"],
                    "timeframe": "4h",
                    "extra_timeframes": [t for t in [feats.get("params", {}).get(
                        "slow_timeframe")] if t],
                    "params": {"artifact": str(folder / "artifact"), "features": feats,
                               "threshold": 0.5, "cost_bps": 0, "allow_short": True,
                               **(model_params or {})}}],
        "risk": {"asset_class_exposure": {"limits": {"crypto": 1.0}}},
    }
    train = {
        "config": "config.yaml", "model": "xgb", "out": str(folder / "artifact"),
        "start": start, "end": end,
        "labels": {"horizon": 6, "profit_take": 1.5, "stop_loss": 1.5, **(labels or {})},
        "cv": {"scheme": "walk_forward", "folds": 3, "embargo": 2, "calibration_fraction": 0.2},
        "calibration": "platt",
        "xgboost": {"n_estimators": 25, "max_depth": 3, "seed": 3, "nthread": 1},
    }
    (folder / "config.yaml").write_text(yaml.safe_dump(cfg))
    (folder / "train.yaml").write_text(yaml.safe_dump(train))
    return folder / "train.yaml", folder / "config.yaml"
