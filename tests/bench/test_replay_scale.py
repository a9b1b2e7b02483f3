"""bench/replay_scale.py at tiny sizes: every case runs, and its figures are sane.

No timing is asserted (the machine is shared): the cases' fills are checked against
the plain reference of bench/peers.py, the risk engine must approve every order, and
the positions axis must really hold many positions against few.
"""

from __future__ import annotations

from pathlib import Path

from bench.peers import read_bars, reference_fills
from bench.replay_scale import Case, cases, data_files, judge, run_case

BARS = 150


def test_every_case_runs_and_trades_as_expected(tmp_path: Path) -> None:
    all_cases = cases(BARS, [1, 3], 2)
    assert [c.name for c in all_cases] == [
        "instruments=1", "instruments=3", "models=2", "history=4x",
        "positions=few", "positions=many"]
    results = judge([run_case(c, tmp_path) for c in all_cases], all_cases)
    by = {r["case"]: r for r in results}
    for case in all_cases:
        r = by[case.name]
        assert r["instrument_bars"] == case.instruments * case.bars
        assert r["us_per_instrument_bar"] > 0 and r["ratio"] > 0
        assert r["risk_rejections"] == {}, case.name
        # Market orders fill at the next open: all but one decided on an instrument's last bar.
        assert 0 <= r["orders"] - r["fills"] <= case.instruments, case.name
    assert by["instruments=1"]["ratio"] == 1.0 and by["positions=few"]["ratio"] == 1.0
    assert by["models=2"]["baseline"] == "instruments=3"
    assert by["models=2"]["linear_bound"] == 2.0
    assert by["history=4x"]["baseline"] == "instruments=3"

    # One SmaCross(10, 30) per instrument: as many fills as the plain crossover gives.
    def expected(instruments: int, bars: int) -> int:
        return sum(len(reference_fills(*read_bars(p))[0])
                   for p in data_files(tmp_path, instruments, bars))

    # The instruments axis replays the same instrument-bars in every case: one
    # instrument has the history of the three of the widest case.
    assert [(c.instruments, c.bars) for c in all_cases[:2]] == [(1, 3 * BARS), (3, BARS)]
    assert by["instruments=1"]["fills"] == expected(1, 3 * BARS) > 0
    assert by["instruments=3"]["fills"] == expected(3, BARS)
    assert by["history=4x"]["fills"] == expected(3, 4 * BARS)
    assert by["models=2"]["fills"] >= by["instruments=3"]["fills"]
    # The positions axis: the same model, held almost throughout against almost never.
    assert by["positions=many"]["held_fraction"] > 0.8
    assert by["positions=many"]["open_positions_at_end"] == 3
    assert by["positions=few"]["held_fraction"] < 0.2


def test_judge_flags_growth_beyond_linear() -> None:
    all_cases = [Case("instruments=1", "instruments", 1, 10, [{}]),
                 Case("instruments=100", "instruments", 100, 10, [{}]),
                 Case("models=2", "models", 100, 10, [{}, {}]),
                 Case("models=3", "models", 100, 10, [{}, {}, {}]),
                 Case("positions=few", "positions", 100, 10, [{}]),
                 Case("positions=many", "positions", 100, 10, [{}])]
    us = {"instruments=1": 10.0, "instruments=100": 12.0, "models=2": 23.0,
          "models=3": 50.0, "positions=few": 10.0, "positions=many": 20.0}
    fills = {"models=2": 150, "models=3": 300}  # the others: 100
    results = judge([{"case": k, "us_per_instrument_bar": v, "fills": fills.get(k, 100)}
                     for k, v in us.items()], all_cases)
    flagged = {r["case"] for r in results if r["superlinear"]}
    # Over instruments=100: 1.9x for two models (bound 2x, the fills only 1.5x) is
    # linear; 4.2x for three models (bound 3x, the fills 3x too) is not.  1.2x on
    # instruments is within the tolerance, 2x with many positions (bound 1x) is not.
    assert flagged == {"models=3", "positions=many"}
    assert {r["case"]: r["linear_bound"] for r in results}["models=2"] == 2.0
