"""Meta-labelling: the primary model's side, as training and the live model read it."""

from __future__ import annotations

import numpy as np

from models.ml.meta import PrimaryConfig, PrimarySide, primary_sides
from models.sma_cross import SmaCross
from trader.core.events import Bar

DAY_NS = 86_400 * 10**9


def _bars(closes: list[float]) -> list[Bar]:
    return [Bar((i + 1) * DAY_NS, "X", 86_400, i * DAY_NS, c, c, c, c, 1.0)
            for i, c in enumerate(closes)]


def test_primary_sides_hold_the_sign_of_the_primary_models_weight() -> None:
    closes = [10, 10, 10, 11, 12, 13, 12, 10, 9, 8, 9, 11, 13]
    cfg = PrimaryConfig(model="SmaCross", params={"fast": 2, "slow": 3, "allow_short": True})
    sides = primary_sides(cfg, "X", 86_400, _bars(closes))
    model = SmaCross("m", ["X"], 86_400, cfg.params)
    held, expect = 0, []
    for b in _bars(closes):
        w = model.on_bar(b)
        if w:
            held = int(np.sign(w["X"]))
        expect.append(held)
    assert sides.tolist() == expect
    assert {-1, 1} <= set(expect) and expect[0] == 0
    live = PrimarySide(cfg, "X", 86_400)
    assert [live.on_bar(b) for b in _bars(closes)] == expect
