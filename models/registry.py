"""Model classes by the name a config uses for them."""

from __future__ import annotations

from models.base import Model
from models.rules import RULE_MODELS
from models.xgboost import XGBoost

MODEL_CLASSES: dict[str, type[Model]] = {**RULE_MODELS, "XGBoost": XGBoost}


def model_class(name: str) -> type[Model]:
    """The model class registered under ``name``; ``KeyError`` lists the known ones."""
    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise KeyError(
            f"unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}"
        ) from None
