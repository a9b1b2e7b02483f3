"""The risk state survives a reopen of the store (halts, drawdown high-water mark)."""

from __future__ import annotations

from trader.store import Store


def test_risk_state_round_trips_and_is_replaced(db_url: str) -> None:
    with Store.open(db_url) as store:
        assert store.load_risk_state() is None
        store.save_risk_state({"hwm": 101_000.5, "halted": False}, ts=1)
        store.save_risk_state({"hwm": 102_000.0, "halted": True, "reason": "drawdown"}, ts=2)
    with Store.open(db_url) as again:
        assert again.load_risk_state() == {"hwm": 102_000.0, "halted": True, "reason": "drawdown"}
        assert again.load_risk_state("other") is None
        again.set_trading_state("HALTED", "dd", "risk", 3)
        assert again.trading_state() == ("HALTED", "dd")
