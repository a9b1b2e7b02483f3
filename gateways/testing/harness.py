"""Venue harnesses: a running stand-in plus the gateway configured against it.

The conformance suite talks to venues only through this interface, so a new
gateway joins the suite by adding a harness.  Each harness pins the stand-in's
clock to a fixed instant (``ANCHOR_MS`` plus 30 s) so candle times are
deterministic and the gateway's server-time offset is exercised on every run.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from gateways.ccxt import CcxtGateway, CcxtGatewayConfig, CcxtTiming
from gateways.ccxt.config import Credentials
from gateways.testing.binance import BinanceStandin
from gateways.testing.kraken import KrakenStandin
from gateways.testing.standin import Fault, MarketSpec, Recorded, StandinExchange
from gateways.testing.venue import Row

ANCHOR_MS = 1_704_068_400_000  # 2024-01-01T00:20:00Z, a minute boundary
MINUTE_MS = 60_000

FAST_TIMING = CcxtTiming(
    request_timeout_ms=400,
    backoff_initial_s=0.02,
    backoff_max_s=0.1,
    backoff_jitter=0.25,
    ws_failures_before_polling=3,
    ws_retry_after_polling_s=0.5,
    poll_interval_s=0.05,
    close_grace_s=0.2,
    resolve_attempts=3,
    history_page_limit=1000,
    unknown_settle_s=0.3,
    liveness_interval_s=0.5,
    liveness_misses=3,
    healthy_reset_s=2.0,
    poll_floor_s=0.02,
    poll_max_requests=10,
)


def candle(t_ms: int, base: float, volume: float = 1.0) -> list[float]:
    """A well-formed candle at ``t_ms`` around price ``base``."""
    return [float(t_ms), base, base + 2.0, base - 1.0, base + 1.0, volume]


class CcxtHarness:
    """One venue: the stand-in, the gateway config, and the scripts the suite needs."""

    venue: str = ""
    symbol: str = ""  # ccxt unified symbol
    venue_id: str = ""  # the venue's market id
    instrument_id: str = ""
    create_path: str = ""
    create_endpoint: str = ""
    markets_endpoint: str = ""  # what ccxt's load_markets asks for the venue's markets
    history_endpoint: str = ""  # candles by REST (warm-up, backfill)
    insufficient_text: str = ""
    second: tuple[str, str, str] = ("", "", "")  # another market: symbol, venue id, instrument
    lookup_endpoints: tuple[str, ...] = ()  # where an order is looked up by client order id

    # the conformance suite's view (gateways.testing.venue.VenueHarness)
    timeframe_s = 60
    order_qty = 0.01
    resting_limit = 45_000.0
    unaffordable_qty = 10.0  # 500k of notional against 100k of cash
    fills_lookback_ns: int | None = None
    unsupported_faults: frozenset[str] = frozenset()
    unlisted_instrument = "DOGEEUR.X"
    closed_by_next = False  # the venue's stream has no "closed" flag
    _FAULTS = {"timeout_placed": Fault("stall_after", delay=1.0),
               "timeout_lost": Fault("stall_before", delay=0.8),
               "error_placed": Fault("error_after"),
               "error_lost": Fault("error_before"),
               "rate_limited": Fault("rate_limit")}

    def __init__(self) -> None:
        self.standin: StandinExchange = self.make_standin()
        self.gateways: list[CcxtGateway] = []
        self._private_seen = 0
        self._subs_at_drop = -1

    def make_standin(self) -> StandinExchange:
        raise NotImplementedError

    def client_id_param(self, rec: Recorded) -> str | None:
        raise NotImplementedError

    async def start(self) -> CcxtHarness:
        await self.standin.start()
        self.standin.set_clock(ANCHOR_MS + 30_000)
        return self

    async def stop(self) -> None:
        for gw in self.gateways:
            await gw.close()
        await self.standin.stop()

    def config(self, **overrides: Any) -> CcxtGatewayConfig:
        data: dict[str, Any] = {
            "name": self.venue,
            "exchange": self.venue,
            "symbols": {self.symbol: self.instrument_id},
            "timeframe": "1m",
            "urls": self.standin.urls(),  # type: ignore[attr-defined]
            "rate_limit": False,
            "timing": FAST_TIMING,
            # the suite's synthetic prices jump (100 -> 400); a 1e9 tick is still far out
            "bar_band": 5.0,
        }
        data.update(overrides)
        return CcxtGatewayConfig(**data)

    def credentials(self, secret: str | None = None) -> Credentials:
        return Credentials(self.standin.api_key, secret or self.standin.secret)

    def gateway(self, sink: Callable[[Any], None], *, secret: str | None = None,
                instruments: tuple[str, ...] | None = None, bad_credentials: bool = False,
                **overrides: Any) -> CcxtGateway:
        if instruments is not None:
            symbols = {self.instrument_id: self.symbol, self.second[2]: self.second[0],
                       self.unlisted_instrument: "DOGE/EUR"}
            overrides["symbols"] = {symbols[i]: i for i in instruments}
        if bad_credentials:
            # A fresh wrong secret, valid base64 as Kraken's are: none is written into the code.
            secret = base64.b64encode(secrets.token_bytes(32)).decode()
        gw = CcxtGateway(self.config(**overrides), credentials=self.credentials(secret))
        gw.bind(sink)
        self.gateways.append(gw)
        return gw

    def history(self, n: int, end_ms: int = ANCHOR_MS) -> list[list[float]]:
        """``n`` closed candles ending at ``end_ms`` (exclusive), installed as the series."""
        series = [candle(end_ms - (n - i) * MINUTE_MS, 100.0 + i) for i in range(n)]
        self.standin.set_series(self.venue_id, series)
        return series

    def creates(self) -> list[Recorded]:
        return self.standin.received(self.create_path, "POST")

    def script_submit(self, fault: Fault | str, times: int = 1) -> None:
        """Script the next ``times`` order submissions: a ``Fault`` or a suite fault name."""
        self.standin.script(self.create_endpoint,
                            self._FAULTS[fault] if isinstance(fault, str) else fault, times)

    # -- VenueHarness --------------------------------------------------------------------
    @property
    def second_instrument(self) -> str:
        return self.second[2]

    def _venue_id(self, instrument_id: str) -> str:
        return self.venue_id if instrument_id == self.instrument_id else self.second[1]

    async def connect(self, gw: CcxtGateway, *, stream: bool = True) -> None:
        """Connect ``gw``; with ``stream``, wait until its streams have subscribed."""
        await gw.connect(stream=stream)
        if stream:
            await self.wait_market_ws()
            if gw.config.trading and gw.config.use_websocket:
                await self.wait_private_ws(gw)

    def now_ns(self) -> int:
        return self.standin.now_ms() * 1_000_000

    def bar_open(self, k: int = 0) -> int:
        current = self.standin.now_ms() // MINUTE_MS * MINUTE_MS
        return (current + k * MINUTE_MS) * 1_000_000

    def install_history(self, instrument_id: str, rows: list[Row]) -> None:
        self.standin.set_series(self._venue_id(instrument_id),
                                [[r[0] / 1_000_000, *r[1:]] for r in rows])

    def set_now(self, ts_ns: int) -> None:
        self.standin.set_clock(ts_ns // 1_000_000)

    async def publish_bar(self, instrument_id: str, bar: Row) -> None:
        """A forming update first (which must never reach the sink), then the final one."""
        vid = self._venue_id(instrument_id)
        # after a drop, the gateway must have subscribed again or the bar goes to nobody
        await wait_until(lambda: bool(self.standin.market_ws) and len(
            self.standin.subscriptions) > self._subs_at_drop,  # type: ignore[attr-defined]
            10.0, "market stream subscribed again")
        t, o, _h, _l, _c, v = bar
        await self.standin.push_candle(vid, [t / 1_000_000, o, o, o, o, v / 4])
        await self.standin.push_candle(vid, [t / 1_000_000, *bar[1:]], closed=True)
        if self.closed_by_next:  # no closed flag: the next interval's first trade closes it
            nxt = t / 1_000_000 + MINUTE_MS
            await self.standin.push_candle(vid, [nxt, bar[4], bar[4], bar[4], bar[4], 0.0])

    async def drop_streams(self) -> None:
        self._subs_at_drop = len(self.standin.subscriptions)  # type: ignore[attr-defined]
        await self.standin.drop_connections()

    async def venue_fill(self, client_order_id: str, qty: float | None = None,
                         price: float | None = None, *, notify: bool = True) -> str:
        trade = await self.standin.fill(client_order_id, qty, price, notify=notify)
        return trade.trade_id

    def submissions(self) -> int:
        return len(self.creates())

    def venue_orders(self) -> dict[str, str]:
        return {o.client_order_id: o.status for o in self.standin.orders.values()}

    def execution_ids(self) -> list[str]:
        return [t.trade_id for t in self.standin.trades]

    async def wait_market_ws(self, timeout: float = 5.0) -> None:
        await wait_until(lambda: bool(self.standin.market_ws) and bool(
            self.standin.subscriptions), timeout)  # type: ignore[attr-defined]

    async def wait_private_ws(self, gw: CcxtGateway, timeout: float = 5.0) -> None:
        """Wait until ``gw``'s order stream has subscribed (each connect subscribes anew)."""
        seen = self._private_seen
        await wait_until(lambda: self.standin.private_subscriptions() > seen,  # type: ignore
                         timeout, "private stream subscription")
        self._private_seen = self.standin.private_subscriptions()  # type: ignore
        await asyncio.sleep(0.02)


