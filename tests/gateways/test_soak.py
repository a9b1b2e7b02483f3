"""The soak: a live daemon against the Binance stand-in with random faults (issue 10).

Thirty minutes of venue time, time compressed, with drops, torn frames, a half-open
venue, 429/418, stalled and failed order POSTs injected from a seeded RNG; at the end
the kernel's orders, fills, positions and bars must equal the venue's own record
(``bench.soak.check``).  ``pytest -s`` prints the counts;
``python -m bench.soak_ccxt --minutes 60 --seed N`` runs a longer one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import run_soak


@pytest.mark.parametrize("seed", [7, 2024])
def test_soak_ends_with_the_venues_record(tmp_path: Path, seed: int) -> None:
    report = run_soak(tmp_path, venue="binance", minutes=30, seed=seed, out=print)
    c = report.counts
    # the soak did what it is for: orders traded, faults landed, streams recovered
    assert c["bars"] == 30 and c["fills"] >= 4, c
    assert sum(report.faults.values()) >= 8, report.faults
    assert report.health["health:resynced"] >= 1, report.health
