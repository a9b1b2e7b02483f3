"""A ``Gateway`` for any ccxt exchange: closed bars in, orders out, fills back.

Everything network-bound runs as asyncio tasks on the live loop; ``submit``
and ``cancel`` only schedule work, as the kernel requires.  Events reach the
kernel through the sink given to ``bind`` (``Kernel.post`` live).

Rules that matter for money:

* a submit whose answer is lost (timeout, venue 5xx) is *not* a rejection: the
  order goes to ``OUTCOME_UNKNOWN`` and ``gateways.inflight.InFlightResolver``
  keeps looking it up by our client order id until the venue answers; it is
  never re-sent;
* a fill is emitted once per venue trade id, whichever path (websocket,
  order response, REST catch-up) saw it first;
* a terminal status (cancel, expiry) is emitted only after the fills the venue
  reports for that order, so the router never sees a fill after a cancel.

Bars pass ``gateways.validation.BarGuard`` on their way to the sink; stream
drops, reconnects and REST fallbacks are reported as ``GatewayHealth``.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import structlog
from ccxt.base.errors import (
    AuthenticationError,
    BadSymbol,
    DDoSProtection,
    ExchangeError,
    InsufficientFunds,
    InvalidOrder,
    OperationFailed,
    OrderNotFound,
    PermissionDenied,
    RateLimitExceeded,
)

from gateways import tracking
from gateways.base import (
    AccountReport,
    EventSink,
    GatewayCapabilities,
    GatewayStartError,
    History,
    OrderReport,
    PositionReport,
    expected_bars,
)
from gateways.ccxt import paging
from gateways.ccxt.candles import CandleCloser, candle_to_bar
from gateways.ccxt.config import CcxtGatewayConfig, Credentials, load_credentials
from gateways.ccxt.convert import (
    BrokerMessageError,
    ccxt_order_type,
    client_order_id_of,
    instrument_from_market,
    order_report,
    order_status,
    trade_to_fill,
)
from gateways.ccxt.exchange import Dialect, backoff_delay, build_exchange, dialect_for
from gateways.ccxt.limiter import EXCERPT, TruncatedResponse, VenueLimiter
from gateways.ccxt.streams import (
    ClosedFlags,
    FailureCounter,
    FrameStats,
    Liveness,
    StreamStalled,
    drop_clients,
    excerpt,
    harden,
    stream_clients,
)
from gateways.ccxt.warmup import VENUE_CANDLE_CAP, WarmUpReport
from gateways.health import UNHEALTHY, StreamHealth
from gateways.inflight import InFlightResolver
from gateways.tasks import GatewayTasks
from gateways.validation import BarGuard
from trader.core.events import (
    Bar,
    Fill,
    GatewayHealth,
    HealthState,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
)
from trader.core.instruments import Instrument

log = structlog.get_logger(__name__)

T = TypeVar("T")
# A venue that did not answer, or not in one piece: a timeout, a 5xx or Binance's -1000,
# a throttle (ccxt's OperationFailed: "may succeed if retried"), a torn body, a message
# that does not parse.
TRANSIENT = (OperationFailed, TruncatedResponse, BrokerMessageError)

_MS = 1_000_000
_EPS = 1e-12
_SAFETY_WAKE_S = 1.0  # re-read ccxt's caches at least this often


def capabilities_for(config: CcxtGatewayConfig, dialect: Dialect) -> GatewayCapabilities:
    """What this gateway implements on a ccxt venue (not everything the venue offers)."""
    return GatewayCapabilities(
        order_types=frozenset({OrderType.MARKET, OrderType.LIMIT}),
        time_in_force=frozenset({"GTC"}),
        modify=False,
        stop_limit=False,
        bracket=False,
        oco=False,
        hedged_positions=False,  # spot: balances, not positions
        client_order_ids=True,
        market_data=config.market_data,
        trading=config.trading,
        fills_lookback_ns=dialect.fills_lookback_ns,
    )


@dataclass(slots=True)
class _Tracked(tracking.TrackedOrder):
    """Gateway-side memory of one order, with what ccxt adds."""

    submit_ms: int = 0


@dataclass(slots=True)
class GatewayStats:
    """Counters for operators and tests."""

    bars: int = 0
    ws_errors: int = 0
    reconnects: int = 0
    backfilled_bars: int = 0
    polled_bars: int = 0
    polling_fallbacks: int = 0
    submits_sent: int = 0
    resolved_by_query: int = 0
    rate_limited: int = 0
    stalls: int = 0  # streams closed by the liveness watchdog
    repaired_bars: int = 0  # bars whose streamed last update was bad, re-read from REST
    skipped_messages: int = 0  # per-message errors logged and skipped
    task_restarts: int = 0  # stream loops restarted after an unexpected exception
    time_sync_failures: int = 0
    lost_orders: int = 0  # orders given up on after ``unknown_order_timeout_s``


class CcxtGateway:
    """Market data and execution on one ccxt exchange account."""

    def __init__(
        self,
        config: CcxtGatewayConfig,
        *,
        credentials: Credentials | None = None,
        rng: random.Random | None = None,
        exchange_factory: Callable[..., Any] | None = None,
    ) -> None:
        self.name = config.name
        self.config = config
        self._credentials = credentials
        self._rng = rng or random.Random()
        self._factory = exchange_factory or build_exchange
        self._dialect = dialect_for(config.exchange)
        self.capabilities = capabilities_for(config, self._dialect)
        self._raw_sink: EventSink = lambda _e: None
        self._sink: EventSink = self._raw_sink
        self.guard: BarGuard | None = None
        self.health = StreamHealth(self.name)
        self._ex: Any = None
        self._tasks = GatewayTasks(self.name)
        self._running = False
        self._streaming = False
        self._tf_s = config.timeframe_seconds
        self._inst_of = dict(config.symbols)
        self._symbol_of = {v: k for k, v in config.symbols.items()}
        self._closers = {s: CandleCloser(self._tf_s) for s in config.symbols}
        self.instruments: dict[str, Instrument] = {}
        self._orders: dict[str, _Tracked] = {}
        self._coid_by_broker: dict[str, str] = {}
        self._seen_trades: set[str] = set()
        self._parked: dict[str, list[dict[str, Any]]] = {}  # broker id -> trades before the ack
        self._quotes: set[str] = set()
        self._fee_prices = dict(config.fee_prices)
        self._baseline: dict[str, float] = {}
        self.stats = GatewayStats()
        self._offset_ms = 0
        self._poll_cursor = 0
        self._time_ok = False  # the venue's clock has been measured at least once
        self._flags = ClosedFlags()
        self.frames = FrameStats()
        self.warmup_reports: dict[str, WarmUpReport] = {}
        self._finished = tracking.FinishedOrders(self._orders, self._coid_by_broker,
                                                 self._seen_trades)
        self._submit_locks: dict[str, asyncio.Lock] = {}
        self.private_ws_ok = False
        t = config.timing
        self._resolver = InFlightResolver.from_timing(
            t, self._resolve_lookup, self._resolve_found, self._resolve_absent,
            gateway=self.name, rng=self._rng, on_lost=self._order_lost)
        # every REST request of this gateway waits here (attached in ``connect``)
        self.limiter = VenueLimiter(config.exchange, config.limits,
                                    on_change=self._on_limiter_change)

    # -- protocol --------------------------------------------------------------------
    def bind(self, sink: EventSink) -> None:
        """Bars, order updates, fills and health all go to ``sink``; bars through a guard."""
        self._raw_sink = sink
        self.guard = BarGuard(sink, gateway=self.name, venue=self.config.exchange,
                              band=self.config.bar_band, now_ns=lambda: self._now_ms() * _MS)
        self._sink = self.guard

    @property
    def resolver(self) -> InFlightResolver:
        """The resolver of submits whose outcome is unknown (for operators and tests)."""
        return self._resolver

    @property
    def exchange(self) -> Any:
        """The underlying ccxt.pro exchange (for diagnostics)."""
        return self._ex

    async def connect(self, *, stream: bool = True) -> None:
        """Load markets, check credentials, then start the bar and order streams."""
        cfg = self.config
        creds = self._credentials
        if creds is None:
            creds = load_credentials(cfg.credentials)
        if cfg.trading and not creds:
            raise GatewayStartError(
                f"gateway {self.name}: trading is on but no API credentials are configured "
                "(credentials.api_key_env/secret_env or *_file)"
            )
        self._ex = self._factory(cfg, creds, self._dialect)
        if hasattr(self._ex, "client") and hasattr(self._ex, "handle_message"):
            harden(self._ex, cfg.exchange, self.name, self._flags, self.frames)
        self.limiter.attach(self._ex)
        try:
            await self._retried("start", self._load_venue)
        except GatewayStartError:
            await self._close_exchange()
            raise
        except (AuthenticationError, PermissionDenied) as exc:
            await self._close_exchange()
            raise GatewayStartError(
                f"gateway {self.name}: {cfg.exchange} refused the API credentials: {exc}"
            ) from None
        except TRANSIENT as exc:
            await self._close_exchange()
            raise GatewayStartError(
                f"gateway {self.name}: cannot start on {cfg.exchange}: {type(exc).__name__} "
                f"in each of {cfg.timing.start_attempts} attempts: {exc}"
            ) from None
        except ExchangeError as exc:
            await self._close_exchange()
            raise GatewayStartError(
                f"gateway {self.name}: cannot start on {cfg.exchange}: "
                f"{type(exc).__name__}: {exc}"
            ) from None
        self._running = True
        self._set_health("gateway", HealthState.CONNECTED, f"connected to {cfg.exchange}")
        if stream:
            self.start_streams()

    async def _load_venue(self) -> None:
        """What a start asks the venue: its clock, its markets, the balance when trading."""
        if self.config.sync_time:
            await self._sync_time()
        await self._ex.load_markets()  # a failed load is forgotten by ccxt: retrying reloads
        self._load_instruments()
        if self.config.trading:
            await self._ex.fetch_balance()

    async def _retried(self, what: str, call: Callable[[], Awaitable[T]]) -> T:
        """``call()``, tried ``timing.start_attempts`` times with backoff while the venue
        does not answer it in one piece (``TRANSIENT``); the last failure is raised.

        For the daemon's start (markets, balance, warm-up): one lost request there would
        otherwise refuse a whole start.  The streams have their own restart loops.
        """
        t = self.config.timing
        attempt = 1
        while True:
            try:
                return await call()
            except TRANSIENT as exc:
                if attempt >= t.start_attempts:
                    raise
                log.warning("gateway_start_retry", gateway=self.name, venue=self.config.exchange,
                            call=what, attempt=attempt, attempts=t.start_attempts,
                            error=f"{type(exc).__name__}: {excerpt(str(exc))}")
                await asyncio.sleep(backoff_delay(attempt, t.backoff_initial_s, t.backoff_max_s,
                                                  t.backoff_jitter, self._rng))
                attempt += 1

    def start_streams(self) -> None:
        """Start the bar stream (``market_data``) and the order stream (``trading``).

        ``connect(stream=False)`` leaves this to the caller, so that a warm-up from
        ``history`` ends before live bars flow and no bar is both history and live.
        """
        if self._streaming or not self._running:
            return
        self._streaming = True
        cfg = self.config
        if cfg.market_data:
            for symbol in cfg.symbols:
                self._spawn(self._supervise(f"bars:{symbol}", lambda s=symbol: self._bar_loop(s)),
                            f"bars:{symbol}")
        if cfg.trading:
            self._spawn(self._supervise("orders", self._private_loop), "orders")

    async def close(self) -> None:
        """Let orders already handed over reach the venue (bounded), then stop everything."""
        # an order task cancelled mid-request leaves its outcome unknown to everybody
        await self._tasks.settle_orders(2 * self.config.timing.request_timeout_ms / 1000 + 1.0)
        self._running = False
        self._streaming = False
        # orders still of unknown outcome are settled by reconciliation at the next start
        await self._resolver.close()
        await self.limiter.close()
        await self._tasks.cancel_all()
        await self._close_exchange()

    def submit(self, order: OrderRequest) -> None:
        coid = order.client_order_id
        symbol = self._symbol_of.get(order.instrument_id)
        refusal = tracking.submit_refusal(
            self.name, order, listed=symbol is not None, trading=self.config.trading,
            connected=self._running, duplicate=coid in self._orders)
        if refusal is not None:
            self._emit_update(coid, OrderStatus.REJECTED, refusal)
            return
        assert symbol is not None
        banned = self.limiter.refusal()
        if banned:
            # queueing a new order through a ban would send a stale decision minutes late
            self._emit_update(coid, OrderStatus.REJECTED, banned)
            return
        tracked = _Tracked(coid, order.instrument_id, symbol, request=order)
        self._orders[coid] = tracked
        self._spawn(self._supervised_submit(tracked), f"submit:{coid}")

    def cancel(self, client_order_id: str) -> None:
        tracked = tracking.mark_cancel(self._orders, client_order_id)
        if tracked is not None and tracked.broker_order_id:
            # during a ban the cancel's requests wait in the limiter: queued, sent after
            self._spawn(self._supervised_cancel(tracked), f"cancel:{client_order_id}")
        # else: sent once the venue acknowledged the order (see _on_ack)

    async def open_orders(self) -> list[OrderReport]:
        out: list[OrderReport] = []
        for symbol, inst in self._inst_of.items():
            for o in await self._ex.fetch_open_orders(symbol):
                coid = client_order_id_of(o)
                if not coid:
                    log.warning("open_order_without_client_id", gateway=self.name, id=o.get("id"))
                    continue
                self._track_found(coid, inst, symbol, o)
                out.append(order_report(o, inst, coid))
        return out

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        tracked = self._orders.get(client_order_id)
        symbols = [tracked.symbol] if tracked else list(self._inst_of)
        o = await self._dialect.find_order(self._ex, client_order_id, symbols)
        if o is None:
            return None
        symbol = str(o.get("symbol"))
        inst = self._inst_of.get(symbol, tracked.instrument_id if tracked else symbol)
        self._track_found(client_order_id, inst, symbol, o)
        return order_report(o, inst, client_order_id)

    async def fills_since(self, ts: int) -> list[Fill]:
        """Every execution since ``ts`` (ns), with our client order ids (venue order looked up).

        Pages through the venue's whole history since ``ts`` (``gateways.ccxt.paging``):
        a fill missing here is a fill reconciliation never sees.
        """
        since_ms = ts // _MS
        by_symbol = await paging.trades_since(self._ex, self.config.exchange,
                                              list(self._inst_of), since_ms, self._now_ms())
        if any(by_symbol.values()):
            await self._learn_order_ids(since_ms)
        fills: list[Fill] = []
        for symbol, trades in by_symbol.items():
            inst = self._inst_of[symbol]
            for trade in trades:
                coid = await self._coid_for_trade(trade, symbol)
                if coid is None:
                    log.warning("trade_without_client_id", gateway=self.name, id=trade.get("id"))
                    continue
                fill = trade_to_fill(trade, coid, inst, self._quote_of(symbol),
                                     self._fee_prices)
                self._note_fee(fill)
                fills.append(fill)
        fills.sort(key=lambda f: (f.ts, f.trade_id))
        return fills

    def _note_fee(self, fill: Fill) -> None:
        """Say so when a fee in a third asset could not be valued (kept in its asset)."""
        if fill.fee_asset and not fill.fee_in_instrument and not fill.commission:
            log.warning("fee_not_valued", gateway=self.name, trade_id=fill.trade_id,
                        asset=fill.fee_asset, quantity=fill.fee_quantity,
                        hint=f"set fee_prices.{fill.fee_asset} in the gateway section")

    async def _learn_order_ids(self, since_ms: int) -> None:
        """Map venue order ids to ours from paged closed-order lists, where the venue has them.

        Without it every trade of an unknown order costs one order lookup.
        """
        orders = await paging.closed_orders_since(self._ex, self.config.exchange, since_ms)
        for o in orders or ():
            bid, coid = str(o.get("id") or ""), client_order_id_of(o)
            if bid and coid:
                self._coid_by_broker.setdefault(bid, coid)

    async def account(self) -> AccountReport:
        """Spot: quote-currency balances are cash, base-currency balances are positions.

        A position is the daemon's share of the wallet only: the base asset's balance
        minus the start-up baseline (``set_baseline``) and the configured ``external``
        holding, so coins the account held before the daemon are not its position.
        """
        bal = await self._ex.fetch_balance()
        total = _totals(bal)
        cash = {q: total.get(q, 0.0) for q in sorted(self._quotes)}
        positions: dict[str, float] = {}
        for inst, base in self.base_assets().items():
            qty = total.get(base, 0.0) - self._not_ours(base)
            if abs(qty) > _EPS:
                positions[inst] = qty
        free = bal.get("free") or {}
        buying_power = None
        if len(self._quotes) == 1:  # one quote currency: its free balance is what buys
            q = next(iter(self._quotes))
            buying_power = float(free.get(q) or 0.0)
        details = tuple(PositionReport(i, q) for i, q in sorted(positions.items()))
        # spot keeps no entry prices and no margin: those fields stay unreported
        return AccountReport(cash=cash, positions=positions, position_details=details,
                             buying_power=buying_power)

    async def wallet(self) -> dict[str, float]:
        """Total balance per asset (ccxt code) as the venue reports it, the daemon's or not."""
        return _totals(await self._ex.fetch_balance())

    def base_assets(self) -> dict[str, str]:
        """Instrument id -> the asset a position in it is held in (spot: the base)."""
        return {inst: str(self._ex.market(symbol)["base"])
                for symbol, inst in self._inst_of.items()}

    def set_baseline(self, balances: dict[str, float]) -> None:
        """What the account held before the daemon (per asset); ``account`` leaves it out."""
        self._baseline = dict(balances)

    def external_holdings(self) -> dict[str, float]:
        """The configured ``external`` holdings per asset (never the daemon's)."""
        return dict(self.config.external)

    def _not_ours(self, asset: str) -> float:
        return self._baseline.get(asset, 0.0) + self.config.external.get(asset, 0.0)

    # -- market data --------------------------------------------------------------------
    async def history(
        self, instrument_id: str, start_ns: int, end_ns: int | None = None
    ) -> History:
        """Closed bars opening in ``[start_ns, end_ns)``, paginated through ``fetch_ohlcv``.

        The end is capped at the venue's last closed bar ("now" on the exchange's
        clock).  Bad bars are dropped by the guard and count as missing.
        """
        symbol = self._symbol_of.get(instrument_id)
        if symbol is None:
            raise KeyError(f"gateway {self.name}: instrument {instrument_id!r} is not streamed "
                           f"(configured: {sorted(self._symbol_of)})")
        now = self._now_ms()
        tf_ms = self._tf_s * 1000
        closed_end = now - now % tf_ms  # a bar opening here or later has not closed
        end_ms = closed_end if end_ns is None else min(end_ns // _MS, closed_end)
        bars: list[Bar] = []
        for c in await self._fetch_ohlcv_range(symbol, start_ns // _MS, end_ms):
            if int(c[0]) + tf_ms > now:
                continue
            try:
                bars.append(candle_to_bar(c, instrument_id, self._tf_s))
            except (TypeError, ValueError):
                if self.guard is not None:
                    self.guard.reject(instrument_id, f"malformed candle {list(c)!r}")
        if self.guard is not None:
            bars = self.guard.filter(bars)
        end = end_ms * _MS
        return History(instrument_id, bars, start_ns, end,
                       expected_bars(start_ns, end, self._tf_s))

    async def warm_up(self, since_ns: int) -> list[Bar]:
        """History for every instrument, merged by (ts, id); streaming resumes after it."""
        bars: list[Bar] = []
        for inst, symbol in self._symbol_of.items():
            hist = await self.history(inst, since_ns)
            if not hist.complete:
                log.warning("history_incomplete", gateway=self.name, instrument=inst,
                            expected=hist.expected, got=len(hist.bars), missing=hist.missing)
            got = hist.bars
            if self.guard is not None:
                self.guard.seed(got)  # the live stream's band starts from the last close
            if got:
                closer = self._closers[symbol]
                last = got[-1].ts_open // _MS
                if closer.last_emitted_ms is None or last > closer.last_emitted_ms:
                    closer.last_emitted_ms = last
            bars.extend(got)
        bars.sort(key=lambda b: (b.ts, b.instrument_id))
        return bars

    async def warm_up_bars(self, count: int) -> list[Bar]:
        """Closed bars of every instrument opened in the last ``count`` intervals.

        "Now" is the exchange's clock (the measured server offset applies), so the
        warm-up ends at the venue's last closed candle whatever the local clock says.
        """
        if count <= 0:
            return []
        if not self._time_ok and self.config.sync_time:
            await self._sync_time()  # the warm-up's end is "now" on the venue's clock
        tf_ms = self._tf_s * 1000
        now = self._now_ms()
        since_ns = (now - now % tf_ms - count * tf_ms) * _MS
        bars = await self._retried("warm-up", lambda: self.warm_up(since_ns))
        cap = VENUE_CANDLE_CAP.get(self.config.exchange)
        for inst in self._symbol_of:
            got = sum(1 for b in bars if b.instrument_id == inst)
            report = WarmUpReport(inst, count, got, cap if cap is not None and cap < count
                                  else None)
            self.warmup_reports[inst] = report
            if report.short:
                # the models asked for more history than the venue serves: say so, loudly
                log.warning("warmup_short", gateway=self.name, venue=self.config.exchange,
                            instrument=inst, asked=count, got=got, venue_cap=report.venue_cap,
                            detail=report.describe())
        return bars

    async def _fetch_ohlcv_range(
        self, symbol: str, since_ms: int, until_ms: int | None
    ) -> list[list[float]]:
        limit = self.config.timing.history_page_limit
        tf_ms = self._tf_s * 1000
        out: list[list[float]] = []
        cursor = since_ms
        while until_ms is None or cursor < until_ms:
            page = await self._ex.fetch_ohlcv(symbol, self.config.timeframe, cursor, limit)
            page = [c for c in page if int(c[0]) >= cursor]
            if until_ms is not None:
                page = [c for c in page if int(c[0]) < until_ms]
            if not page:
                break
            out.extend(page)
            cursor = int(page[-1][0]) + tf_ms
            # with an end, a short page is not the end: a venue may cap pages below
            # our limit, so only an empty page or the end stops the walk
            if until_ms is None and len(page) < limit:
                break
        return out

    def _emit_bars(self, symbol: str, candles: list[Any]) -> list[Any]:
        """Emit closed candles as bars; returns the malformed ones (not emitted)."""
        inst = self._inst_of[symbol]
        sink = self._sink
        bad: list[Any] = []
        for c in candles:
            try:
                bar = candle_to_bar(c, inst, self._tf_s)
            except (TypeError, ValueError):
                # a value the venue left out (null) or sent as text: not a bar, and no
                # reason to end the stream; the caller may re-read it from REST
                bad.append(c)
                continue
            sink(bar)
        self.stats.bars += len(candles) - len(bad)
        return bad

    async def _emit_or_repair(self, symbol: str, candles: list[Any]) -> None:
        """Emit streamed closed candles; one whose last update was bad is re-read from REST."""
        inst = self._inst_of[symbol]
        tf_ms = self._tf_s * 1000
        for c in self._emit_bars(symbol, candles):
            self.stats.skipped_messages += 1
            log.error("bad_candle_update", gateway=self.name, venue=self.config.exchange,
                      symbol=symbol, raw=excerpt(list(c)))
            repaired: list[Any] = []
            try:
                t = int(c[0])
                rows = await self._fetch_ohlcv_range(symbol, t, t + tf_ms)
                repaired = [r for r in rows if int(r[0]) == t]
            except (OperationFailed, ExchangeError, TypeError, ValueError) as exc:
                log.warning("bar_repair_failed", gateway=self.name, symbol=symbol,
                            error=f"{type(exc).__name__}: {exc}")
            if repaired and not self._emit_bars(symbol, repaired[-1:]):
                self.stats.repaired_bars += 1
                log.info("bar_repaired_from_rest", gateway=self.name, symbol=symbol, open_ms=t)
            elif self.guard is not None:
                self.guard.reject(inst, f"malformed candle {list(c)!r} (REST repair failed)")

    async def _backfill(self, symbol: str, until_ms: int | None = None) -> int:
        closer = self._closers[symbol]
        start = closer.next_open_ms()
        if start is None:
            cur = closer.current
            if cur is None:
                # first contact: the last closed candle becomes the baseline, so the
                # stream starts with the first bar that closes after we connected
                tf_ms = self._tf_s * 1000
                now = self._now_ms()
                recent = await self._fetch_ohlcv_range(symbol, now - 3 * tf_ms, None)
                closer.on_rest(recent, now)
                return 0
            start = int(cur[0])
        candles = await self._fetch_ohlcv_range(symbol, start, until_ms)
        closed = closer.on_rest(candles, self._now_ms())
        self._emit_bars(symbol, closed)
        self.stats.backfilled_bars += len(closed)
        return len(closed)

    async def _supervise(self, stream: str, loop: Callable[[], Any]) -> None:
        """Run a stream loop for the life of the gateway: no exception of any kind ends it."""
        t = self.config.timing
        crashes = FailureCounter(t.healthy_reset_s)
        while self._running:
            try:
                await loop()
                return  # the loop ends only when the gateway stops
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug or a message nobody foresaw: restart, loudly
                n = crashes.failed()
                self.stats.task_restarts += 1
                delay = backoff_delay(n, t.backoff_initial_s, t.backoff_max_s,
                                      t.backoff_jitter, self._rng)
                log.exception("stream_loop_crashed", gateway=self.name, stream=stream,
                              venue=self.config.exchange, error=f"{type(exc).__name__}: {exc}",
                              restart_in=round(delay, 3))
                self._set_health(stream, HealthState.DEGRADED,
                                 f"{stream} loop crashed ({type(exc).__name__}: {exc}); "
                                 "restarting")
                await asyncio.sleep(delay)

    async def _ensure_time(self, stream: str, attempt: int) -> bool:
        """True once the venue's clock is known; otherwise retry with backoff (blocks the stream).

        Closing a bar on the host clock alone publishes forming candles as closed
        when the host runs ahead, so without a measured offset nothing streams.
        """
        if self._time_ok or not self.config.sync_time or not self._ex.has.get("fetchTime"):
            return True
        if await self._sync_time():
            return True
        t = self.config.timing
        self._set_health(stream, HealthState.DISCONNECTED,
                         "venue time unknown (time sync failed); not streaming on the host clock")
        await asyncio.sleep(backoff_delay(attempt, t.backoff_initial_s, t.backoff_max_s,
                                          t.backoff_jitter, self._rng))
        return False

    async def _bar_loop(self, symbol: str) -> None:
        t = self.config.timing
        stream = f"bars:{symbol}"
        failures = FailureCounter(t.healthy_reset_s)
        time_attempts = 0
        while self._running:
            if not await self._ensure_time(stream, time_attempts + 1):
                time_attempts += 1
                continue
            if self.config.use_websocket and failures.count < t.ws_failures_before_polling:
                try:
                    if failures.count:
                        await self._sync_time()  # a long outage may have moved the clocks
                    await self._backfill(symbol)
                    if self.health.get(stream, HealthState.CONNECTED) in UNHEALTHY:
                        self._set_health(stream, HealthState.RESYNCED,
                                         "bar stream reconnected, gap backfilled")
                    await self._stream_bars(symbol, failures)
                except asyncio.CancelledError:
                    raise
                except (OperationFailed, ExchangeError, StreamStalled) as exc:
                    n = failures.failed()
                    self.stats.ws_errors += 1
                    self.stats.reconnects += 1
                    delay = backoff_delay(n, t.backoff_initial_s, t.backoff_max_s,
                                          t.backoff_jitter, self._rng)
                    self._set_health(stream, HealthState.DISCONNECTED,
                                     f"bar stream dropped: {type(exc).__name__}: {exc}")
                    log.warning("bar_stream_error", gateway=self.name, symbol=symbol,
                                error=f"{type(exc).__name__}: {exc}", retry_in=round(delay, 3))
                    await asyncio.sleep(delay)
                    continue
            else:
                await self._poll_bars(symbol)
                failures.count = 0  # back to the websocket after the polling period

    async def _stream_bars(self, symbol: str, failures: FailureCounter | None = None) -> None:
        """Consume ``watch_ohlcv`` until it fails or stalls; a quiet market is closed through REST.

        The watch is only a wake-up: a ``watch_*`` call resolves on one message,
        and messages arriving before the next call land in ccxt's cache without
        waking anybody.  So the next watch is armed first, then the cache is read.
        """
        ex = self._ex
        closer = self._closers[symbol]
        tf = self.config.timeframe
        t = self.config.timing
        grace_ms = int(t.close_grace_s * 1000)
        quiet_floor_s = 0.05
        live = Liveness(t.liveness_interval_s, t.liveness_misses)
        watch: asyncio.Task[Any] = asyncio.ensure_future(ex.watch_ohlcv(symbol, tf))
        if failures is not None:
            failures.healthy()  # the healthy spell starts with the (re)connect
        try:
            while self._running:
                end = closer.current_end_ms()
                timeout = min(_SAFETY_WAKE_S, t.liveness_interval_s / 2)
                if end is not None:
                    timeout = min(timeout, max(quiet_floor_s,
                                               (end + grace_ms - self._now_ms()) / 1e3))
                done, _ = await asyncio.wait({watch}, timeout=timeout)
                if done:
                    returned = watch.result()  # raises the stream's error, if any
                    watch = asyncio.ensure_future(ex.watch_ohlcv(symbol, tf))
                    await asyncio.sleep(0)  # let the new watch register before reading
                    if failures is not None:
                        failures.healthy()
                else:
                    returned = []
                await self._consume_candles(symbol, self._fresh_candles(symbol, returned))
                end_now = closer.current_end_ms()
                if not done and end_now is not None and end_now + grace_ms <= self._now_ms():
                    # nothing arrived although the forming candle should be over (by the
                    # venue's clock): ask REST (Kraken sends no candle without trades)
                    got = await self._backfill(symbol)
                    quiet_floor_s = 0.05 if got else max(t.poll_interval_s, t.poll_floor_s)
                elif done:
                    quiet_floor_s = 0.05
                clients = stream_clients(ex, "ohlc")
                why = await live.check(clients)
                if why is not None:
                    self.stats.stalls += 1
                    log.warning("bar_stream_stalled", gateway=self.name, symbol=symbol,
                                venue=self.config.exchange, reason=why)
                    await drop_clients(ex, clients, f"liveness: {why}")
                    raise StreamStalled(why)
        finally:
            _discard(watch)

    async def _consume_candles(self, symbol: str, candles: list[Any]) -> None:
        closer = self._closers[symbol]
        for c in candles:
            try:
                res = closer.on_update(c)
            except (TypeError, ValueError, IndexError) as exc:
                # an update without a usable open time: nothing to attach it to
                self.stats.skipped_messages += 1
                log.error("bad_candle_skipped", gateway=self.name, venue=self.config.exchange,
                          symbol=symbol, error=str(exc), raw=excerpt(c))
                continue
            if res.closed:
                await self._emit_or_repair(symbol, res.closed)
            if res.gap_from_ms is not None:
                filled = await self._fetch_ohlcv_range(symbol, res.gap_from_ms, res.gap_to_ms)
                got = closer.on_rest(filled, self._now_ms())
                self._emit_bars(symbol, got)
                self.stats.backfilled_bars += len(got)
            cur = closer.current
            if cur is not None and self._flags.is_final(symbol, int(cur[0])):
                # the venue's own "closed" flag (Binance k.x): final now, not at the next open
                await self._emit_or_repair(symbol, closer.close_current())

    def _fresh_candles(self, symbol: str, returned: list[Any]) -> list[Any]:
        """Everything new in ccxt's candle cache, not only what woke the watcher.

        A ``watch_*`` call resolves on one message; messages that arrive before
        the next call only land in the cache, so the cache is read from its end
        back to the candle being formed.
        """
        cache = (self._ex.ohlcvs.get(symbol) or {}).get(self.config.timeframe)
        if not cache:
            return returned
        closer = self._closers[symbol]
        floor = closer.current[0] if closer.current is not None else (
            closer.last_emitted_ms + 1 if closer.last_emitted_ms is not None else None)
        if floor is None:
            return list(cache)
        out = []
        for i in range(len(cache) - 1, -1, -1):
            c = cache[i]
            if c[0] < floor:
                break
            out.append(c)
        out.reverse()
        return out

    async def _poll_bars(self, symbol: str) -> None:
        """REST polling when websockets are off or keep failing; returns to retry the WS."""
        t = self.config.timing
        self.stats.polling_fallbacks += 1
        self._set_health(f"bars:{symbol}", HealthState.DEGRADED,
                         "bars by REST polling (websocket off or failing)")
        loop = asyncio.get_running_loop()
        retry_ws_at = loop.time() + t.ws_retry_after_polling_s
        while self._running:
            try:
                got = await self._backfill(symbol)
                self.stats.polled_bars += got
            except (OperationFailed, ExchangeError) as exc:
                log.warning("bar_poll_error", gateway=self.name, symbol=symbol,
                            error=f"{type(exc).__name__}: {exc}")
            if self.config.use_websocket and loop.time() >= retry_ws_at:
                return
            await asyncio.sleep(max(t.poll_interval_s, t.poll_floor_s))

    # -- orders -----------------------------------------------------------------------
    async def _submit(self, tracked: _Tracked) -> None:
        req = tracked.request
        assert req is not None
        ex = self._ex
        symbol = tracked.symbol
        try:
            kind = ccxt_order_type(req.order_type)
            amount = float(ex.amount_to_precision(symbol, req.quantity))
            price = None
            if req.order_type is OrderType.LIMIT:
                if req.limit_price is None:
                    raise InvalidOrder("limit order without a limit price")
                price = float(ex.price_to_precision(symbol, req.limit_price))
            why = self._constraint_violation(tracked.instrument_id, amount, price)
            if why:
                raise InvalidOrder(why)
        except (InvalidOrder, BrokerMessageError, BadSymbol) as exc:
            self._reject(tracked, str(exc))
            return
        # one order at a time per market: concurrent requests could reach the venue out
        # of the kernel's decision order (a sell before the buy it reduces)
        async with self._submit_locks.setdefault(symbol, asyncio.Lock()):
            await self._place(tracked, kind, amount, price)

    async def _place(self, tracked: _Tracked, kind: str, amount: float,
                     price: float | None) -> None:
        req = tracked.request
        assert req is not None
        ex = self._ex
        t = self.config.timing
        symbol = tracked.symbol
        params = {"clientOrderId": tracked.client_order_id}
        for attempt in range(1, t.resolve_attempts + 1):
            banned = self.limiter.refusal()
            if banned:
                # a ban began while this order queued for its market: it is not sent late
                self._reject(tracked, banned)
                return
            tracked.submit_ms = self._now_ms()
            tracked.in_flight = True
            self.stats.submits_sent += 1
            try:
                o = await ex.create_order(symbol, kind, req.side.value.lower(), amount, price,
                                          dict(params))
            except (InsufficientFunds, InvalidOrder) as exc:
                self._reject(tracked, _reason(exc))
                return
            except (RateLimitExceeded, DDoSProtection) as exc:
                self.stats.rate_limited += 1
                if self.limiter.banned:
                    # a ban can outlast the order's relevance: never re-sent; the resolver's
                    # lookups wait out the ban in the limiter and settle it by our id
                    self._outcome_unknown(tracked, exc)
                    return
                # a throttled request was not executed; the limiter holds every request for
                # Retry-After; make sure (by our id), then try again
                await asyncio.sleep(backoff_delay(attempt, t.backoff_initial_s, t.backoff_max_s,
                                                  t.backoff_jitter, self._rng))
                try:
                    found = await self._lookup(tracked)
                except Exception as lookup_exc:  # noqa: BLE001 - any failure: not sure any more
                    log.warning("submit_lookup_failed", gateway=self.name,
                                client_order_id=tracked.client_order_id,
                                error=_excerpt(lookup_exc))
                    self._outcome_unknown(tracked, exc)
                    return
                if found is not None:
                    tracked.in_flight = False
                    await self._apply_order(tracked, found)
                    return
                log.warning("submit_rate_limited", gateway=self.name,
                            client_order_id=tracked.client_order_id, error=_excerpt(exc))
                continue
            except OperationFailed as exc:
                # a timeout, a dropped connection or the venue's own 5xx ("execution
                # status unknown"): the order may exist; find it, never send it again
                self._outcome_unknown(tracked, exc)
                return
            except (AuthenticationError, PermissionDenied, ExchangeError) as exc:
                self._reject(tracked, _reason(exc))
                return
            if not isinstance(o, dict) or not o.get("id"):
                # an answer without the venue's order id (a body cut short, a proxy page)
                # says nothing about the order: find it by our id instead
                self._outcome_unknown(tracked, BrokerMessageError(
                    f"order answer without an order id: {str(o)[:EXCERPT]}"))
                return
            await self._on_ack(tracked, o)
            return
        self._reject(tracked, f"rate limited {t.resolve_attempts} times; not sent")

    async def _on_ack(self, tracked: _Tracked, o: dict[str, Any]) -> None:
        tracked.in_flight = False
        bid = str(o.get("id") or "")
        if bid and not tracked.broker_order_id:
            tracked.broker_order_id = bid
            self._coid_by_broker[bid] = tracked.client_order_id
        if not tracked.accepted_sent and order_status(o) is not OrderStatus.REJECTED:
            tracked.accepted_sent = True
            self._emit_update(tracked.client_order_id, OrderStatus.ACCEPTED, "", bid)
        for trade in o.get("trades") or []:
            if trade.get("id"):
                # an order response's trades are partial: they omit what the order says
                trade = dict(trade)
                trade["order"] = trade.get("order") or bid
                trade["side"] = trade.get("side") or o.get("side")
                trade["timestamp"] = trade.get("timestamp") or o.get("timestamp")
                self._on_trade(trade)
        await self._apply_order(tracked, o)
        if tracked.cancel_requested and not tracked.terminal_sent:
            await self._cancel(tracked)

    async def _lookup(self, tracked: _Tracked) -> dict[str, Any] | None:
        """The venue's view of an order by our id; None if absent (raises on network trouble)."""
        return await self._dialect.find_order(self._ex, tracked.client_order_id, [tracked.symbol])

    def _outcome_unknown(self, tracked: _Tracked, exc: Exception) -> None:
        """The submit's answer was lost: report OUTCOME_UNKNOWN and resolve by our id."""
        why = f"{type(exc).__name__}: {exc}"
        log.warning("submit_outcome_unknown", gateway=self.name,
                    client_order_id=tracked.client_order_id, error=why)
        tracking.resolve_unknown(tracked, why, self._emit_update, self._resolver)

    async def _resolve_lookup(self, coid: str) -> dict[str, Any] | None:
        tracked = self._orders.get(coid)
        if tracked is None or tracked.terminal_sent:
            return {}  # settled meanwhile (a stream or the poller saw it): nothing to ask
        return await self._lookup(tracked)

    async def _resolve_found(self, coid: str, o: dict[str, Any]) -> None:
        tracked = self._orders.get(coid)
        if tracked is None or not o:
            return
        self.stats.resolved_by_query += 1
        await tracking.apply_found(tracked, o, self._apply_order, self._cancel)

    def _resolve_absent(self, coid: str, reason: str) -> None:
        tracked = self._orders.get(coid)
        if tracked is not None:
            self._reject(tracked, reason)

    async def _cancel(self, tracked: _Tracked) -> None:
        """Cancel until the venue shows the order ended, or the bound marks it lost.

        Re-sending a cancel is harmless (the venue answers "unknown order" once it is
        gone), so unlike a submit a failed cancel is simply tried again with backoff.
        """
        t = self.config.timing
        loop = asyncio.get_running_loop()
        deadline = loop.time() + t.unknown_order_timeout_s
        attempt = 0
        while self._running and not tracked.terminal_sent:
            attempt += 1
            o: dict[str, Any] | None = None
            try:
                o = await self._ex.cancel_order(tracked.broker_order_id, tracked.symbol)
            except (OrderNotFound, InvalidOrder) as exc:
                log.info("cancel_refused", gateway=self.name,
                         client_order_id=tracked.client_order_id, reason=_excerpt(exc))
            except Exception as exc:  # noqa: BLE001 - no answer: ask the venue's view below
                log.warning("cancel_failed", gateway=self.name, venue=self.config.exchange,
                            client_order_id=tracked.client_order_id, error=_excerpt(exc))
            if not isinstance(o, dict) or o.get("status") not in ("canceled", "closed",
                                                                  "expired"):
                try:
                    o = await self._lookup(tracked)
                except Exception as exc:  # noqa: BLE001 - try again after a pause
                    log.warning("cancel_lookup_failed", gateway=self.name,
                                venue=self.config.exchange,
                                client_order_id=tracked.client_order_id, error=_excerpt(exc))
                    o = None
            if isinstance(o, dict) and o:
                await self._apply_order(tracked, o)
                if tracked.terminal_sent or o.get("status") in ("canceled", "closed",
                                                               "expired"):
                    return
            if loop.time() >= deadline:
                self._order_lost(tracked.client_order_id,
                                 f"lost: cancel outcome unknown after "
                                 f"{t.unknown_order_timeout_s:g} s")
                return
            await asyncio.sleep(backoff_delay(attempt, t.backoff_initial_s, t.backoff_max_s,
                                              t.backoff_jitter, self._rng))

    # -- supervision --------------------------------------------------------------------
    async def _supervised_submit(self, tracked: _Tracked) -> None:
        """``_submit``, but no exception of any kind leaves the order without an outcome."""
        try:
            await self._submit(tracked)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("submit_task_error", gateway=self.name, venue=self.config.exchange,
                      client_order_id=tracked.client_order_id, error=_excerpt(exc))
            if tracked.terminal_sent or tracked.accepted_sent:
                return  # the outcome is known; the streams and poller carry on
            if tracked.in_flight:
                self._outcome_unknown(tracked, exc)  # it may have been sent: resolve by our id
            else:
                self._reject(tracked, f"not sent: {_excerpt(exc)}")

    async def _supervised_cancel(self, tracked: _Tracked) -> None:
        """``_cancel`` with every exception logged (it already retries and bounds itself)."""
        try:
            await self._cancel(tracked)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.error("cancel_task_error", gateway=self.name, venue=self.config.exchange,
                      client_order_id=tracked.client_order_id, error=_excerpt(exc))
            self._order_lost(tracked.client_order_id, f"lost: cancel failed ({_excerpt(exc)})")

    def _order_lost(self, coid: str, reason: str) -> None:
        """Give up on an order whose outcome stayed unknown: error, health event, EXPIRED.

        EXPIRED rather than REJECTED: the venue may well hold (or have filled) the order,
        and REJECTED would claim it refused it; EXPIRED also follows ACCEPTED and
        PARTIALLY_FILLED, which a lost cancel needs.  Reconciliation at the next start
        compares positions with the venue.  Never re-sent.
        """
        tracked = self._orders.get(coid)
        if tracked is None or tracked.terminal_sent:
            return
        tracked.in_flight = False
        tracked.terminal_sent = True
        self.stats.lost_orders += 1
        log.error("order_lost", gateway=self.name, venue=self.config.exchange,
                  client_order_id=coid, broker_order_id=tracked.broker_order_id, reason=reason)
        self._raw_sink(GatewayHealth(self._now_ms() * _MS, self.name, HealthState.DEGRADED,
                                     f"order {coid} {reason}"))
        self._emit_update(coid, OrderStatus.EXPIRED, reason, tracked.broker_order_id)

    def _on_limiter_change(self, paused: bool, reason: str) -> None:
        """A venue pause began (degraded) or ended (resynced): one health event each."""
        self._set_health("venue", HealthState.DEGRADED if paused else HealthState.RESYNCED,
                         reason)

    async def _apply_order(self, tracked: _Tracked, o: dict[str, Any]) -> None:
        """Fold one venue view of an order into events (ack, fills, terminal status)."""
        bid = str(o.get("id") or "")
        if bid and not tracked.broker_order_id:
            tracked.broker_order_id = bid
            self._coid_by_broker[bid] = tracked.client_order_id
        status = order_status(o)
        if status is OrderStatus.REJECTED:
            self._reject(tracked, str((o.get("info") or {}).get("reason") or "rejected by venue"))
            return
        if not tracked.accepted_sent and not tracked.terminal_sent:
            tracked.accepted_sent = True
            self._emit_update(tracked.client_order_id, OrderStatus.ACCEPTED, "",
                              tracked.broker_order_id)
        for trade in self._parked.pop(tracked.broker_order_id, []):
            self._on_trade(trade)
        filled = o.get("filled")
        if filled is not None and float(filled) > tracked.filled + 1e-9:
            await self._catch_up_fills(tracked)
        if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED) and not tracked.terminal_sent:
            tracked.terminal_sent = True
            self._emit_update(tracked.client_order_id, status, "", tracked.broker_order_id)
        elif status is OrderStatus.FILLED and tracked.filled >= float(filled or 0) - 1e-9:
            tracked.terminal_sent = True  # the router derives FILLED from the fills
            self._retire(tracked.client_order_id)

    async def _catch_up_fills(self, tracked: _Tracked) -> None:
        if not tracked.broker_order_id:
            return
        since, params = self._dialect.trades_query(tracked.broker_order_id,
                                                   max(tracked.submit_ms - 60_000, 0))
        try:
            trades = await self._ex.fetch_my_trades(tracked.symbol, since, None, params)
        except OperationFailed as exc:
            log.warning("fill_catch_up_failed", gateway=self.name,
                        client_order_id=tracked.client_order_id, error=str(exc))
            return
        for trade in trades:
            if str(trade.get("order")) == tracked.broker_order_id:
                self._on_trade(trade)

    def _on_trade(self, trade: dict[str, Any]) -> None:
        tid = str(trade.get("id") or "")
        if not tid or tid in self._seen_trades:
            return
        bid = str(trade.get("order") or "")
        coid = self._coid_by_broker.get(bid)
        tracked = self._orders.get(coid) if coid else None
        if tracked is None:
            coid = client_order_id_of(trade)
            tracked = self._orders.get(coid) if coid else None
        if tracked is None:
            # the execution report can overtake the order's REST acknowledgement
            self._parked.setdefault(bid, []).append(trade)
            return
        try:
            fill = trade_to_fill(trade, tracked.client_order_id, tracked.instrument_id,
                                 self._quote_of(tracked.symbol), self._fee_prices)
            self._note_fee(fill)
        except BrokerMessageError as exc:
            # not marked seen: the REST catch-up may still deliver it whole
            log.error("bad_trade_message", gateway=self.name, error=str(exc))
            return
        self._seen_trades.add(tid)
        tracked.trade_ids.add(tid)
        tracked.filled += fill.quantity
        if not tracked.accepted_sent:
            tracked.accepted_sent = True
            self._emit_update(tracked.client_order_id, OrderStatus.ACCEPTED, "", bid)
        self._sink(fill)

    def _tracked_for(self, o: dict[str, Any]) -> _Tracked | None:
        bid = str(o.get("id") or "")
        coid = self._coid_by_broker.get(bid) or client_order_id_of(o)
        return self._orders.get(coid) if coid else None

    async def _private_loop(self) -> None:
        """Order and trade streams; bounded REST polling as fallback, websocket retried.

        Failures are forgotten after a healthy period and polling lasts only
        ``ws_retry_after_polling_s`` before the websocket is tried again, so a
        day of occasional drops never leaves the process polling for ever.
        """
        t = self.config.timing
        failures = FailureCounter(t.healthy_reset_s)
        loop = asyncio.get_running_loop()
        while self._running:
            if self.config.use_websocket and failures.count < t.ws_failures_before_polling:
                try:
                    await self._poll_orders_once()
                    if self.health.get("orders", HealthState.CONNECTED) in UNHEALTHY:
                        self._set_health("orders", HealthState.RESYNCED,
                                         "order stream reconnected, orders re-read")
                    await self._stream_private(failures)
                except asyncio.CancelledError:
                    raise
                except (OperationFailed, ExchangeError, StreamStalled) as exc:
                    self._set_health("orders", HealthState.DISCONNECTED,
                                     f"order stream dropped: {type(exc).__name__}: {exc}")
                    self.private_ws_ok = False
                    n = failures.failed()
                    self.stats.ws_errors += 1
                    delay = backoff_delay(n, t.backoff_initial_s, t.backoff_max_s,
                                          t.backoff_jitter, self._rng)
                    log.warning("order_stream_error", gateway=self.name,
                                error=f"{type(exc).__name__}: {exc}", retry_in=round(delay, 3))
                    await asyncio.sleep(delay)
            else:
                if self.config.use_websocket:
                    self.stats.polling_fallbacks += 1
                    self._set_health("orders", HealthState.DEGRADED,
                                     "orders by REST polling (websocket failing)")
                retry_ws_at = loop.time() + t.ws_retry_after_polling_s
                while self._running:
                    with contextlib.suppress(OperationFailed, ExchangeError):
                        await self._poll_orders_once(limit=t.poll_max_requests)
                    if self.config.use_websocket and loop.time() >= retry_ws_at:
                        failures.count = 0  # give the websocket another chance
                        break
                    await asyncio.sleep(max(t.poll_interval_s, t.poll_floor_s))

    async def _stream_private(self, failures: FailureCounter | None = None) -> None:
        ex = self._ex
        t = self.config.timing
        live = Liveness(t.liveness_interval_s, t.liveness_misses)
        orders_task = asyncio.ensure_future(ex.watch_orders())
        trades_task = asyncio.ensure_future(ex.watch_my_trades())
        if failures is not None:
            failures.healthy()  # the healthy spell starts with the (re)connect
        try:
            while self._running:
                done, _ = await asyncio.wait({orders_task, trades_task},
                                             timeout=min(_SAFETY_WAKE_S, t.liveness_interval_s / 2),
                                             return_when=asyncio.FIRST_COMPLETED)
                if trades_task in done:
                    trades_task.result()
                    trades_task = asyncio.ensure_future(ex.watch_my_trades())
                if orders_task in done:
                    orders_task.result()
                    orders_task = asyncio.ensure_future(ex.watch_orders())
                if done:
                    self.private_ws_ok = True
                    await asyncio.sleep(0)  # let the new watches register before reading
                # as with candles, read ccxt's caches: updates that arrived between
                # two watch calls are there and woke nobody
                for trade in list(ex.myTrades or []):
                    self._on_trade(trade)
                for o in list(ex.orders or []):
                    tracked = self._tracked_for(o)
                    if tracked is not None and not tracked.terminal_sent:
                        await self._apply_order(tracked, o)
                clients = [c for c in stream_clients(ex, "rders") + stream_clients(ex, "rades")
                           if "ohlc" not in str(list((c.subscriptions or {}).keys()))]
                clients = list({id(c): c for c in clients}.values())
                why = await live.check(clients)
                if why is not None:
                    self.stats.stalls += 1
                    log.warning("order_stream_stalled", gateway=self.name,
                                venue=self.config.exchange, reason=why)
                    await drop_clients(ex, clients, f"liveness: {why}")
                    raise StreamStalled(why)
                if failures is not None and clients:
                    failures.healthy()
        finally:
            for task in (orders_task, trades_task):
                _discard(task)

    async def _poll_orders_once(self, limit: int | None = None) -> None:
        """Re-read open orders from REST; ``limit`` caps lookups per call (rotating).

        After a reconnect every order is re-read once (``limit=None``); while
        polling, each cycle looks up at most ``limit`` orders, so a book of many
        open orders (Kraken: two calls per lookup) cannot starve other requests.
        """
        pending = [tr for tr in self._orders.values() if not tr.terminal_sent]
        if limit is not None and len(pending) > limit:
            start = self._poll_cursor % len(pending)
            pending = (pending[start:] + pending[:start])[:limit]
            self._poll_cursor = start + limit
        for tracked in pending:
            if tracked.terminal_sent:
                continue
            if tracked.in_flight and not tracked.broker_order_id:
                if tracked.submit_ms and self._now_ms() - tracked.submit_ms < 1000:
                    continue  # its own submit task is still on it
            o = await self._lookup(tracked)
            if o is None:
                continue
            if tracked.in_flight:
                self._resolver.forget(tracked.client_order_id)  # settled here instead
            tracked.in_flight = False
            await self._apply_order(tracked, o)

    # -- helpers ----------------------------------------------------------------------
    def _track_found(self, coid: str, inst: str, symbol: str, o: dict[str, Any]) -> None:
        """Remember an order discovered by a query (after a restart) so its fills map back."""
        tracked = self._orders.get(coid)
        if tracked is None:
            tracked = _Tracked(coid, inst, symbol, accepted_sent=True)
            tracked.submit_ms = int(o.get("timestamp") or self._now_ms())
            self._orders[coid] = tracked
        bid = str(o.get("id") or "")
        if bid:
            tracked.broker_order_id = bid
            self._coid_by_broker[bid] = coid

    async def _coid_for_trade(self, trade: dict[str, Any], symbol: str) -> str | None:
        bid = str(trade.get("order") or "")
        coid = self._coid_by_broker.get(bid) or client_order_id_of(trade)
        if coid is None and bid:
            try:
                o = await self._ex.fetch_order(bid, symbol)
            except OrderNotFound:
                return None
            coid = client_order_id_of(o)
            if coid:
                self._coid_by_broker[bid] = coid
        return coid

    async def _fetch_trades_since(self, symbol: str, since_ms: int) -> list[dict[str, Any]]:
        """Every trade in ``symbol`` since ``since_ms``, paged the venue's way."""
        by_symbol = await paging.trades_since(self._ex, self.config.exchange, [symbol],
                                              since_ms, self._now_ms())
        return by_symbol[symbol]

    def _constraint_violation(self, inst_id: str, amount: float, price: float | None) -> str | None:
        inst = self.instruments.get(inst_id)
        if inst is None:
            return None
        if amount <= 0:
            return f"quantity rounds to zero at lot step {inst.lot_step}"
        return inst.constraint_violation(amount, price, check_tick=price is not None)

    def _load_instruments(self) -> None:
        ex = self._ex
        self.instruments = {}
        for symbol, inst in self._inst_of.items():
            market = ex.markets.get(symbol)
            if market is None:
                raise GatewayStartError(
                    f"gateway {self.name}: symbol {symbol!r} is not listed on "
                    f"{self.config.exchange}"
                )
            self.instruments[inst] = instrument_from_market(market, inst, self.config.exchange,
                                                            ex.precisionMode)
            self._quotes.add(str(market["quote"]))

    def _quote_of(self, symbol: str) -> str | None:
        market = self._ex.markets.get(symbol) if self._ex is not None else None
        return str(market["quote"]) if market else None

    async def _sync_time(self) -> bool:
        """Measure the exchange clock offset (used to decide when a bar has closed).

        Returns whether the venue's clock is known.  A failure is reported as
        health ``degraded`` on the ``time`` stream; the bar loops then wait (see
        ``_ensure_time``) instead of closing bars on the host clock.

        Only dialects that sign with the server time get it written into ccxt's
        ``timeDifference``: Kraken derives its nonce from it, and a re-measured
        offset (one-second resolution there) could move the nonce backwards.
        """
        ex = self._ex
        if not ex.has.get("fetchTime"):
            self._time_ok = True  # nothing to measure: the venue offers no clock
            return True
        try:
            server_ms = await ex.fetch_time()
        except (OperationFailed, ExchangeError, BrokerMessageError) as exc:
            self.stats.time_sync_failures += 1
            log.warning("time_sync_failed", gateway=self.name, venue=self.config.exchange,
                        error=excerpt(str(exc)), offset_known=self._time_ok)
            self._set_health("time", HealthState.DEGRADED,
                             f"venue time sync failed ({type(exc).__name__}); "
                             + ("keeping the last measured offset" if self._time_ok
                                else "bars wait for the venue clock"))
            return self._time_ok
        if server_ms is None:
            return self._time_ok
        self._offset_ms = int(time.time() * 1000) - int(server_ms)
        self._time_ok = True
        if self.health.get("time") in UNHEALTHY:
            self._set_health("time", HealthState.RESYNCED, "venue time measured")
        if self._dialect.sign_with_server_time:
            ex.options["timeDifference"] = self._offset_ms
        return True

    def _now_ms(self) -> int:
        """Exchange time: local clock corrected by the measured server offset."""
        return int(time.time() * 1000) - self._offset_ms

    def _reject(self, tracked: _Tracked, reason: str) -> None:
        tracking.reject(tracked, reason, self._emit_update)

    def _set_health(self, stream: str, state: HealthState, reason: str) -> None:
        """Report a change of one stream's health (repeats of the same state are quiet)."""
        self.health.report(self._raw_sink, stream, state, reason, self._now_ms() * _MS)

    def _emit_update(self, coid: str, status: OrderStatus, reason: str = "",
                     broker_order_id: str = "") -> None:
        self._sink(OrderUpdate(self._now_ms() * _MS, coid, status, reason, broker_order_id))
        if status.is_terminal:
            self._retire(coid)

    def _retire(self, coid: str) -> None:
        """Bound memory: forget the oldest finished orders beyond ``tracking.KEEP_FINISHED``, and
        the trades parked for them."""
        for tracked in self._finished.retire(coid):
            self._parked.pop(tracked.broker_order_id, None)

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, name)

    async def _close_exchange(self) -> None:
        if self._ex is not None:
            with contextlib.suppress(Exception):
                await self._ex.close()


def _totals(balance: dict[str, Any]) -> dict[str, float]:
    """ccxt's ``total`` balances as floats (assets it reports without a total left out)."""
    return {k: float(v) for k, v in (balance.get("total") or {}).items() if v is not None}


def _discard(task: asyncio.Future[Any]) -> None:
    """Cancel a watch we no longer wait for, or collect its error so none goes unretrieved."""
    if not task.done():
        task.cancel()
    elif not task.cancelled():
        task.exception()


def _excerpt(exc: BaseException) -> str:
    """Exception type and the start of the venue's raw message, for logs and reasons."""
    return f"{type(exc).__name__}: {str(exc)[:EXCERPT]}"


def _reason(exc: Exception) -> str:
    """The exchange's own words: ccxt prefixes the venue id and appends the raw body."""
    return f"{type(exc).__name__}: {exc}"
