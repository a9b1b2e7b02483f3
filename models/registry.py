"""Model classes by the name a config uses for them."""

from __future__ import annotations

from models.base import Model
from models.crypto_momentum import CryptoMomentum
from models.equity_trend import EquityTrend
from models.index_mean_reversion import IndexMeanReversion
from models.sma_cross import SmaCross
from models.xgboost import XGBoost

MODEL_CLASSES: dict[str, type[Model]] = {
    "SmaCross": SmaCross,
    "EquityTrend": EquityTrend,
    "IndexMeanReversion": IndexMeanReversion,
    "CryptoMomentum": CryptoMomentum,
    "XGBoost": XGBoost,
}


def model_class(name: str) -> type[Model]:
    """The model class registered under ``name``; ``KeyError`` lists the known ones."""
    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise KeyError(
            f"unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}"
        ) from None
