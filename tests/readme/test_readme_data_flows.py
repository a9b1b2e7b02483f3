"""The README's data flows, run as a user runs them: its own `trader data ...` commands in a
fresh folder holding the shipped ``config/`` and ``data/``.  The download flow runs against
the loopback Binance stand-in: the shipped ``config/data.yaml`` gets the stand-in's address,
nothing else changes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import yaml

# the shared fixture (``clone``) and helpers of the README flows
from test_readme_flows import bash_blocks, clone, run, trader_commands  # noqa: F401

from gateways.testing.harness import FAST_TIMING, VenueThread, candle
from trader.data.catalog import Catalog, ts_ns

HOUR_MS = 3_600_000
DAY0_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


def test_import_validate_resample_and_a_backtest_from_the_catalog(clone: Path) -> None:  # noqa: F811
    block = next(b for b in bash_blocks() if "trader data import" in b)
    cmds = trader_commands(block)
    assert [c[3:5] for c in cmds][:4] == [["data", "import"], ["data", "validate"],
                                          ["data", "resample"], ["data", "list"]]
    for cmd in cmds:
        res = run(cmd, clone)
        assert res.returncode == 0, (cmd, res.stderr[-3000:], res.stdout[-2000:])
    cat = Catalog(clone / "data" / "catalog")
    assert [k.name for k in cat.entries()] == ["arca/SPY/1d", "arca/SPY/1w"]
    man = cat.manifest(cat.find("arca/SPY/1d"))
    assert man is not None and man.adjustments[0]["method"] == "lean_factor_file"
    metrics = json.loads((clone / "runs" / "spy-from-catalog" / "metrics.json").read_text())
    assert metrics["data"]["SPY"]["prices"] == "back_adjusted" and metrics["trades"] > 0


def test_download_and_update_through_the_gateway(clone: Path) -> None:  # noqa: F811
    block = next(b for b in bash_blocks() if "trader data download" in b)
    download, update = trader_commands(block)
    venue = VenueThread("binance")
    try:
        venue.standin.set_series(venue.h.venue_id, [
            candle(DAY0_MS + i * HOUR_MS, 100.0 + i % 7) for i in range(31)])
        venue.standin.set_clock(DAY0_MS + 30 * HOUR_MS + 60_000)  # 30 closed hourly bars
        path = clone / "config" / "data.yaml"
        cfg = yaml.safe_load(path.read_text())
        cfg["gateways"]["binance"].update(urls=venue.standin.urls(), rate_limit=False,
                                          timing=FAST_TIMING.model_dump())
        path.write_text(yaml.safe_dump(cfg))
        res = run(download, clone)
        assert res.returncode == 0, res.stderr[-3000:]
        cat = Catalog(clone / "data" / "catalog")
        key = cat.find("binance/BTCUSDT/1h")
        assert len(ts_ns(cat.read(key))) == 30
        venue.standin.set_series(venue.h.venue_id, [
            candle(DAY0_MS + i * HOUR_MS, 100.0 + i % 7) for i in range(41)])
        venue.standin.set_clock(DAY0_MS + 40 * HOUR_MS + 60_000)
        res = run(update, clone)
        assert res.returncode == 0, res.stderr[-3000:]
        ts = ts_ns(cat.read(key))
        assert len(ts) == 40 and (np.diff(ts) == HOUR_MS * 1_000_000).all()
    finally:
        venue.close()
