"""The mypyc-compiled build (``TRADER_COMPILE=1``) against the pure-Python reference.

The compiled wheel is built once per session (``bench.compiled.build_tree``: pip, an
isolated build environment, mypy from the package index) and unpacked into a tree
that goes first on ``PYTHONPATH``.  Each shipped backtest config then runs as a
subprocess on the compiled tree and on the pure one, and every file of the two out
directories must be byte-identical: the pure modules are the reference.  The
outputs hold neither wall-clock times nor paths (the two runs write to different
directories), so nothing is masked.  Without the compiler the tests skip locally
and fail in CI (``CI=true``), so a broken build can never pass as green.
"""

from __future__ import annotations

import fcntl
import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from bench.compiled import build_tree, compiled_modules

ROOT = Path(__file__).resolve().parents[2]
CONFIGS = ["backtest", "sma", "regimes", "overlays"]
# The backend's hooks that must run setup.py as a pure build whatever TRADER_COMPILE says.
PURE_HOOKS = ("prepare_metadata_for_build_wheel", "get_requires_for_build_editable",
              "prepare_metadata_for_build_editable", "build_editable")

# Runs the CLI like the ``trader`` script, then records where the compiled
# modules were imported from (the file named by argv[1]) whatever the exit.
RUNNER = """
import json, sys
modules, report = json.loads(sys.argv[1]), sys.argv[2]
sys.argv = ["trader", *sys.argv[3:]]
try:
    from trader.cli import main
    main()
finally:
    with open(report, "w") as fh:
        json.dump({m: sys.modules[m].__file__ for m in modules if m in sys.modules}, fh)
"""


def _unavailable(reason: str) -> None:
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"the compiled build is required in CI but failed: {reason}")
    pytest.skip(f"compiled build unavailable: {reason}")


@pytest.fixture(scope="session")
def compiled_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The unpacked compiled wheel, built once for all xdist workers of this session."""
    base = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        base = base.parent  # shared by the workers of this session (and only them)
    tree = base / "compiled-tree"
    with open(base / "compiled-tree.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # one worker builds; the others wait and reuse
        if not (tree / "trader").is_dir():
            try:
                build_tree(tree)
            except subprocess.CalledProcessError as exc:
                _unavailable(f"pip wheel exited {exc.returncode}:\n{exc.stdout}\n{exc.stderr}")
            except (OSError, subprocess.TimeoutExpired) as exc:
                _unavailable(repr(exc))
    return tree


def _backtest(config: str, pythonpath: Path, work: Path) -> tuple[Path, dict[str, str]]:
    """Run ``trader backtest`` on a shipped config; its out dir and the modules' files."""
    work.mkdir()
    out, report = work / "out", work / "modules.json"
    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(pythonpath),
           "TRADER_DATA_DIR": str(work / "data")}
    env.pop("TRADER_DATABASE_URL", None)
    r = subprocess.run([sys.executable, "-c", RUNNER, json.dumps(compiled_modules()),
                        str(report), "backtest", str(ROOT / "config" / f"{config}.yaml"),
                        "--out", str(out), "--no-progress"],
                       env=env, cwd=work, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    return out, json.loads(report.read_text())


@pytest.mark.parametrize("config", CONFIGS)
def test_compiled_backtest_reports_are_byte_identical(
    config: str, compiled_tree: Path, tmp_path: Path
) -> None:
    compiled_out, compiled_files = _backtest(config, compiled_tree, tmp_path / "compiled")
    pure_out, pure_files = _backtest(config, ROOT, tmp_path / "pure")

    # Each run really ran its own build: every compiled module it imported is an
    # extension module in one and a source file in the other.
    assert "trader.core.kernel" in compiled_files
    assert set(compiled_files) == set(pure_files)
    for name, path in compiled_files.items():
        assert path.endswith(".so") and path.startswith(str(compiled_tree)), (name, path)
    for name, path in pure_files.items():
        assert path.endswith(".py") and path.startswith(str(ROOT)), (name, path)

    names = sorted(p.name for p in pure_out.iterdir())
    assert {"metrics.json", "trades.csv", "equity.csv", "report.html"} <= set(names)
    assert sorted(p.name for p in compiled_out.iterdir()) == names
    for name in names:
        assert (compiled_out / name).read_bytes() == (pure_out / name).read_bytes(), name


def test_every_listed_module_is_compiled(compiled_tree: Path) -> None:
    for name in compiled_modules():
        folder = compiled_tree.joinpath(*name.split(".")[:-1])
        stem = name.rsplit(".", 1)[-1]
        assert list(folder.glob(f"{stem}.*.so")), f"{name} has no extension module"
        assert (folder / f"{stem}.py").is_file()  # the source ships next to it


def _backend(monkeypatch: pytest.MonkeyPatch) -> tuple[ModuleType, list[str | None]]:
    """The in-tree backend with setuptools' hooks replaced by recorders of TRADER_COMPILE."""
    spec = importlib.util.spec_from_file_location(
        "trader_build", ROOT / "build_backend" / "trader_build.py")
    assert spec is not None and spec.loader is not None
    backend = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(backend)
    seen: list[str | None] = []

    def record(*_args: object) -> list[str]:
        seen.append(os.environ.get("TRADER_COMPILE"))
        return ["setuptools>=68"]

    for hook in PURE_HOOKS + ("get_requires_for_build_wheel",):
        monkeypatch.setattr(backend._setuptools, hook, record)
    return backend, seen


@pytest.mark.parametrize(("value", "mypy"), [("1", True), ("", False), ("0", False)])
def test_only_trader_compile_1_asks_for_mypy(
    value: str, mypy: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    backend, seen = _backend(monkeypatch)
    monkeypatch.setenv("TRADER_COMPILE", value)
    reqs = backend.get_requires_for_build_wheel()
    assert (backend.MYPYC_REQUIREMENT in reqs) is mypy
    assert seen == [None]  # setuptools runs setup.py before mypy can be there
    assert os.environ["TRADER_COMPILE"] == value  # restored for the build itself


@pytest.mark.parametrize("hook", PURE_HOOKS)
def test_only_the_wheel_build_compiles(hook: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Metadata needs no mypyc; an editable install never compiles."""
    backend, seen = _backend(monkeypatch)
    monkeypatch.setenv("TRADER_COMPILE", "1")
    getattr(backend, hook)("wheels")
    assert seen == [None]
    assert os.environ["TRADER_COMPILE"] == "1"
