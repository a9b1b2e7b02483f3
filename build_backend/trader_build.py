"""In-tree build backend: setuptools, plus mypy only for a compiled wheel.

``pip install .`` / ``pip wheel .`` with ``TRADER_COMPILE=1`` then fetch mypy (which
ships mypyc) into the isolated build environment; a plain build does not need it.
Only ``build_wheel`` compiles: every other hook runs setup.py with the variable
hidden (requirements are collected before mypy is installed, and metadata does not
depend on it).  An editable install is always pure Python, whatever the environment
says: a compiled module would shadow the developer's edits to its source.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403 -- every hook not overridden below

# The mypy that ships the mypyc used for the compiled wheel.
MYPYC_REQUIREMENT = "mypy>=1.10"


def compile_requested() -> bool:
    """True when the environment asks for the compiled build (``TRADER_COMPILE=1``)."""
    return os.environ.get("TRADER_COMPILE", "") == "1"


@contextmanager
def _pure() -> Iterator[None]:
    """setup.py runs as a pure build inside this block; the variable is restored after."""
    saved = os.environ.pop("TRADER_COMPILE", None)
    try:
        yield
    finally:
        if saved is not None:
            os.environ["TRADER_COMPILE"] = saved


def get_requires_for_build_wheel(config_settings=None):  # noqa: ANN001 -- PEP 517 hook
    """setuptools' build requirements, plus mypy when a compiled wheel is asked for."""
    compile_ = compile_requested()
    with _pure():
        reqs = _setuptools.get_requires_for_build_wheel(config_settings)
    return [*reqs, MYPYC_REQUIREMENT] if compile_ else reqs


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):  # noqa: ANN001
    """The wheel's metadata (the same either way: no need to run mypyc for it)."""
    with _pure():
        return _setuptools.prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def get_requires_for_build_editable(config_settings=None):  # noqa: ANN001
    """setuptools' requirements for an editable install (which never compiles)."""
    with _pure():
        return _setuptools.get_requires_for_build_editable(config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):  # noqa: ANN001
    """The editable install's metadata, pure."""
    with _pure():
        return _setuptools.prepare_metadata_for_build_editable(metadata_directory,
                                                               config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):  # noqa: ANN001
    """The editable wheel, always pure Python (``TRADER_COMPILE`` ignored)."""
    with _pure():
        return _setuptools.build_editable(wheel_directory, config_settings, metadata_directory)
