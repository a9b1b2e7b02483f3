"""Optimisation fixtures: a clone-like folder with small configs (tests/harness)."""

from __future__ import annotations

from pathlib import Path

import pytest
from optimize_clone import make_clone


@pytest.fixture()
def clone(tmp_path: Path) -> Path:
    return make_clone(tmp_path)
