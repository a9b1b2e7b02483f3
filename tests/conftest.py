"""Test-wide set-up: the shared harness (``tests/harness``) is importable from every test."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "harness"))
