"""Reconciliation against stand-ins that page, charge fees and hold coins as the venues do.

Each scenario is a row of issue 10's table, driven by the real ccxt over loopback:

* fills while the daemon was down, more than one page of them (Kraken: 50 per
  page newest first behind ``ofs``; Binance: 1000 per page, 24 h windows, ``fromId``);
* a spot buy whose fee Binance takes in the base asset: the position is the
  wallet's increase, and a restart reconciles clean;
* a fee paid in BNB: recorded in BNB and valued, never taken from cash;
* coins the account held before the daemon: not the daemon's position.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from gateways.base import DAY_NS
from gateways.ccxt import CcxtGateway
from gateways.ccxt.exchange import dialect_for
from gateways.testing.harness import BinanceHarness, CcxtHarness, wait_until
from trader.core.clock import ReplayClock
from trader.core.events import Fill, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router
from trader.live.reconcile import ReconcilePolicy, reconcile
from trader.store import Store

CASH = 100_000.0
HOUR_MS = 3_600_000


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.open(f"sqlite:///{tmp_path / 'trader.db'}")
    try:
        yield s
    finally:
        s.close()


def quote_of(h: CcxtHarness) -> str:
    return "USDT" if h.venue == "binance" else "USD"


class Life:
    """One run of the daemon over the shared store, with the venue's clock as its clock."""

    def __init__(self, store: Store, gw: CcxtGateway, h: CcxtHarness) -> None:
        self.store, self.gw, self.h = store, gw, h
        ts = h.standin.now_ms() * 1_000_000
        self.clock = ReplayClock(ts)
        session = store.begin_session("paper", "ccxt", ts)
        self.router = Router({gw.name: gw}, self.clock, id_prefix=session.prefix,
                             journal=store.journal(session))
        self.portfolio = Portfolio(gw.instruments, CASH)
        self.router.fill_listeners.append(self.portfolio.on_fill)
        for fill in store.fills(gateway=gw.name):
            self.portfolio.on_fill(fill)
        self.fills: list[Fill] = []
        gw.bind(self.sink)

    def sink(self, event: Any) -> None:
        if isinstance(event, Fill):
            self.fills.append(event)
            self.router.on_fill(event)
        elif isinstance(event, OrderUpdate):
            self.router.on_update(event)

    async def reconcile(self) -> Any:
        return await reconcile(self.store, self.gw, self.router, self.portfolio,
                               ReconcilePolicy("refuse", currency=quote_of(self.h)))

    def submit(self, qty: float, limit: float | None = None) -> Any:
        coid = self.router.next_client_order_id()
        kind = OrderType.LIMIT if limit is not None else OrderType.MARKET
        order = self.router.submit(OrderRequest(
            self.clock.now(), coid, self.h.instrument_id, Side.BUY, qty, kind, limit,
            gateway=self.gw.name))
        assert order is not None
        return order


async def start(h: CcxtHarness, store: Store, *, stream: bool = True, **cfg: Any) -> Life:
    gw = h.gateway(lambda _e: None, **cfg)
    await gw.connect(stream=stream)
    return Life(store, gw, h)


async def rest_limit_order_then_die(h: CcxtHarness, store: Store, qty: float) -> str:
    """Life 1: a resting buy, acknowledged and stored; then the daemon stops."""
    life = await start(h, store)
    order = life.submit(qty, 45_000.0)
    await wait_until(lambda: order.status is OrderStatus.ACCEPTED, what="ack")
    store.flush()
    await life.gw.close()
    return order.client_order_id


# -- fills while down, more than a page -----------------------------------------------
async def test_63_fills_while_down_are_all_recovered(harness: CcxtHarness, store: Store) -> None:
    h = harness
    h.standin.balances[quote_of(h)] = CASH
    coid = await rest_limit_order_then_die(h, store, 0.63)
    missed = [(await h.standin.fill(coid, 0.01, 45_000.0, notify=False)).trade_id
              for _ in range(63)]

    life = await start(h, store, stream=False)
    report = await life.reconcile()
    assert report.consistent, report.text()
    assert sorted(report.adopted_fills) == sorted(missed)
    assert life.portfolio.position(h.instrument_id) == pytest.approx(0.63)
    assert life.router.order(coid).status is OrderStatus.FILLED
    if h.venue == "kraken":  # really paged: 50 newest first, then the rest behind ofs
        offsets = [r.params.get("ofs") for r in h.standin.received("/TradesHistory")]
        assert offsets == ["0", "50"]


async def test_binance_more_than_1000_fills_over_two_days(binance: BinanceHarness,
                                                          store: Store) -> None:
    h = binance
    h.standin.balances["USDT"] = CASH
    coid = await rest_limit_order_then_die(h, store, 0.2)
    missed = [(await h.standin.fill(coid, 0.0001, 45_000.0, notify=False)).trade_id
              for _ in range(700)]
    # the rest 30 h later: beyond the first 24 h window, reachable only by fromId
    h.standin.set_clock(h.standin.now_ms() + 30 * HOUR_MS)
    missed += [(await h.standin.fill(coid, 0.0001, 45_000.0, notify=False)).trade_id
               for _ in range(600)]

    life = await start(h, store, stream=False)
    report = await life.reconcile()
    assert report.consistent, report.text()
    assert len(report.adopted_fills) == 1300
    assert sorted(report.adopted_fills) == sorted(missed)
    assert life.portfolio.position(h.instrument_id) == pytest.approx(0.13)
    sent = h.standin.received("/myTrades")
    assert all(int(r.params.get("limit", 500)) <= 1000 for r in sent)
    assert any("fromId" in r.params for r in sent)


