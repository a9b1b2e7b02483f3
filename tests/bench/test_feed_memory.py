"""bench/feed_memory.py at a small size: both layouts replay every bar, and cutting the
files as the catalog does holds less of each file than pyarrow's default layout."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pyarrow.parquet as pq

from bench.feed_memory import write
from trader.data.layout import MIN_FILE_BATCH_ROWS, ROW_GROUP_ROWS

ROOT = Path(__file__).resolve().parents[2]


def test_both_layouts_replay_every_bar_and_the_catalog_holds_less(tmp_path: Path) -> None:
    files, bars = 3, 150_000
    write(tmp_path, files, bars)
    groups = {pq.ParquetFile(p).metadata.row_group(0).num_rows
              for p in (tmp_path / "catalog").glob("SIM/*/1m.parquet")}
    assert groups == {ROW_GROUP_ROWS}
    assert pq.ParquetFile(next((tmp_path / "default").glob("*.parquet"))).metadata \
        .row_group(0).num_rows == bars
    out = {}
    for layout in ("default", "catalog"):
        run = subprocess.run([sys.executable, str(ROOT / "bench" / "feed_memory.py"),
                              "--measure", str(tmp_path), layout],
                             capture_output=True, text=True, check=True, cwd=ROOT)
        out[layout] = json.loads(run.stdout)
        assert out[layout]["bars"] == files * bars and out[layout]["files"] == files
    assert out["default"]["batch"] == 65_536
    assert out["catalog"]["batch"] == max(MIN_FILE_BATCH_ROWS, 65_536 // files)
    # A whole 150k-row group a file (7 MB decoded) against 16k rows: the default holds more.
    assert out["default"]["peak_mb"] > out["catalog"]["peak_mb"] + files * 3
