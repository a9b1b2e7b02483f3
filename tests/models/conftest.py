"""The small XGBoost example (``tests/harness/ml_example.py``), trained once per session."""

from __future__ import annotations

from typing import Any

import pytest
from ml_example import write_example


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The example trained once: its files, the artifact's metadata."""
    from trader.cli.train import train_model

    folder = tmp_path_factory.mktemp("xgb")
    train_file, config = write_example(folder)
    meta = train_model(train_file, record=False)
    return {"folder": folder, "train": train_file, "config": config,
            "artifact": folder / "artifact", "meta": meta}
