"""Replay cost in CPU instructions: the kernel against the plain loop, whatever the load.

``bench/replay_throughput.py`` times the kernel against a plain-Python loop of the
same crossover; on a shared machine those times move by tens of percent between
runs.  This runs the same two (and, with ``--compiled DIR``, the mypyc-compiled
kernel) under valgrind's callgrind, which counts the instructions executed: the
same program on the same bars gives the same count however busy the machine is,
so a change of a few percent to the kernel shows as such.  Counting covers only
the replay loop: from ``gc.freeze()`` to ``gc.unfreeze()``, which ``Kernel.run``
calls around its loop and the floor here calls around its own (callgrind's
``--zero-before`` and ``--dump-before``), so imports and the engine's build are not
counted; each runs twice in its process and the second (warm) run is counted, as the
timed benchmark keeps its warm runs.  Instructions are not time (a dictionary lookup
that misses the cache costs more than its count, and the kernel's ratio in
instructions is about half its ratio in time): this is for comparing versions of the
kernel, the timed ratio stays the headline.

It prints instructions per bar of each and their ratio to the floor's, and with
``--profile`` the functions that execute the most instructions in the compiled kernel
(its C functions have names callgrind can collect in; the pure kernel's time is all
in the interpreter's loop).

    .venv/bin/python bench/replay_instructions.py                      # 50,000 bars
    .venv/bin/python bench/replay_instructions.py --compiled /tmp/compiled --profile

valgrind must be installed (Debian: ``apt-get install valgrind``); each run takes
about a minute (the imports, under valgrind).
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

KERNEL_RUN = "CPyDef_kernel___Kernel___run"  # mypyc's C name of Kernel.run
CALLGRIND = ["valgrind", "--tool=callgrind", "--zero-before=gc_freeze*",
             "--dump-before=gc_unfreeze*"]


def floor_counted(path: Path) -> None:
    """The plain loop of ``replay_throughput``, twice, each between the markers."""
    import gc

    from bench.replay_throughput import run_floor

    for _ in range(2):
        gc.freeze()
        try:
            run_floor(path)
        finally:
            gc.unfreeze()


def kernel_counted(path: Path, tree: Path | None) -> None:
    """Two backtests of the kernel (``Kernel.run`` brackets its loop with the markers)."""
    from bench.replay_throughput import run_kernel  # puts the repository first on sys.path

    if tree is not None:
        sys.path.insert(0, str(tree))  # ahead of the repository's pure modules
    for _ in range(2):
        run_kernel(path)
    if tree is not None:
        import trader.core.kernel

        assert trader.core.kernel.__file__.endswith(".so"), trader.core.kernel.__file__


def count(what: str, path: Path, tree: Path | None, out: Path) -> int:
    """Instructions of the replay loop of ``what`` (floor or kernel), run under callgrind."""
    args = [sys.executable, __file__, "--child", what, str(path)]
    if tree is not None:
        args += ["--tree", str(tree)]
    run = subprocess.run([*CALLGRIND, f"--callgrind-out-file={out}", *args],
                         capture_output=True, text=True)
    if run.returncode:
        raise SystemExit(f"{what} under callgrind failed:\n{run.stderr[-2000:]}")
    # A dump at each gc.unfreeze: the second run's loop, warm (the first run pays what
    # loads lazily, as the timed benchmark's first run does).
    dump = Path(f"{out}.2")
    if not dump.exists():
        raise SystemExit(f"{what}: callgrind wrote no dump at gc.unfreeze (is this CPython?)")
    match = re.search(r"^summary: (\d+)", dump.read_text(errors="replace"), re.M)
    if match is None:
        raise SystemExit(f"{dump}: no summary line")
    return int(match.group(1))


def top_functions(dump: Path, n: int) -> list[tuple[int, str]]:
    """The ``n`` functions with the most instructions of their own (callgrind_annotate).

    A function whose code comes from several source files (inlined headers) is listed
    once per file by callgrind_annotate: those lines are added up under its name.
    """
    text = subprocess.run(["callgrind_annotate", "--auto=no", str(dump)],
                          capture_output=True, text=True, check=True).stdout
    own: dict[str, int] = {}
    for line in text.splitlines():
        m = re.match(r"\s*([\d,]+) \(\s*[\d.]+%\)\s+(\S.*)$", line)
        if m and "PROGRAM TOTALS" not in line:
            name = re.sub(r"\s*\[.*\]$", "", m.group(2)).split(":")[-1]
            own[name] = own.get(name, 0) + int(m.group(1).replace(",", ""))
    return sorted(((v, k) for k, v in own.items()), reverse=True)[:n]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--bars", type=int, default=50_000)
    ap.add_argument("--compiled", type=Path, metavar="DIR",
                    help="also count the compiled tree in DIR (bench/compiled.py builds it)")
    ap.add_argument("--profile", action="store_true",
                    help="with --compiled: the compiled kernel's 20 costliest functions")
    ap.add_argument("--child", nargs=2, metavar=("WHAT", "PATH"), help=argparse.SUPPRESS)
    ap.add_argument("--tree", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        what, path = args.child
        if what == "floor":
            floor_counted(Path(path))
        else:
            kernel_counted(Path(path), args.tree)
        return
    if shutil.which("valgrind") is None:
        raise SystemExit("valgrind is not installed (Debian: apt-get install valgrind)")
    from bench.replay_throughput import make_bars

    with tempfile.TemporaryDirectory(prefix="replay-instructions-") as name:
        tmp = Path(name)
        bars = tmp / "bars.parquet"
        make_bars(bars, args.bars)
        runs: dict[str, Path | None] = {"floor": None, "kernel": None}
        if args.compiled:
            runs["kernel, compiled"] = args.compiled.resolve()
        counts = {}
        for label, tree in runs.items():
            what = "floor" if label == "floor" else "kernel"
            counts[label] = count(what, bars, tree, tmp / f"{what}{len(counts)}.out")
        print(f"replay loop instructions, SmaCross 10/30 on {args.bars:,} one-minute bars "
              "(callgrind; the same count on a busy machine)")
        floor = counts["floor"]
        for label, n in counts.items():
            print(f"{label:<18}{n / args.bars:>10,.0f} instructions/bar{n / floor:>8.1f}x floor")
        if args.profile and args.compiled:
            # Per-function figures need callgrind to collect inside one function (the
            # markers above zero and dump the whole stack): the compiled Kernel.run.
            out = tmp / "profile.out"
            subprocess.run(["valgrind", "--tool=callgrind", "--collect-atstart=no",
                            f"--toggle-collect={KERNEL_RUN}", f"--callgrind-out-file={out}",
                            sys.executable, __file__, "--child", "kernel", str(bars),
                            "--tree", str(args.compiled.resolve())],
                           capture_output=True, check=True)
            print("\ncostliest functions of the compiled kernel, own instructions per bar:")
            for n, fn in top_functions(out, 20):
                print(f"{n / (2 * args.bars):>10,.0f}  {fn}")  # the child runs twice

if __name__ == "__main__":
    main()
