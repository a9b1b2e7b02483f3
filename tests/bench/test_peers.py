"""bench/peers.py's referee and comparison, without installing the peers.

The peers (backtesting.py, backtrader) are installed only by a bench run, into a venv
of their own; here the reference rules are checked by hand on a tiny series, the
kernel is checked against them, and the comparison and report are fed made-up runs.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.peers import (
    CASH,
    compare_fills,
    read_bars,
    reference_fills,
    run_kernel,
    summarise,
)
from bench.replay_throughput import make_bars


def test_reference_rules_by_hand() -> None:
    # fast 2 / slow 3: the first full window (bar 2) finds fast above slow, so it
    # enters at bar 3's open; the cross down on bar 5 exits at bar 6's open.
    ts = list(range(8))
    opens = [10.0, 10.0, 11.0, 12.5, 13.0, 12.0, 9.5, 9.0]
    closes = [10.0, 11.0, 12.0, 13.0, 12.0, 9.0, 9.0, 9.0]
    fills, equity = reference_fills(ts, opens, closes, fast=2, slow=3, cash=1000.0)
    # 1000 / 12 (bar 2's close) = 83.3 -> 83 shares at 12.5; sold at 9.5.
    assert fills == [(3, 83.0, 12.5), (6, -83.0, 9.5)]
    assert equity == pytest.approx(1000.0 - 83 * 3.0)


def test_reference_holds_and_never_fills_the_last_decision() -> None:
    ts = list(range(5))
    closes = [3.0, 2.0, 1.0, 1.0, 9.0]  # the cross up is decided on the last bar
    fills, equity = reference_fills(ts, closes, closes, fast=2, slow=3, cash=100.0)
    assert fills == [] and equity == 100.0


def test_kernel_fills_equal_the_reference(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    make_bars(path, 3_000, seed=11)
    ref, ref_equity = reference_fills(*read_bars(path))
    got = run_kernel(path)
    a = compare_fills(got["fills"], ref, got["pnl"], ref_equity - CASH)
    assert len(ref) > 50
    assert a.identical, a.first_difference
    assert a.fills == a.reference_fills == a.matched == len(ref)
    assert a.pnl_difference < 1e-9


def test_comparison_finds_the_first_difference() -> None:
    ref = [(60, 10.0, 100.0), (120, -10.0, 101.0), (180, 9.0, 102.0), (240, -9.0, 99.0)]
    same = compare_fills(list(ref), ref, 5.0, 5.0)
    assert same.identical and same.matched == 4 and same.pnl_difference == 0.0
    # a different quantity, a fill a bar late, a price off, a missing last fill
    for i, changed in [(1, (120, -11.0, 101.0)), (2, (240, 9.0, 102.0)),
                       (0, (60, 10.0, 100.0001))]:
        got = list(ref)
        got[i] = changed
        a = compare_fills(got, ref, 5.0, 5.0)
        assert not a.identical and a.matched == i
        assert a.first_difference == (changed, ref[i])
    short = compare_fills(ref[:3], ref, 4.0, 5.0)
    assert short.matched == 3 and short.first_difference == (None, ref[3])
    assert short.pnl_difference == pytest.approx(1.0 / (CASH + 5.0))


def test_summary_ratios_and_agreement() -> None:
    ref = [(60, 10.0, 100.0), (120, -10.0, 101.0)]
    runs = {
        "kernel": [{"seconds": s, "wall": s, "bars": 1000, "fills": ref, "pnl": 10.0,
                    "rss_mb": 200.0} for s in (2.0, 1.0, 3.0)],
        "backtesting": [{"seconds": s, "wall": s, "bars": 1000, "fills": ref[:1], "pnl": 0.0,
                         "rss_mb": 300.0} for s in (4.0, 6.0, 5.0)],
        "floor": [{"seconds": 0.1, "wall": 0.1, "bars": 1000, "fills": None, "crosses": 2,
                   "pnl": None, "rss_mb": 100.0}],
    }
    out = summarise(runs, ref, 10.0, 1000, 3)["engines"]
    assert out["kernel"]["seconds"] == 2.0 and out["kernel"]["identical"]
    assert out["backtesting"]["time_vs_kernel"] == 2.5  # median 5 s over median 2 s
    assert out["backtesting"]["bars_per_s"] == 200.0
    assert not out["backtesting"]["identical"] and out["backtesting"]["matched"] == 1
    assert out["floor"]["time_vs_kernel"] == pytest.approx(0.05)
    assert out["floor"]["crosses"] == 2
