"""Model classes by the name a config uses for them."""

from __future__ import annotations

from models.base import Model
from models.sma_cross import SmaCross

MODEL_CLASSES: dict[str, type[Model]] = {
    "SmaCross": SmaCross,
}


def model_class(name: str) -> type[Model]:
    try:
        return MODEL_CLASSES[name]
    except KeyError:
        raise KeyError(
            f"unknown model class {name!r}; known: {sorted(MODEL_CLASSES)}"
        ) from None
