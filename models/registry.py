"""Model classes by the name a config uses for them."""

from __future__ import annotations

from pathlib import Path

from models.base import Model
from models.rules import RULE_MODELS
from models.xgboost import XGBoost

MODEL_CLASSES: dict[str, type[Model]] = {**RULE_MODELS, "XGBoost": XGBoost}


def model_class(name: str, strategies: Path | None = None) -> type[Model]:
    """The model class a config names: shipped, an entry point, ``module:Class`` or a class
    of the ``strategies`` folder (``models.loading``); ``KeyError`` says what was tried."""
    from models.loading import load_model_class

    return load_model_class(name, MODEL_CLASSES, strategies)
