"""A trading session restores only fills of its own mode; an unknown instrument is named."""

from __future__ import annotations

import pytest

from trader.core.events import Fill, OrderRequest, Side
from trader.engine.config import AppConfig
from trader.engine.orders import Order
from trader.live.start_state import RestoreError, restorable_fills
from trader.store import Store


def _trade(store: Store, mode: str, inst: str, trade: str, gateway: str = "sim") -> None:
    session = store.begin_session(mode, "t", 0)
    journal = store.journal(session, fill_scope="@x" if mode == "replay" else "")
    coid = f"{session.prefix}-1"
    order = Order(OrderRequest(1, coid, inst, Side.BUY, 1.0, gateway=gateway))
    journal.order_created(order)
    journal.fill_received(order, Fill(2, coid, trade, inst, Side.BUY, 1.0, 10.0, 0.0, ""))


def test_each_mode_restores_its_own_fills(store: Store) -> None:
    _trade(store, "replay", "BTCUSD", "sim-1")
    _trade(store, "paper", "SPY", "sim-2")
    _trade(store, "live", "SPY", "b-1", gateway="binance")
    # A fill of an order no session wrote (adopted from the broker) goes with its gateway.
    store.journal(store.begin_session("live", "t", 0), default_gateway="binance").fill_received(
        None, Fill(3, "manual-1", "b-2", "SPY", Side.SELL, 1.0, 10.0, 0.0, ""))
    assert [f.trade_id for f in store.session_fills("paper", ["sim"])] == ["sim-2"]
    assert [f.trade_id for f in store.session_fills("live", ["binance"])] == ["b-1", "b-2"]


def test_an_unconfigured_instrument_is_a_clear_error(store: Store) -> None:
    _trade(store, "paper", "ETHUSD", "sim-1")
    cfg = AppConfig.model_validate({
        "name": "x", "instruments": [{"id": "SPY", "symbol": "SPY", "venue": "ARCA",
                                      "asset_class": "equity"}]})
    with pytest.raises(RestoreError, match="'ETHUSD'"):
        restorable_fills(store, cfg, "paper", ["sim"])


def test_positions_are_net_of_fees_charged_in_the_instrument(store: Store) -> None:
    """A spot buy whose fee the venue took in the base asset holds less than it bought."""
    session = store.begin_session("live", "t", 0)
    journal = store.journal(session)
    coid = f"{session.prefix}-1"
    order = Order(OrderRequest(1, coid, "BTCUSDT", Side.BUY, 2.0, gateway="binance"))
    journal.order_created(order)
    journal.fill_received(order, Fill(2, coid, "b-1", "BTCUSDT", Side.BUY, 2.0, 100.0, 0.2, "",
                                      fee_asset="BTC", fee_quantity=0.002,
                                      fee_in_instrument=True))
    journal.fill_received(order, Fill(3, coid, "b-2", "BTCUSDT", Side.SELL, 0.5, 100.0, 0.05, "",
                                      fee_asset="BNB", fee_quantity=0.0001))
    assert store.positions(mode="live") == {"BTCUSDT": pytest.approx(1.498)}
    assert store.positions("binance") == {"BTCUSDT": pytest.approx(1.498)}
