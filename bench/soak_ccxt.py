"""Soak the live daemon against an exchange stand-in with random faults (issue 10).

    python -m bench.soak_ccxt --minutes 60 --seed 42

Pushes ``--minutes`` one-minute candles of venue time (time compressed) to a live
``trader run`` trading through the real ccxt gateway, injects faults from a seeded
RNG, then checks that the kernel's orders, fills, positions and journal bars equal
the stand-in's record and prints the counts.  Exit 1 on a mismatch.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
from pathlib import Path

from bench.soak import run_soak


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=int, default=30, help="venue minutes to push (>= 10)")
    ap.add_argument("--seed", type=int, default=None, help="RNG seed (default: random)")
    ap.add_argument("--venue", default="binance", choices=["binance", "kraken"])
    ap.add_argument("--keep", type=Path, default=None, help="keep the run's files here")
    args = ap.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(1 << 31)
    print(f"soak seed {seed}", flush=True)
    with tempfile.TemporaryDirectory(prefix="soak") as d:
        where = args.keep or Path(d)
        try:
            run_soak(where, venue=args.venue, minutes=args.minutes, seed=seed,
                     out=lambda s: print(s, flush=True))
        except AssertionError as exc:
            print(f"SOAK FAILED (seed {seed}): {exc}", file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
