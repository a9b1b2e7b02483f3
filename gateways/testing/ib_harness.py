"""The IB venue of the conformance suite: the stand-in TWS and a real ``IbGateway`` on it.

Submit faults in IB terms: an order whose status comes after the gateway's ack
timeout (``timeout_placed``), a placeOrder TWS swallows (``timeout_lost``), the
socket breaking after / before TWS placed the order (``error_placed`` /
``error_lost``: the socket API has no 5xx, a broken socket is how an answer gets
lost).  IB has no 429 for orders (ib_async paces its own messages), so
``rate_limited`` is unsupported; IB's nearest habit, the historical-data pacing
violation 162, is tested in ``tests/gateways/test_ib_gateway.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from gateways.ib.config import IbGatewayConfig, IbTiming
from gateways.ib.gateway import FILLS_LOOKBACK_NS, IbGateway
from gateways.testing.harness import wait_until
from gateways.testing.tws import NS, Listing, SubmitFault, TwsStandin, paper_account_id
from gateways.testing.venue import Row

ANCHOR_NS = 1_704_068_400 * NS  # 2024-01-01T00:20:00Z, a minute boundary
CLIENT_ID = 7

FAST_TIMING = IbTiming(
    connect_timeout_s=2.0, connect_attempts=20, ack_timeout_s=0.4, request_timeout_s=3.0,
    reconnect_initial_s=0.05, reconnect_max_s=0.2, backoff_jitter=0.1, unknown_settle_s=0.3,
    unknown_order_timeout_s=30.0, pacing_backoff_s=0.05, pacing_retries=3,
    pacing_identical_s=0.05, commission_wait_s=0.1,
    fill_catch_up_s=0.05)


class IbHarness:
    """The stand-in TWS plus gateways configured against it (``VenueHarness``)."""

    venue = "ib"
    instrument_id = "AAPL.NASDAQ"
    second_instrument = "MSFT.NASDAQ"
    unlisted_instrument = "ZZZZ.NASDAQ"
    timeframe_s = 60
    order_qty = 10.0
    resting_limit = 50.0
    unaffordable_qty = 10_000.0  # 1M of notional against 400k of buying power
    insufficient_text = "must exceed the initial margin"
    fills_lookback_ns: int | None = FILLS_LOOKBACK_NS
    unsupported_faults = frozenset({"rate_limited"})
    _SYMBOLS = {"AAPL.NASDAQ": "AAPL", "MSFT.NASDAQ": "MSFT", "ZZZZ.NASDAQ": "ZZZZ"}
    _FAULTS = {"timeout_placed": SubmitFault("stall", 1.0),
               "timeout_lost": SubmitFault("swallow"),
               "error_placed": SubmitFault("cut_after"),
               "error_lost": SubmitFault("cut_before")}

    def __init__(self, listings: list[Listing] | None = None) -> None:
        self.tws = TwsStandin(listings)
        self.account = self.tws.accounts[0]  # fresh per run: the account id is a credential
        self.gateways: list[IbGateway] = []
        self._sessions_at_drop: dict[int, int] = {}

    async def start(self) -> IbHarness:
        await self.tws.start()
        self.tws.now_ns = ANCHOR_NS + 30 * NS
        return self

    async def stop(self) -> None:
        for gw in self.gateways:
            await gw.close()
        await self.tws.stop()

    def config(self, instruments: tuple[str, ...], *, trading: bool = True,
               **overrides: Any) -> IbGatewayConfig:
        data: dict[str, Any] = {
            "name": self.venue, "mode": "paper", "host": "127.0.0.1", "port": self.tws.port,
            "client_id": CLIENT_ID, "trading": trading, "timeframe": "1m",
            "contracts": {i: {"symbol": self._SYMBOLS[i], "primary_exchange": "NASDAQ"}
                          for i in instruments},
            "timing": FAST_TIMING, "bar_band": 5.0,
        }
        data.update(overrides)
        return IbGatewayConfig(**data)

    def gateway(self, sink: Callable[[Any], None], *, trading: bool = True,
                instruments: tuple[str, ...] | None = None, bad_credentials: bool = False,
                **overrides: Any) -> IbGateway:
        cfg = self.config(instruments or (self.instrument_id,), trading=trading, **overrides)
        account = self.account if trading else ""
        while bad_credentials and account in (self.account, ""):
            account = paper_account_id()  # an account this TWS does not manage
        gw = IbGateway(cfg, account=account)
        gw.bind(sink)
        self.gateways.append(gw)
        return gw

    async def connect(self, gw: IbGateway, *, stream: bool = True) -> None:
        await gw.connect(stream=stream)
        if stream and gw.config.market_data:
            await wait_until(lambda: gw.streaming >= set(gw.config.contracts), 5.0,
                             "live bars subscribed")

    def now_ns(self) -> int:
        return self.tws.now_ns

    def bar_open(self, k: int = 0) -> int:
        tf = self.timeframe_s * NS
        return (self.tws.now_ns // tf + k) * tf

    def install_history(self, instrument_id: str, rows: list[Row]) -> None:
        self.tws.set_series(self._SYMBOLS[instrument_id], rows)

    def set_now(self, ts_ns: int) -> None:
        self.tws.now_ns = ts_ns

    async def _streams_back(self, instrument_id: str) -> None:
        """After a drop, wait until every gateway's new session streams bars again."""
        for gw in self.gateways:
            if not gw.config.market_data or instrument_id not in gw.config.contracts \
                    or not gw._running:
                continue
            before = self._sessions_at_drop.get(id(gw), 0)
            await wait_until(lambda g=gw, b=before: g.session > b and instrument_id
                             in g.streaming, 10.0, "bars subscribed again")

    async def publish_bar(self, instrument_id: str, bar: Row) -> None:
        """IB's way: the forming bar updated in place, then the next bar opens."""
        await self._streams_back(instrument_id)
        symbol = self._SYMBOLS[instrument_id]
        t, o, _h, _l, c, v = bar
        await self.tws.push_update(symbol, (t, o, o, o, o, v / 4))
        await self.tws.push_update(symbol, bar)
        nxt = t + self.timeframe_s * NS
        await self.tws.push_update(symbol, (nxt, c, c, c, c, 0.0))

    async def drop_streams(self) -> None:
        self._sessions_at_drop = {id(g): g.session for g in self.gateways}
        await self.tws.drop_connections()

    async def venue_fill(self, client_order_id: str, qty: float | None = None,
                         price: float | None = None, *, notify: bool = True) -> str:
        return await self.tws.fill(client_order_id, qty, price, notify=notify)

    def script_submit(self, fault: str) -> None:
        self.tws.script_submit(self._FAULTS[fault])

    def submissions(self) -> int:
        return len(self.tws.placed)

    def venue_orders(self) -> dict[str, str]:
        return {o.order_ref: o.status for o in self.tws.orders}

    def execution_ids(self) -> list[str]:
        return [e.exec_id for e in self.tws.execs]
