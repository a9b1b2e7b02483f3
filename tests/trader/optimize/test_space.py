"""Config paths: items of lists by name, id or index; a path that names nothing is an error."""

from __future__ import annotations

import pytest

from trader.optimize.space import SpaceError, apply_params, set_path

RAW = {"execution": {"slippage_bps": 1},
       "instruments": [{"id": "SPY", "lot_step": 1}, {"id": "QQQ", "lot_step": 1}],
       "models": [{"name": "a", "params": {"fast": 5}}, {"name": "b"}]}


def test_set_by_name_id_and_index_on_a_copy() -> None:
    out = apply_params(RAW, {"models.a.params.fast": 7, "models.b.params.slow": 40,
                             "instruments.QQQ.lot_step": 10, "instruments.0.lot_step": 5,
                             "execution.slippage_bps": 3})
    assert out["models"][0]["params"] == {"fast": 7}
    assert out["models"][1]["params"] == {"slow": 40}  # a missing section is made
    assert [i["lot_step"] for i in out["instruments"]] == [5, 10]
    assert out["execution"]["slippage_bps"] == 3
    assert RAW["models"][0]["params"] == {"fast": 5} and "params" not in RAW["models"][1]


def test_unknown_item_names_the_ones_there() -> None:
    with pytest.raises(SpaceError, match=r"models: no item named 'c' \(there are: a, b\)"):
        set_path({"models": [{"name": "a"}, {"name": "b"}]}, "models.c.params.x", 1)


def test_a_value_is_not_a_section() -> None:
    with pytest.raises(SpaceError, match="execution.slippage_bps is a value"):
        set_path({"execution": {"slippage_bps": 1}}, "execution.slippage_bps.x", 1)
