"""Model classes by the name a config uses for them."""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from models.base import Model
from models.rules import RULE_MODELS


class ShippedModels(dict[str, Any]):
    """Name -> model class.  A class whose module is heavy is held as ``"module:Class"``
    and imported on first lookup: validating a config of rule models (``trader status``,
    the daemon's start) must not load numpy and xgboost for a model it does not use."""

    def __getitem__(self, name: str) -> type[Model]:
        value = super().__getitem__(name)
        if isinstance(value, str):
            module, _, attr = value.partition(":")
            value = getattr(importlib.import_module(module), attr)
            self[name] = value
        return value

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[name] if name in self else default

    def values(self) -> Iterator[type[Model]]:  # type: ignore[override]
        return (self[name] for name in list(self))

    def items(self) -> Iterator[tuple[str, type[Model]]]:  # type: ignore[override]
        return ((name, self[name]) for name in list(self))


MODEL_CLASSES: ShippedModels = ShippedModels({**RULE_MODELS, "XGBoost": "models.xgboost:XGBoost"})


def model_class(name: str, strategies: Path | None = None) -> type[Model]:
    """The model class a config names: shipped, an entry point, ``module:Class`` or a class
    of the ``strategies`` folder (``models.loading``); ``KeyError`` says what was tried."""
    from models.loading import load_model_class

    return load_model_class(name, MODEL_CLASSES, strategies)
