"""Test-wide set-up: the shared harness (``tests/harness``) is importable from every test;
the small XGBoost example (``tests/harness/ml_example.py``) is trained once per session."""

import sys
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))


@pytest.fixture(scope="session")
def example(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The XGBoost example trained once: its files and the artifact's metadata."""
    from ml_example import write_example

    from trader.cli.train import train_model

    folder = tmp_path_factory.mktemp("xgb")
    train_file, config = write_example(folder)
    meta = train_model(train_file, record=False)
    return {"folder": folder, "train": train_file, "config": config,
            "artifact": folder / "artifact", "meta": meta}
