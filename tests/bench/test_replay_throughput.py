"""bench/replay_throughput.py at a tiny size: the kernel's dispatch shape and the design
floor replay what the full kernel replays.

No timing is asserted (the machine is shared); what is checked is that the design
floor's parts really replay every bar, through as many handlers as the real run wires.
"""

from __future__ import annotations

from pathlib import Path

from bench.replay_throughput import DESIGN_PARTS, make_bars, run_design_floor, run_kernel

BARS = 2_000


def test_design_floor_replays_what_the_kernel_replays(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    make_bars(path, BARS)
    seconds, bars, fills, shape = run_kernel(path)
    assert seconds > 0 and bars == BARS and fills > 10
    # Each bar goes to the recorder, simulated exchange, portfolio, risk engine and
    # pipeline, and is seen first by the two report observers (kernel consumers).
    assert shape == (5, 2)
    for part in DESIGN_PARTS:
        took, events = run_design_floor(path, shape, part)
        assert took > 0
        assert events == BARS, part


def test_design_floor_wires_the_empty_handlers_it_is_given(tmp_path: Path) -> None:
    path = tmp_path / "bars.parquet"
    make_bars(path, 300)
    # However many empty handlers stand in for the components, every bar is dispatched.
    for shape in ((1, 0), (9, 4)):
        assert run_design_floor(path, shape, "dispatch")[1] == 300
