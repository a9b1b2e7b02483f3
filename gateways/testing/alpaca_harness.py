"""The Alpaca venue for the shared conformance suite (``VenueHarness``).

The suite trades crypto (``BTC/USD``, open around the clock, so no scenario
depends on the hour it runs at); US-equity habits (sessions, extended hours,
fractional shares, daily bars) are tested in ``tests/gateways/test_alpaca_*.py``.
The stand-in's clock is pinned like the ccxt harnesses', so the gateway's
venue-clock measurement is exercised on every run.
"""

from __future__ import annotations

import asyncio
import secrets
import threading
from collections.abc import Callable
from typing import Any

from gateways.alpaca.config import AlpacaGatewayConfig, AlpacaTiming
from gateways.alpaca.gateway import AlpacaGateway
from gateways.ccxt.config import Credentials
from gateways.testing.alpaca import AlpacaStandin
from gateways.testing.harness import ANCHOR_MS, wait_until
from gateways.testing.standin import Fault, MarketSpec
from gateways.testing.venue import Row
from trader.core.events import HealthState

MINUTE_MS = 60_000

FAST_TIMING = AlpacaTiming(
    request_timeout_s=0.4,
    backoff_initial_s=0.02,
    backoff_max_s=0.1,
    backoff_jitter=0.25,
    rate_limit_max_wait_s=0.1,
    rate_limit_attempts=3,
    unknown_settle_s=0.3,
    unknown_order_timeout_s=30.0,
    poll_interval_s=0.05,
    close_grace_s=0.2,
)


