"""Finding user models: a strategies folder, module:Class, and the trader.models entry points."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from models.base import Model
from models.loading import ENTRY_POINT_GROUP, ModelNotFound
from models.registry import model_class
from models.sma_cross import SmaCross

USER_MODEL = textwrap.dedent('''
    from models.base import Model

    class {cls}(Model):
        def on_bar(self, bar):
            return {{bar.instrument_id: 1.0}}

    class NotAModel:
        pass
''')


def write_model(folder: Path, module: str, cls: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{module}.py"
    path.write_text(USER_MODEL.format(cls=cls))
    return path


def install_entry_point(site: Path, name: str, target: str) -> None:
    """A tiny installed distribution: a dist-info with an entry_points.txt, on sys.path."""
    info = site / "tiny_models-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tiny-models\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\n{name} = {target}\n")


def test_shipped_names_win_and_need_no_folder() -> None:
    assert model_class("SmaCross") is SmaCross
    assert model_class("SmaCross", Path("/nonexistent")) is SmaCross


def test_a_class_of_the_strategies_folder_by_bare_name_and_by_file(tmp_path: Path) -> None:
    write_model(tmp_path, "breakout", "Breakout")
    cls = model_class("Breakout", tmp_path)
    assert issubclass(cls, Model) and cls.__name__ == "Breakout"
    assert model_class("breakout:Breakout", tmp_path) is cls  # one import per file
    with pytest.raises(KeyError, match="unknown model class 'Nope'.*strategies|Nope"):
        model_class("Nope", tmp_path)


def test_an_importable_module_class(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_model(tmp_path / "pkg_src", "user_mod_x", "Flat")
    monkeypatch.syspath_prepend(str(tmp_path / "pkg_src"))
    assert model_class("user_mod_x:Flat").__name__ == "Flat"


def test_an_entry_point_of_an_installed_package(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    write_model(tmp_path, "tiny_models_impl", "TinyTrend")
    install_entry_point(tmp_path, "TinyTrend", "tiny_models_impl:TinyTrend")
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = model_class("TinyTrend")
    assert cls.__name__ == "TinyTrend" and cls.__module__ == "tiny_models_impl"


def test_errors_say_what_is_wrong(tmp_path: Path) -> None:
    write_model(tmp_path, "mixed", "Good")
    with pytest.raises(ModelNotFound, match="is not a model class"):
        model_class("mixed:NotAModel", tmp_path)
    with pytest.raises(ModelNotFound, match="has no 'Missing'"):
        model_class("mixed:Missing", tmp_path)
    with pytest.raises(ModelNotFound, match="cannot import module 'no_such_mod_q'"):
        model_class("no_such_mod_q:X", tmp_path)
    (tmp_path / "broken.py").write_text("raise RuntimeError('boom')\n")
    with pytest.raises(ModelNotFound, match=r"broken.py: failed to import: RuntimeError: boom"):
        model_class("broken:X", tmp_path)
    # The message lists the shipped models, so a typo is easy to spot.
    with pytest.raises(KeyError, match="SmaCross"):
        model_class("SmaCros")