# -- fees -------------------------------------------------------------------------------
async def test_base_asset_fee_books_the_position_net(binance: BinanceHarness,
                                                     store: Store) -> None:
    h = binance
    h.standin.fee_mode = "received"  # Binance without BNB: a buy's fee in the base asset
    h.standin.balances.update({"USDT": CASH, "BTC": 0.0})
    life = await start(h, store)
    await life.reconcile()
    await h.wait_private_ws(life.gw)
    order = life.submit(0.01)
    await wait_until(lambda: order.status is OrderStatus.FILLED, what="fill")
    wallet_btc = h.standin.balances["BTC"]
    assert wallet_btc == pytest.approx(0.00999)
    assert life.portfolio.position(h.instrument_id) == pytest.approx(wallet_btc, abs=1e-12)
    assert life.portfolio.account.cash == pytest.approx(h.standin.balances["USDT"], abs=1e-9)
    (fill,) = life.fills
    assert (fill.fee_asset, fill.fee_in_instrument) == ("BTC", True)
    assert fill.commission == pytest.approx(0.00001 * fill.price)  # valued, not cash
    store.flush()
    await life.gw.close()

    again = await start(h, store, stream=False)  # restored from the store's fills
    assert again.portfolio.position(h.instrument_id) == pytest.approx(wallet_btc, abs=1e-12)
    report = await again.reconcile()
    assert report.consistent, report.text()


@pytest.mark.parametrize("priced", [True, False])
async def test_bnb_fee_is_not_booked_as_quote(binance: BinanceHarness, store: Store,
                                              priced: bool) -> None:
    h = binance
    h.standin.fee_mode = "BNB"
    h.standin.balances.update({"USDT": CASH, "BTC": 0.0, "BNB": 1.0})
    cfg = {"fee_prices": {"BNB": h.standin.fee_asset_price}} if priced else {}
    life = await start(h, store, **cfg)
    await life.reconcile()
    await h.wait_private_ws(life.gw)
    order = life.submit(0.01)
    await wait_until(lambda: order.status is OrderStatus.FILLED, what="fill")
    (fill,) = life.fills
    bnb = 0.01 * 50_000.0 * h.standin.fee_rate / h.standin.fee_asset_price
    assert fill.fee_asset == "BNB" and not fill.fee_in_instrument
    assert fill.fee_quantity == pytest.approx(bnb, abs=1e-8)  # 8 decimals on the wire
    assert fill.commission == (pytest.approx(0.5, abs=1e-5) if priced else 0.0)
    # cash is what the wallet says: the fee came out of BNB, not out of USDT
    assert life.portfolio.account.cash == pytest.approx(h.standin.balances["USDT"], abs=1e-9)
    assert life.portfolio.position(h.instrument_id) == pytest.approx(0.01)
    assert life.portfolio.account.fees_in_kind == {"BNB": pytest.approx(bnb, abs=1e-8)}
    store.flush()
    await life.gw.close()

    again = await start(h, store, stream=False)
    report = await again.reconcile()
    assert report.consistent, report.text()


# -- coins held before the daemon -----------------------------------------------------------
async def test_coins_held_before_start_are_not_the_daemons(harness: CcxtHarness,
                                                           store: Store) -> None:
    h = harness
    h.standin.balances.update({quote_of(h): CASH, "BTC": 0.5})  # bought by hand long ago
    life = await start(h, store)
    report = await life.reconcile()  # the first start takes the baseline
    assert report.consistent, report.text()
    assert store.account_baseline(h.venue) == {"BTC": 0.5}
    assert (await life.gw.account()).positions == {}
    await h.wait_private_ws(life.gw)
    order = life.submit(0.01)
    await wait_until(lambda: order.status is OrderStatus.FILLED, what="fill")
    store.flush()
    await life.gw.close()

    again = await start(h, store, stream=False)
    report = await again.reconcile()  # reuses the stored baseline
    assert report.consistent, report.text()
    assert h.standin.balances["BTC"] == pytest.approx(0.51)
    account = await again.gw.account()
    assert account.positions == {h.instrument_id: pytest.approx(0.01)}


async def test_external_holding_is_left_out(harness: CcxtHarness, store: Store) -> None:
    h = harness
    h.standin.balances.update({quote_of(h): CASH, "BTC": 0.3})
    life = await start(h, store, stream=False, external={"BTC": 0.3})
    report = await life.reconcile()
    assert report.consistent, report.text()
    # all of it declared external: the baseline holds nothing more
    assert store.account_baseline(h.venue) == {"BTC": pytest.approx(0.0)}
    assert (await life.gw.account()).positions == {}


# -- compatibility ------------------------------------------------------------------------
class OldFill(msgspec.Struct, frozen=True, tag="fill"):
    """``Fill`` as journals wrote it before fees in kind."""

    ts: int
    client_order_id: str
    trade_id: str
    instrument_id: str
    side: Side
    quantity: float
    price: float
    commission: float = 0.0
    broker_order_id: str = ""


def test_fills_of_older_journals_still_decode() -> None:
    raw = msgspec.msgpack.encode(OldFill(1, "c", "t", "X", Side.BUY, 2.0, 10.0, 0.5, "b"))
    fill = msgspec.msgpack.decode(raw, type=Fill)
    assert (fill.commission, fill.fee_asset, fill.fee_quantity) == (0.5, "", 0.0)
    assert fill.position_change == 2.0


def test_reconciliation_horizon_is_declared() -> None:
    """Kraken lists the whole history (paged); Binance's myTrades about six months."""
    assert dialect_for("kraken").fills_lookback_ns is None
    assert dialect_for("binance").fills_lookback_ns == 180 * DAY_NS
