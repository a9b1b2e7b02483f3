"""A retrained XGBoost version reaches a running session the way SIGHUP applies config:
the model entry's new ``artifact`` replaces the model; its stage is the registry's."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from trader.core.clock import ReplayClock
from trader.engine.config import load_config
from trader.live.session import build_session, reload_models


def test_a_new_artifact_path_replaces_the_model_on_reload(example: dict[str, Any],
                                                          tmp_path: Path) -> None:
    cfg = load_config(example["config"])
    session = build_session(cfg, ReplayClock(), mode="paper", id_prefix="t")
    (old,) = session.engine.pipeline.models
    assert old.artifact.path == example["artifact"]

    newer = tmp_path / "v2"
    shutil.copytree(example["artifact"], newer)  # stands in for the timer's new version
    mc = cfg.models[0]
    moved = mc.model_copy(update={"stage": "paper",
                                  "params": {**mc.params, "artifact": str(newer)}})
    changes = reload_models(session, [moved])
    (new,) = session.engine.pipeline.models
    assert new is not old and new.artifact.path == newer
    assert changes and "params" in changes[0]
    # Unchanged params: the running model (and its warmed-up state) stays.
    assert reload_models(session, [moved]) == [] and session.engine.pipeline.models[0] is new
