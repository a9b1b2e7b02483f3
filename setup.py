"""Optional mypyc build: ``TRADER_COMPILE=1`` compiles the replay's hot modules into the wheel.

Everything else about the package is declared in ``pyproject.toml``.  Without the
variable (the default, and always for editable installs: see
``build_backend/trader_build.py``) the wheel is pure Python.  The pure modules stay
the reference: the compiled ones are built from the very same files, and
``tests/trader/test_compiled.py`` checks that both give byte-identical reports.
"""

from __future__ import annotations

import os
import sys

# The modules on the per-bar and per-fill path of a backtest, compiled as one group
# (calls between them then skip the Python calling convention).  The only list.
COMPILED_MODULES = [
    "trader/core/bus.py",
    "trader/core/clock.py",
    "trader/core/kernel.py",
    "trader/data/feed.py",
    "trader/engine/aggregator.py",
    "trader/engine/allocator.py",
    "trader/engine/exits.py",
    "trader/engine/financing.py",
    "trader/engine/orders.py",
    "trader/engine/pipeline.py",
    "trader/engine/planner.py",
    "trader/engine/portfolio.py",
    "trader/engine/overlays.py",
    "trader/engine/recorder.py",
    "trader/engine/regime.py",
    "trader/engine/router.py",
    "trader/replay/observers.py",
    "gateways/sim.py",
    "models/sma_cross.py",
    "risk/checks.py",
    "risk/drawdown.py",
    "risk/engine.py",
]

# Options for mypyc, which type-checks the modules (and what they import) first.
MYPYC_OPTIONS = ["--ignore-missing-imports", "--follow-imports=silent"]


if __name__ == "__main__":  # run by the build backend; imported for the list by bench/tests
    from setuptools import setup

    # The backend (which pip has already imported from there) decides, in one place.
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "build_backend"))
    from trader_build import compile_requested

    ext_modules = []
    if compile_requested():
        from mypyc.build import mypycify  # only needed (and only installed) for this build

        ext_modules = mypycify(MYPYC_OPTIONS + COMPILED_MODULES, opt_level="3")
    setup(ext_modules=ext_modules)
