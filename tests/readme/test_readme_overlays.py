"""The README's portfolio overlays flow, run as a user runs it: its own command on the
shipped ``config/overlays.yaml`` and sample data, in a fresh folder."""

from __future__ import annotations

import csv
import json
from pathlib import Path

# the shared fixture (``clone``) and helpers of the README flows
from test_readme_flows import bash_blocks, clone, run, trader_commands  # noqa: F401


def test_overlays_backtest_writes_its_decisions(clone: Path) -> None:  # noqa: F811
    block = next(b for b in bash_blocks() if "trader backtest config/overlays.yaml" in b)
    (cmd,) = trader_commands(block)
    res = run(cmd, clone)
    assert res.returncode == 0, res.stderr[-3000:]
    out = clone / "runs" / "sample-overlays"
    metrics = json.loads((out / "metrics.json").read_text())
    overlays = metrics["overlays"]
    # Every overlay the shipped config turns on took decisions on the sample data.
    assert {"vol_target", "kelly", "model_drawdown_derisk"} <= set(overlays["events"])
    assert 0 < overlays["vol_scale"]["min"] < 1.0
    with open(out / "overlay_events.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == sum(overlays["events"].values())
    with open(out / "trades.csv", newline="") as fh:
        reasons = {r["reason"] for r in csv.DictReader(fh)}
    assert {"signal", "overlay"} <= reasons
    # The tear sheet shows the multipliers over time and the decisions.
    html = (out / "report.html").read_text()
    assert '<section id="overlays">' in html and 'id="overlay-multipliers"' in html
    assert html.count("<tr>", html.index('id="overlay-table"')) >= min(len(rows), 200)
