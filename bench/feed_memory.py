"""Feed memory: what each file costs a replay of many instruments, by how the files are cut.

pyarrow decodes a Parquet file a whole row group at a time, and the feed holds a
batch of every file it merges, so a replay's memory grows with the number of
files times (row group + batch), not with history.  This merges N files of
one-minute bars through ``HistoricalFeed`` (the feed alone: no kernel) in two
layouts, each in a fresh process that reports its own peak RSS (``VmHWM``):

* pyarrow's defaults: each file written with ``pq.write_table`` as it comes (row
  groups of up to a million rows) and read a whole ``data.batch_size`` per file,
  as the project did before;
* the catalog's: written by ``Catalog.write`` (``ROW_GROUP_ROWS`` a group) and
  read with the batch shared by the files (``feed_from_config``'s
  ``file_batch_rows``).

It prints peak RSS above an empty process per file, and the ratio of the two.

    .venv/bin/python bench/feed_memory.py                    # 20 files x 600,000 bars
    .venv/bin/python bench/feed_memory.py --files 50 --bars 200000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MINUTE_NS = 60_000_000_000
T0 = 1_420_070_400 * 1_000_000_000  # 2015-01-01


def hwm_mb() -> float:
    """This process's own peak RSS (``replay_throughput.own_peak_rss_mb``), required here."""
    from bench.replay_throughput import own_peak_rss_mb

    mb = own_peak_rss_mb()
    if mb is None:
        raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")
    return mb


def write(folder: Path, files: int, bars: int) -> None:
    """Both layouts of the same random walks: ``default/`` and ``catalog/``."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    from trader.data.catalog import Catalog

    cat = Catalog(folder / "catalog")
    (folder / "default").mkdir(parents=True)
    ts = pa.array(T0 + np.arange(bars, dtype=np.int64) * MINUTE_NS, pa.timestamp("ns", tz="UTC"))
    for i in range(files):
        close = 100 * np.exp(np.cumsum(np.random.default_rng(i).normal(0, 0.001, bars)))
        table = pa.table({"ts": ts, "open": close, "high": close * 1.001, "low": close * 0.999,
                          "close": close, "volume": np.ones(bars)})
        pq.write_table(table, folder / "default" / f"i{i:03d}.parquet", compression="zstd")
        cat.write(cat.key("SIM", f"I{i:03d}", "1m"), table, source="bench")


def measure(folder: Path, layout: str) -> dict:
    """Merge every file of a layout (in this fresh process); bars, seconds, peak RSS."""
    from trader.core.logging import configure_logging
    from trader.data.feed import BarFile, FeedSpec, HistoricalFeed, file_batch_rows
    from trader.data.layout import BATCH_ROWS

    if layout == "default":
        paths = sorted((folder / "default").glob("*.parquet"))
        batch = BATCH_ROWS
    else:
        paths = sorted((folder / "catalog").glob("SIM/*/1m.parquet"))
        batch = file_batch_rows(BATCH_ROWS, len(paths))
    configure_logging("error", sys.stderr)  # the default layout's row-group warnings
    imported = hwm_mb()
    feed = HistoricalFeed([BarFile(FeedSpec(f"I{i:03d}", p, 60), batch_size=batch)
                           for i, p in enumerate(paths)])
    t0 = time.perf_counter()
    n = sum(1 for _ in feed)
    return {"bars": n, "seconds": time.perf_counter() - t0, "files": len(paths),
            "batch": batch, "peak_mb": hwm_mb() - imported}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--bars", type=int, default=600_000, help="one-minute bars per file")
    ap.add_argument("--measure", nargs=2, metavar=("FOLDER", "LAYOUT"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.measure:
        print(json.dumps(measure(Path(args.measure[0]), args.measure[1])))
        return
    with tempfile.TemporaryDirectory(prefix="feed-memory-") as name:
        subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
                        f"from bench.feed_memory import write; from pathlib import Path; "
                        f"write(Path({name!r}), {args.files}, {args.bars})"], check=True)
        out = {}
        for layout in ("default", "catalog"):
            run = subprocess.run([sys.executable, __file__, "--measure", name, layout],
                                 capture_output=True, text=True, check=True)
            out[layout] = json.loads(run.stdout)
    print(f"feed memory: {args.files} files x {args.bars:,} one-minute bars, merged "
          "(peak RSS above the imports, each layout in a fresh process)")
    print(f"{'layout':<34}{'batch/file':>11}{'peak MB':>10}{'MB/file':>9}{'bars/s':>12}")
    names = {"default": "pyarrow defaults, whole batch", "catalog": "catalog, shared batch"}
    for layout, r in out.items():
        assert r["bars"] == args.files * args.bars, r
        print(f"{names[layout]:<34}{r['batch']:>11,}{r['peak_mb']:>10.0f}"
              f"{r['peak_mb'] / r['files']:>9.1f}{r['bars'] / r['seconds']:>12,.0f}")
    d, c = out["default"], out["catalog"]
    print(f"ratio default / catalog: memory {d['peak_mb'] / c['peak_mb']:.2f}x, "
          f"speed {d['seconds'] / c['seconds']:.2f}x")


if __name__ == "__main__":
    main()
