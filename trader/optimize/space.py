"""Parameter spaces over config paths: set a value at ``models.<name>.params.fast``.

A path is dotted keys into the config's YAML; inside a list (``models``,
``instruments``) a segment names an item by its ``name`` or ``id``, or by its index.
Values are set on a copy of the parsed YAML, which is then validated exactly as a
config file is (``trader.engine.config.config_from_dict``).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import TYPE_CHECKING, Any

from trader.engine.config import AppConfig, config_from_dict

if TYPE_CHECKING:
    import optuna

    from trader.optimize.experiment import Param


class SpaceError(Exception):
    """A config path that names nothing in the config."""


def _item(items: list[Any], key: str, where: str) -> Any:
    for it in items:
        if isinstance(it, dict) and key in (it.get("name"), it.get("id")):
            return it
    if key.isdigit() and int(key) < len(items):
        return items[int(key)]
    names = [str(it.get("name") or it.get("id")) for it in items if isinstance(it, dict)]
    raise SpaceError(f"{where}: no item named {key!r} (there are: {', '.join(names)})")


def set_path(raw: dict[str, Any], path: str, value: Any) -> None:
    """Set ``value`` at the dotted ``path`` of ``raw`` in place (missing mappings are made)."""
    parts = path.split(".")
    node: Any = raw
    for i, key in enumerate(parts[:-1]):
        where = ".".join(parts[: i + 1])
        if isinstance(node, list):
            node = _item(node, key, ".".join(parts[:i]) or path)
            continue
        nxt = node.get(key)
        if nxt is None:
            nxt = node[key] = {}
        if not isinstance(nxt, dict | list):
            raise SpaceError(f"{where} is a value ({nxt!r}), not a section")
        node = nxt
    last = parts[-1]
    if isinstance(node, list):
        target = _item(node, last, ".".join(parts[:-1]))
        raise SpaceError(f"{path} names a whole list item ({target!r}); name a key inside it")
    node[last] = value


def apply_params(raw: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``raw`` with every ``path: value`` of ``values`` set."""
    out = copy.deepcopy(raw)
    for path, value in values.items():
        set_path(out, path, value)
    return out


def validate_variant(raw: dict[str, Any], config_path: Path) -> AppConfig:
    """A varied config, validated as the file at ``config_path`` would be."""
    return config_from_dict(raw, config_path)


def suggest(trial: optuna.Trial, params: dict[str, Param]) -> dict[str, Any]:
    """One trial's values: each parameter sampled in order, conditional ones only when due."""
    values: dict[str, Any] = {}
    for path, p in params.items():
        if p.when and any(values.get(k, _MISSING) != v for k, v in p.when.items()):
            continue
        if p.type == "categorical":
            values[path] = trial.suggest_categorical(path, p.choices or [])
        elif p.type == "int":
            assert p.low is not None and p.high is not None
            values[path] = trial.suggest_int(path, int(p.low), int(p.high),
                                             step=int(p.step or 1), log=p.log)
        else:
            assert p.low is not None and p.high is not None
            values[path] = trial.suggest_float(path, p.low, p.high, step=p.step, log=p.log)
    return values


_MISSING = object()
