"""Run records: the digest of a run's config and its metrics as storable JSON."""

from __future__ import annotations

import hashlib
import math
from typing import Any


def config_hash(cfg: Any) -> str:
    """A stable digest of a validated config (which models, which data, which settings)."""
    text = cfg.model_dump_json(exclude={"store"}) if hasattr(cfg, "model_dump_json") else str(cfg)
    return hashlib.sha256(text.encode()).hexdigest()


def json_safe(value: Any) -> Any:
    """Metrics as JSON both backends accept: no NaN or infinity."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value
