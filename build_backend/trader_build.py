"""In-tree build backend: setuptools, plus mypy only for a compiled wheel.

``pip install .`` / ``pip wheel .`` with ``TRADER_COMPILE=1`` then fetch mypy (which
ships mypyc) into the isolated build environment; a plain build does not need it.
An editable install is always pure Python, whatever the environment says: a
compiled module would shadow the developer's edits to its source.
"""

from __future__ import annotations

import os

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 -- every hook not overridden below

# The mypy that ships the mypyc used for the compiled wheel.
MYPYC_REQUIREMENT = "mypy>=1.10"


def _compile() -> bool:
    return os.environ.get("TRADER_COMPILE", "") == "1"


def get_requires_for_build_wheel(config_settings=None):  # noqa: ANN001 -- PEP 517 hook
    """setuptools' build requirements, plus mypy when a compiled wheel is asked for."""
    compile_ = _compile()
    # setuptools runs setup.py to collect its requirements, before mypy is there.
    saved = os.environ.pop("TRADER_COMPILE", None)
    try:
        reqs = _setuptools.get_requires_for_build_wheel(config_settings)
    finally:
        if saved is not None:
            os.environ["TRADER_COMPILE"] = saved
    return [*reqs, MYPYC_REQUIREMENT] if compile_ else reqs


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001
    """The editable wheel, always pure Python (``TRADER_COMPILE`` ignored)."""
    os.environ.pop("TRADER_COMPILE", None)
    return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
