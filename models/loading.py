"""Finding a model class by the name a config gives it.

A config's ``model`` is resolved, in this order:

1. a shipped model (``models.registry.MODEL_CLASSES``), e.g. ``SmaCross``;
2. a model a package registers in the ``trader.models`` entry point group
   (``[project.entry-points."trader.models"] MyTrend = "mypkg.trend:MyTrend"``);
3. ``module:Class``: an importable module, or a ``module.py`` file in the
   config's ``strategies`` folder;
4. a bare ``Class`` defined in one of the ``*.py`` files of the strategies folder.

Whatever the source, the class must derive from ``models.base.Model``.  Regime
classifiers (``models.regimes``) are found the same way, in their own entry point
group and with their own base class: ``load_model_class(..., kind=REGIME_KIND)``.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import sys
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType

from models.base import Model

ENTRY_POINT_GROUP = "trader.models"
# Files of a strategies folder are imported under this package prefix, so two
# folders' ``trend.py`` never collide with each other or with installed modules.
_PREFIX = "trader_strategies"


class ModelNotFound(KeyError):
    """No model class answers to a name; ``args[0]`` is a message for the operator."""


@dataclass(frozen=True)
class PluginKind:
    """What is being loaded: its base class, entry point group and name in messages."""

    base: type
    group: str
    noun: str  # "model", "regime"


MODEL_KIND = PluginKind(Model, ENTRY_POINT_GROUP, "model")


def _check(cls: object, where: str, kind: PluginKind = MODEL_KIND) -> type:
    if not (isinstance(cls, type) and issubclass(cls, kind.base)):
        base = f"{kind.base.__module__}.{kind.base.__qualname__}"
        raise ModelNotFound(f"{where} is not a {kind.noun} class (a subclass of {base})")
    return cls


def _entry_point(name: str, kind: PluginKind = MODEL_KIND) -> type | None:
    for ep in entry_points(group=kind.group):
        if ep.name == name:
            try:
                cls = ep.load()
            except Exception as exc:  # a broken plug-in must name itself, not crash
                raise ModelNotFound(f"entry point {kind.group}:{name} ({ep.value}) "
                                    f"failed to load: {exc}") from None
            return _check(cls, f"entry point {kind.group}:{name} ({ep.value})", kind)
    return None


def entry_point_names(group: str = ENTRY_POINT_GROUP) -> list[str]:
    """Model (or, with ``group``, other plug-in) names registered by installed packages."""
    return sorted({ep.name for ep in entry_points(group=group)})


def _file_module(path: Path) -> ModuleType:
    """Import one strategy file (once per path)."""
    folder = hashlib.sha1(str(path.parent.resolve()).encode()).hexdigest()[:10]
    key = f"{_PREFIX}.f{folder}.{path.stem}"
    mod = sys.modules.get(key)
    if mod is not None:
        return mod
    spec = importlib.util.spec_from_file_location(key, path)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    try:
        spec.loader.exec_module(mod)
    except Exception as exc:
        del sys.modules[key]
        raise ModelNotFound(f"{path}: failed to import: {type(exc).__name__}: {exc}") from None
    return mod


def _module_class(spec: str, strategies: Path | None, kind: PluginKind = MODEL_KIND) -> type:
    module_name, _, cls_name = spec.partition(":")
    if not module_name or not cls_name:
        raise ModelNotFound(f"{spec!r}: expected module:Class")
    file = strategies / f"{module_name}.py" if strategies is not None else None
    if file is not None and file.is_file():
        mod = _file_module(file)
    else:
        try:
            mod = importlib.import_module(module_name)
        except ImportError as exc:
            where = f" (nor {file})" if file is not None else ""
            raise ModelNotFound(f"{kind.noun} {spec!r}: cannot import module {module_name!r}"
                                f"{where}: {exc}") from None
    cls = getattr(mod, cls_name, None)
    if cls is None:
        raise ModelNotFound(f"{kind.noun} {spec!r}: module {module_name!r} has no {cls_name!r}")
    return _check(cls, f"{kind.noun} {spec!r}", kind)


def _folder_class(name: str, strategies: Path, kind: PluginKind = MODEL_KIND) -> type | None:
    found = []
    for path in sorted(strategies.glob("*.py")):
        if path.name.startswith(("_", "test_")):
            continue
        cls = getattr(_file_module(path), name, None)
        if cls is not None:
            found.append((path, cls))
    if len(found) > 1:
        raise ModelNotFound(f"{kind.noun} {name!r} is defined in several strategy files "
                            f"({', '.join(str(p) for p, _ in found)}); name one as file:Class")
    return _check(found[0][1], f"{found[0][0]}:{name}", kind) if found else None


def load_model_class(name: str, shipped: dict[str, type], strategies: Path | None = None,
                     *, kind: PluginKind = MODEL_KIND) -> type:
    """The class a config's ``model`` (or, with ``kind``, a regime's ``kind``) names;
    ``ModelNotFound`` says what was tried."""
    cls = shipped.get(name)
    if cls is not None:
        return cls
    cls = _entry_point(name, kind)
    if cls is not None:
        return cls
    if ":" in name:
        return _module_class(name, strategies, kind)
    if strategies is not None and strategies.is_dir():
        cls = _folder_class(name, strategies, kind)
        if cls is not None:
            return cls
    folder = f", classes in {strategies}/*.py" if strategies is not None else ""
    raise ModelNotFound(
        f"unknown {kind.noun} class {name!r}; known: {sorted(shipped)}, entry points "
        f"{entry_point_names(kind.group)}{folder}, or module:Class"
    )
