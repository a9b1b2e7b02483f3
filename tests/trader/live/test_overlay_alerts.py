"""A model's own drawdown de-risk, halt or restore is an alert (of the ``drawdown`` kind);
the routine moves of the vol scale and the Kelly caps are not."""

from __future__ import annotations

from trader.core.events import OverlayEvent
from trader.live.alerts import alert_for


def test_a_model_halted_by_its_drawdown_overlay_raises_a_drawdown_alert() -> None:
    halt = OverlayEvent(1, "model_drawdown", "btc_fast", 0.0, "halt", "drawdown 2.1% ...")
    alert = alert_for(halt)
    assert alert is not None
    assert (alert.kind, alert.severity) == ("drawdown", "warning")
    assert "btc_fast" in alert.title and "halt" in alert.title
    restore = alert_for(OverlayEvent(2, "model_drawdown", "btc_fast", 1.0, "restore", ""))
    assert restore is not None and restore.severity == "info"
    assert restore.key != alert.key  # deduplication keeps a halt and a restore apart


def test_vol_scale_and_kelly_moves_raise_no_alert() -> None:
    assert alert_for(OverlayEvent(1, "vol_target", "", 0.8, "", "")) is None
    assert alert_for(OverlayEvent(1, "kelly", "m", 0.5, "", "")) is None
