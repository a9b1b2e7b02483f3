"""Build the mypyc-compiled tree: the wheel built with ``TRADER_COMPILE=1``, unpacked.

The wheel is built by pip from a copy of the sources (so the repository's own
``build/`` is never touched and two builds never share one), in pip's isolated
build environment: setuptools and mypy come from the package index, as on a fresh
machine.  The unpacked wheel is a tree to put first on ``PYTHONPATH``: the
compiled extension modules next to the pure modules of everything else.

    .venv/bin/python bench/compiled.py /tmp/compiled        # then:
    .venv/bin/python bench/replay_throughput.py --compiled /tmp/compiled
"""

from __future__ import annotations

import argparse
import os
import runpy
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What the wheel is built from: the packaging files and the packages.
SOURCES = ["pyproject.toml", "setup.py", "README.md", "build_backend",
           "trader", "gateways", "models", "risk"]


def compiled_modules() -> list[str]:
    """Dotted names of the modules ``setup.py`` compiles (its ``COMPILED_MODULES``)."""
    names = runpy.run_path(str(ROOT / "setup.py"))["COMPILED_MODULES"]
    return [n.removesuffix(".py").replace("/", ".") for n in names]


def build_tree(dest: Path, *, timeout: float = 900) -> Path:
    """Build the compiled wheel and unpack it into ``dest`` (created; must not exist).

    Raises ``subprocess.CalledProcessError`` (with pip's output) if the build fails.
    """
    with tempfile.TemporaryDirectory(prefix="trader-compile-") as tmp:
        src = Path(tmp) / "src"
        src.mkdir()
        ignore = shutil.ignore_patterns("__pycache__", "*.so", "*.pyc")
        for name in SOURCES:
            path = ROOT / name
            if path.is_dir():
                shutil.copytree(path, src / name, ignore=ignore)
            else:
                shutil.copy2(path, src / name)
        wheels = Path(tmp) / "wheels"
        env = {**os.environ, "TRADER_COMPILE": "1"}
        subprocess.run([sys.executable, "-m", "pip", "wheel", str(src), "--no-deps",
                        "--wheel-dir", str(wheels)], env=env, check=True,
                       capture_output=True, text=True, timeout=timeout)
        (wheel,) = wheels.glob("trader_daemon-*.whl")
        dest.mkdir(parents=True)
        with zipfile.ZipFile(wheel) as zf:
            zf.extractall(dest)
    return dest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("dest", type=Path, help="directory to unpack the compiled wheel into")
    args = ap.parse_args()
    try:
        build_tree(args.dest)
    except subprocess.CalledProcessError as exc:
        sys.exit(f"compiled build failed:\n{exc.stdout}\n{exc.stderr}")
    print(f"compiled tree in {args.dest}: PYTHONPATH={args.dest} puts it first")


if __name__ == "__main__":
    main()