class BinanceHarness(CcxtHarness):
    venue = "binance"
    symbol = "BTC/USDT"
    venue_id = "BTCUSDT"
    instrument_id = "BTCUSDT.BINANCE"
    second = ("ETH/USDT", "ETHUSDT", "ETHUSDT.BINANCE")
    create_path = "/api/v3/order"
    create_endpoint = "order"
    markets_endpoint = "exchangeInfo"
    history_endpoint = "klines"
    lookup_endpoints = ("queryOrder",)
    insufficient_text = "insufficient balance"
    fills_lookback_ns = 180 * 86_400 * 1_000_000_000  # Binance lists about six months

    def make_standin(self) -> StandinExchange:
        return BinanceStandin()

    def client_id_param(self, rec: Recorded) -> str | None:
        return rec.params.get("newClientOrderId")


class KrakenHarness(CcxtHarness):
    venue = "kraken"
    symbol = "BTC/USD"
    venue_id = "XXBTZUSD"
    instrument_id = "BTCUSD.KRAKEN"
    second = ("ETH/USD", "XETHZUSD", "ETHUSD.KRAKEN")
    create_path = "/0/private/AddOrder"
    create_endpoint = "AddOrder"
    markets_endpoint = "AssetPairs"
    history_endpoint = "OHLC"
    lookup_endpoints = ("OpenOrders", "ClosedOrders")
    closed_by_next = True
    insufficient_text = "Insufficient funds"

    def make_standin(self) -> StandinExchange:
        return KrakenStandin()

    def client_id_param(self, rec: Recorded) -> str | None:
        return rec.params.get("cl_ord_id")


HARNESSES: dict[str, type[CcxtHarness]] = {"binance": BinanceHarness, "kraken": KrakenHarness}


async def wait_until(cond: Callable[[], bool], timeout: float = 5.0, what: str = "") -> None:
    """Poll ``cond`` until true; fail with a clear message after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what or cond}")
        await asyncio.sleep(0.01)


class VenueThread:
    """A venue's harness on its own event loop in a thread, for a caller that blocks (on a
    daemon child process, say) while the stand-in keeps serving."""

    def __init__(self, venue: str, markets: list[MarketSpec] | None = None) -> None:
        self.h = HARNESSES[venue]()
        if markets is not None:
            self.h.standin = type(self.h.standin)(markets=markets)
        self.standin = self.h.standin
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.h.start())

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run ``coro`` on the stand-in's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def push(self, t_ms: int, price: float) -> None:
        """Stream a candle opening at ``t_ms`` around ``price``."""
        self.call(self.standin.push_candle(self.h.venue_id, candle(t_ms, price)))

    def close(self) -> None:
        self.call(self.standin.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    """Block until ``cond()`` holds (the thread-side twin of ``wait_until``)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.02)