class AlpacaHarness:
    """The Alpaca stand-in and a factory for gateways pointed at it."""

    venue = "alpaca"
    instrument_id = "BTCUSD.ALPACA"
    second_instrument = "ETHUSD.ALPACA"
    unlisted_instrument = "DOGEEUR.ALPACA"
    timeframe_s = 60
    order_qty = 0.01
    resting_limit = 45_000.0
    unaffordable_qty = 10.0  # 500k of notional against 100k of cash
    insufficient_text = "insufficient buying power"
    fills_lookback_ns: int | None = None  # account activities reach back to the opening
    unsupported_faults: frozenset[str] = frozenset()
    symbols = {"BTCUSD.ALPACA": "BTC/USD", "ETHUSD.ALPACA": "ETH/USD",
               "DOGEEUR.ALPACA": "DOGE/EUR", "AAPL.ALPACA": "AAPL", "SPY.ALPACA": "SPY"}
    _FAULTS = {"timeout_placed": Fault("stall_after", delay=1.0),
               "timeout_lost": Fault("stall_before", delay=0.8),
               "error_placed": Fault("error_after"),
               "error_lost": Fault("error_before"),
               "rate_limited": Fault("rate_limit", retry_after=0.05)}

    def __init__(self, markets: list[MarketSpec] | None = None) -> None:
        self.standin = AlpacaStandin(markets)
        self.gateways: list[AlpacaGateway] = []
        self._subs_at_drop = -1

    async def start(self) -> AlpacaHarness:
        await self.standin.start()
        self.standin.set_clock(ANCHOR_MS + 30_000)
        return self

    async def stop(self) -> None:
        for gw in self.gateways:
            await gw.close()
        await self.standin.stop()

    def config(self, instruments: tuple[str, ...], **overrides: Any) -> AlpacaGatewayConfig:
        data: dict[str, Any] = {
            "name": self.venue, "paper": True,
            "symbols": {self.symbols[i]: i for i in instruments},
            "timeframe": "1m", "urls": self.standin.urls(), "timing": FAST_TIMING,
            # the suite's synthetic prices jump (100 -> 400); a 1e9 tick is still far out
            "bar_band": 5.0,
        }
        data.update(overrides)
        return AlpacaGatewayConfig(**data)

    def credentials(self, bad: bool = False) -> Credentials:
        return Credentials(self.standin.api_key,
                           secrets.token_urlsafe(30) if bad else self.standin.secret)

    def gateway(self, sink: Callable[[Any], None], *, trading: bool = True,
                instruments: tuple[str, ...] | None = None, bad_credentials: bool = False,
                **overrides: Any) -> AlpacaGateway:
        cfg = self.config(instruments or (self.instrument_id,), trading=trading, **overrides)
        gw = AlpacaGateway(cfg, credentials=self.credentials(bad_credentials))
        gw.bind(sink)
        self.gateways.append(gw)
        return gw

    async def connect(self, gw: AlpacaGateway, *, stream: bool = True) -> None:
        """Connect ``gw``; with ``stream``, wait until its streams have subscribed."""
        await gw.connect(stream=stream)
        if not stream:
            return
        cfg = gw.config
        labels = []
        if cfg.market_data and cfg.timeframe_seconds < 86_400:
            kinds = {"crypto" if "/" in s else "stocks" for s in cfg.symbols}
            labels += [f"bars:{k}" for k in sorted(kinds)]
        if cfg.trading:
            labels.append("orders")
        up = (HealthState.CONNECTED, HealthState.RESYNCED)
        await wait_until(lambda: all(gw.health.get(x) in up for x in labels), 5.0,
                         f"streams {labels} up")

    def now_ns(self) -> int:
        return self.standin.now_ms() * 1_000_000

    def bar_open(self, k: int = 0) -> int:
        current = self.standin.now_ms() // MINUTE_MS * MINUTE_MS
        return (current + k * MINUTE_MS) * 1_000_000

    def install_history(self, instrument_id: str, rows: list[Row]) -> None:
        self.standin.set_series(self.symbols[instrument_id],
                                [[r[0] / 1_000_000, *r[1:]] for r in rows])

    def set_now(self, ts_ns: int) -> None:
        self.standin.set_clock(ts_ns // 1_000_000)

    async def publish_bar(self, instrument_id: str, bar: Row) -> None:
        """Alpaca streams a minute bar only once it closed (``b``): no forming updates."""
        await wait_until(lambda: bool(self.standin.streams) and len(
            self.standin.subscriptions) > self._subs_at_drop, 10.0,
            "bar stream subscribed again")
        t = bar[0] / 1_000_000
        await self.standin.push_candle(self.symbols[instrument_id], [t, *bar[1:]], closed=True)

    async def drop_streams(self) -> None:
        self._subs_at_drop = len(self.standin.subscriptions)
        await self.standin.drop_connections()

    async def venue_fill(self, client_order_id: str, qty: float | None = None,
                         price: float | None = None, *, notify: bool = True) -> str:
        trade = await self.standin.fill(client_order_id, qty, price, notify=notify)
        return trade.trade_id

    def script_submit(self, fault: str) -> None:
        self.standin.script("orders", self._FAULTS[fault])

    def submissions(self) -> int:
        return len(self.standin.received("/v2/orders", "POST"))

    def venue_orders(self) -> dict[str, str]:
        return {o.client_order_id: o.status for o in self.standin.orders.values()}

    def execution_ids(self) -> list[str]:
        return [t.trade_id for t in self.standin.trades]


class AlpacaThread:
    """The Alpaca stand-in on its own event loop in a thread, for a test that blocks on a
    daemon child process while the venue keeps serving (``VenueThread``'s Alpaca twin)."""

    def __init__(self, markets: list[MarketSpec] | None = None) -> None:
        self.h = AlpacaHarness(markets)
        self.standin = self.h.standin
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.call(self.h.start())

    def call(self, coro: Any, timeout: float = 30) -> Any:
        """Run ``coro`` on the stand-in's loop and wait for its result."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=timeout)

    def run(self, fn: Callable[[], Any]) -> Any:
        """Run a plain function on the stand-in's loop (its state is the loop's to change)."""
        async def go() -> Any:
            return fn()
        return self.call(go())

    def push(self, symbol: str, t_ms: int, price: float) -> None:
        """Close the minute opening at ``t_ms`` around ``price``: the venue's clock moves past
        it, then the bar goes out on the stream (and into the venue's history)."""
        def bar() -> list[float]:
            self.standin.set_clock(t_ms + MINUTE_MS + 1_000)
            return [float(t_ms), price, price + 2.0, price - 1.0, price + 1.0, 1.0]
        self.call(self.standin.push_candle(symbol, self.run(bar), closed=True))

    def close(self) -> None:
        self.call(self.standin.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)
