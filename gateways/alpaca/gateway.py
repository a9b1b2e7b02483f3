"""A ``Gateway`` and ``MarketData`` on Alpaca (US stocks and crypto) through alpaca-py.

* REST (orders, account, bars, activities) is alpaca-py's blocking client, run in a
  dedicated thread pool (``gateways.alpaca.rest``); the kernel's loop never blocks.
* Streams (``StockDataStream``/``CryptoDataStream`` bars, ``TradingStream``
  ``trade_updates``) run inside the loop under ``gateways.alpaca.streams.StreamRunner``:
  every drop and reconnect is a ``GatewayHealth`` event, and after a reconnect the bar
  gap is backfilled over REST and working orders are re-read, with no duplicate.

Rules that matter for money (the same as every gateway):

* a submit whose answer is lost (timeout, 5xx, dropped connection) goes to
  ``OUTCOME_UNKNOWN`` and is resolved by our client order id
  (``gateways.inflight.InFlightResolver``); it is never re-sent;
* a fill is emitted once per execution id, whichever path saw it first (stream,
  or the ``FILL`` account activities read when an order's filled quantity is ahead
  of the fills we know);
* a terminal status is emitted only after the order's fills.

Bars: closed only, each once, through ``gateways.validation.BarGuard``; Alpaca's
late "updated bar" (``u``) becomes a ``BarCorrection``, never a second bar.  Daily
bars are not streamed (Alpaca's ``d`` is the forming day): they are read over
REST once the session has closed and stamped at the session close.  US-equity
orders outside the exchange session are refused unless ``extended_hours`` is on.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass
from typing import Any

import structlog

from gateways import tracking
from gateways.alpaca.config import AlpacaGatewayConfig, is_crypto
from gateways.alpaca.convert import (
    AlpacaMessageError,
    as_correction,
    bar_close_ns,
    bar_from_alpaca,
    correction_from_alpaca,
    fill_from_activity,
    fill_from_update,
    fnum,
    ns_of,
    order_report,
    order_request,
    order_status,
    plain_symbol,
    sessions_closed,
    utc,
    word,
)
from gateways.alpaca.rest import RateLimited, RestRunner, message_of, status_of, tune
from gateways.alpaca.streams import StreamRunner
from gateways.base import (
    NS,
    AccountReport,
    EventSink,
    GatewayCapabilities,
    GatewayStartError,
    History,
    OrderReport,
    PositionReport,
    expected_bars,
)
from gateways.ccxt.config import CcxtConfigError, Credentials, load_credentials
from gateways.health import UNHEALTHY, StreamHealth
from gateways.inflight import InFlightResolver, backoff_delay
from gateways.tasks import GatewayTasks
from gateways.validation import BarGuard
from trader.core.calendars import is_open
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
from trader.core.instruments import AssetClass, Instrument
from trader.core.validation import validate_bar

log = structlog.get_logger(__name__)

_EPS = 1e-9
# what the venue says when it refuses an order outright (the order does not exist)
_REFUSED = (400, 401, 403, 404, 422)
# Alpaca lists account activities back to the account's opening: no horizon
FILLS_LOOKBACK_NS: int | None = None


def capabilities_for(config: AlpacaGatewayConfig) -> GatewayCapabilities:
    """What this gateway implements on Alpaca (not everything Alpaca offers)."""
    return GatewayCapabilities(
        order_types=frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP}),
        time_in_force=frozenset({"DAY", "GTC", "IOC", "FOK", "OPG", "CLS"}),
        modify=True,  # replace (PATCH) under a new client order id
        stop_limit=True,  # a STOP order with a limit price
        bracket=False,  # Alpaca has them; this gateway does not send them yet
        oco=False,
        hedged_positions=False,
        client_order_ids=True,
        market_data=config.market_data,
        trading=config.trading,
        fills_lookback_ns=FILLS_LOOKBACK_NS,
    )


@dataclass(slots=True)
class _Tracked(tracking.TrackedOrder):
    """Gateway-side memory of one order, with what Alpaca adds."""

    submit_ns: int = 0
    replaced_by: str = ""


@dataclass(slots=True)
class GatewayStats:
    """Counters for operators and tests."""

    bars: int = 0
    backfilled_bars: int = 0
    duplicate_bars: int = 0
    corrections: int = 0
    bad_frames: int = 0
    submits_sent: int = 0
    resolved_by_query: int = 0
    activity_fills: int = 0
    lost_orders: int = 0


class AlpacaGateway:
    """Market data and execution on one Alpaca account (paper or live)."""

    def __init__(self, config: AlpacaGatewayConfig, *, credentials: Credentials | None = None,
                 rng: random.Random | None = None) -> None:
        self.name = config.name
        self.config = config
        self.capabilities = capabilities_for(config)
        self._credentials = credentials
        self._rng = rng or random.Random()
        self._raw_sink: EventSink = lambda _e: None
        self._sink: EventSink = self._raw_sink
        self.guard: BarGuard | None = None
        self.health = StreamHealth(self.name)
        self.stats = GatewayStats()
        self.instruments: dict[str, Instrument] = {}
        self._tf_s = config.timeframe_seconds
        self._inst_of = dict(config.symbols)
        self._symbol_of = {v: k for k, v in config.symbols.items()}
        self._by_plain = {plain_symbol(s): s for s in config.symbols}
        self._fractionable: dict[str, bool] = {}
        self._last_open: dict[str, int] = {}  # instrument -> open time of the last bar emitted
        self._orders: dict[str, _Tracked] = {}
        self._coid_by_broker: dict[str, str] = {}
        self._seen_trades: set[str] = set()
        self._finished = tracking.FinishedOrders(self._orders, self._coid_by_broker,
                                                 self._seen_trades)
        self._submit_locks: dict[str, asyncio.Lock] = {}
        self._tasks = GatewayTasks(self.name)
        self._runners: list[StreamRunner] = []
        self._running = False
        self._streaming = False
        self._offset_ns = 0
        self._trading: Any = None
        self._stock_data: Any = None
        self._crypto_data: Any = None
        t = config.timing
        self.rest = RestRunner(self.name, t.rest_threads, max_wait_s=t.rate_limit_max_wait_s,
                               attempts=t.rate_limit_attempts)
        self._resolver = InFlightResolver.from_timing(
            t, self._resolve_lookup, self._resolve_found, self._resolve_absent,
            gateway=self.name, rng=self._rng, on_lost=self._order_lost)

    # -- protocol ----------------------------------------------------------------------------
    def bind(self, sink: EventSink) -> None:
        """Bars, order updates, fills and health go to ``sink``; bars through a guard."""
        self._raw_sink = sink
        self.guard = BarGuard(sink, gateway=self.name, venue="alpaca",
                              band=self.config.bar_band, now_ns=self.now_ns)
        self._sink = self.guard

    @property
    def resolver(self) -> InFlightResolver:
        """The resolver of submits whose outcome is unknown."""
        return self._resolver

    async def connect(self, *, stream: bool = True) -> None:
        """Check credentials, measure the venue clock, load the assets, start the streams."""
        if self._running:
            if stream:
                self.start_streams()
            return
        cfg = self.config
        try:
            creds = self._credentials if self._credentials is not None else load_credentials(
                cfg.credentials)
        except CcxtConfigError as exc:  # names the env var or file, never a value
            raise GatewayStartError(f"gateway {self.name}: {exc}") from None
        if not creds:
            raise GatewayStartError(
                f"gateway {self.name}: no Alpaca API credentials are configured "
                "(credentials.api_key_env/secret_env or *_file); market data needs them too")
        self._credentials = creds
        self._build_clients(creds)
        try:
            await self.rest.call(self._trading.get_account)
            await self._sync_clock()
            await self._load_assets()
        except GatewayStartError:
            raise
        except Exception as exc:  # noqa: BLE001 - every failure here stops the start
            if status_of(exc) in (401, 403):
                raise GatewayStartError(f"gateway {self.name}: Alpaca refused the API "
                                        f"credentials: {message_of(exc)}") from None
            raise GatewayStartError(f"gateway {self.name}: cannot start on Alpaca: "
                                    f"{message_of(exc)}") from None
        self._running = True
        self._set_health("gateway", HealthState.CONNECTED, "connected to Alpaca "
                         + ("paper" if cfg.paper else "live"))
        if stream:
            self.start_streams()

    def start_streams(self) -> None:
        """Start the bar streams (``market_data``) and the trade update stream (``trading``)."""
        if self._streaming or not self._running:
            return
        self._streaming = True
        cfg = self.config
        if cfg.market_data:
            stocks = [s for s in cfg.symbols if not is_crypto(s)]
            crypto = [s for s in cfg.symbols if is_crypto(s)]
            if self._tf_s >= 86_400:
                for s in cfg.symbols:  # daily bars: read after each session close
                    self._spawn(self._daily_loop(s), f"bars:daily:{s}")
            else:
                if stocks:
                    self._start_data_stream("bars:stocks", stocks, crypto=False)
                if crypto:
                    self._start_data_stream("bars:crypto", crypto, crypto=True)
        if cfg.trading:
            self._start_trading_stream()

    async def close(self) -> None:
        """Let orders already handed over reach the venue (bounded), then stop everything."""
        await self._tasks.settle_orders(2 * self.config.timing.request_timeout_s + 1.0)
        self._running = False
        self._streaming = False
        for runner in self._runners:
            await runner.stop()
        self._runners.clear()
        await self._resolver.close()
        await self._tasks.cancel_all()
        self.rest.close()

    def submit(self, order: OrderRequest) -> None:
        """Check what can be checked here, then send in a task; never blocks."""
        coid = order.client_order_id
        symbol = self._symbol_of.get(order.instrument_id)
        refusal = tracking.submit_refusal(
            self.name, order, listed=symbol is not None, trading=self.config.trading,
            connected=self._running, duplicate=coid in self._orders)
        if refusal is not None:
            self._emit_update(coid, OrderStatus.REJECTED, refusal)
            return
        assert symbol is not None
        tracked = _Tracked(coid, order.instrument_id, symbol, request=order)
        self._orders[coid] = tracked
        why = self.order_problem(order, symbol)
        if why is not None:
            self._reject(tracked, why)
            return
        self._spawn(self._supervised_submit(tracked), f"submit:{coid}")

    def cancel(self, client_order_id: str) -> None:
        """Ask for a cancel; the outcome arrives as an ``OrderUpdate``."""
        tracked = tracking.mark_cancel(self._orders, client_order_id)
        if tracked is not None and tracked.broker_order_id:
            self._spawn(self._supervised_cancel(tracked), f"cancel:{client_order_id}")

    def replace(self, client_order_id: str, new_client_order_id: str, *,
                quantity: float | None = None, limit_price: float | None = None) -> None:
        """Replace a working order (Alpaca PATCH): the old one ends CANCELED ("replaced"),
        the new one carries on under ``new_client_order_id``."""
        old = self._orders.get(client_order_id)
        if old is None or old.terminal_sent or not old.broker_order_id:
            self._emit_update(new_client_order_id, OrderStatus.REJECTED,
                              f"replace: {client_order_id} is not a working order here")
            return
        if new_client_order_id in self._orders:
            self._emit_update(new_client_order_id, OrderStatus.REJECTED,
                              f"duplicate client order id {new_client_order_id} (not sent)")
            return
        base = old.request
        new_req = None
        if base is not None:
            new_req = OrderRequest(self.now_ns(), new_client_order_id, base.instrument_id,
                                   base.side, quantity or base.quantity, base.order_type,
                                   limit_price if limit_price is not None else base.limit_price,
                                   base.stop_price, base.reduce_only, base.gateway)
        new = _Tracked(new_client_order_id, old.instrument_id, old.symbol, request=new_req)
        self._orders[new_client_order_id] = new
        self._spawn(self._replace(old, new, quantity, limit_price),
                    f"submit:{new_client_order_id}")

    async def open_orders(self) -> list[OrderReport]:
        """Working orders at the venue in our symbols (adopted: their fills map back)."""
        from alpaca.trading.enums import QueryOrderStatus
        from alpaca.trading.requests import GetOrdersRequest

        got = await self.rest.call(self._trading.get_orders,
                                   GetOrdersRequest(status=QueryOrderStatus.OPEN, limit=500))
        out: list[OrderReport] = []
        for o in got:
            symbol = self._symbol(str(o.symbol or ""))
            if symbol is None:
                continue
            inst = self._inst_of[symbol]
            self._track_found(o, inst, symbol)
            out.append(order_report(o, inst))
        return out

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        """The venue's view of one order by our id; None if it has none."""
        o = await self._find(client_order_id)
        if o is None:
            return None
        symbol = self._symbol(str(o.symbol or "")) or str(o.symbol)
        inst = self._inst_of.get(symbol, symbol)
        self._track_found(o, inst, symbol)
        return order_report(o, inst)

    async def fills_since(self, ts: int) -> list[Fill]:
        """Every execution since ``ts`` from the ``FILL`` account activities, paged."""
        fills: list[Fill] = []
        for act in await self._activities(ts):
            symbol = self._symbol(str(act.get("symbol") or ""))
            if symbol is None:
                continue
            coid = await self._coid_for(str(act.get("order_id") or ""))
            if coid is None:
                log.warning("fill_without_client_order_id", gateway=self.name,
                            order_id=act.get("order_id"))
                continue
            try:
                fills.append(fill_from_activity(act, coid, self._inst_of[symbol]))
            except AlpacaMessageError as exc:
                log.error("bad_fill_activity", gateway=self.name, error=str(exc))
        fills.sort(key=lambda f: f.ts)  # stable: the venue's order within one timestamp
        return fills

    async def account(self) -> AccountReport:
        """Cash, buying power, equity and positions (with average entry prices)."""
        acct = await self.rest.call(self._trading.get_account)
        positions = await self.rest.call(self._trading.get_all_positions)
        qty: dict[str, float] = {}
        avg: dict[str, float] = {}
        details: list[PositionReport] = []
        for p in positions:
            symbol = self._symbol(str(p.symbol))
            if symbol is None:
                continue  # held outside the configured symbols: not the daemon's
            inst = self._inst_of[symbol]
            q = fnum(p.qty, "position.qty")
            if word(p.side) == "short":
                q = -abs(q)
            a = fnum(p.avg_entry_price, "position.avg_entry_price")
            qty[inst], avg[inst] = q, a
            details.append(PositionReport(inst, q, a))
        cur = str(acct.currency or "USD")
        opt = lambda v: None if v is None else fnum(v, "account")  # noqa: E731
        return AccountReport(cash={cur: fnum(acct.cash, "account.cash")}, positions=qty,
                             avg_prices=avg, position_details=tuple(details),
                             buying_power=opt(acct.buying_power), equity=opt(acct.equity))

    # -- market data ---------------------------------------------------------------------------
    async def history(self, instrument_id: str, start_ns: int,
                      end_ns: int | None = None) -> History:
        """Closed bars opening in ``[start_ns, end_ns)``; alpaca-py follows ``next_page_token``.

        The end is capped at the last closed bar on the venue's clock.  Bad bars are
        dropped by the guard and count as missing.
        """
        symbol = self._symbol_of.get(instrument_id)
        if symbol is None:
            raise KeyError(f"gateway {self.name}: instrument {instrument_id!r} is not configured "
                           f"(configured: {sorted(self._symbol_of)})")
        now = self.now_ns()
        tf = self._tf_s * NS
        session_daily = self._tf_s >= 86_400 and not is_crypto(symbol)
        # intraday: up to the open of the forming bar; daily stocks: a day is closed at
        # its session close, which is not on a UTC grid
        closed_end = now if session_daily else now - now % tf
        end = closed_end if end_ns is None else min(end_ns, closed_end)
        bars: list[Bar] = []
        if end > start_ns:
            for b in await self._fetch_bars(symbol, start_ns, end):
                try:
                    bar = self._to_bar(b, instrument_id, symbol)
                except (AlpacaMessageError, TypeError, ValueError) as exc:
                    if self.guard is not None:
                        self.guard.reject(instrument_id, f"malformed bar ({exc})")
                    continue
                if start_ns <= bar.ts_open < end and bar.ts <= now:
                    bars.append(bar)
        if self.guard is not None:
            bars = self.guard.filter(bars)
        end = max(end, start_ns)
        expected = (sessions_closed(start_ns, end, self.config.calendar) if session_daily
                    else expected_bars(start_ns, end, self._tf_s))
        return History(instrument_id, bars, start_ns, end, expected)

    async def warm_up_bars(self, count: int) -> list[Bar]:
        """The last ``count`` closed bars of every instrument; streaming continues after them."""
        if count <= 0:
            return []
        tf = self._tf_s * NS
        now = self.now_ns()
        since = now - now % tf - count * tf
        out: list[Bar] = []
        for inst, symbol in self._symbol_of.items():
            if self._tf_s >= 86_400 and not is_crypto(symbol):
                # sessions, not calendar days: reach back far enough, keep the last ``count``
                hist = await self.history(inst, now - (count * 7 // 5 + 10) * tf)
                got = hist.bars[-count:]
            else:
                hist = await self.history(inst, since)
                got = hist.bars
                if not hist.complete:
                    log.warning("history_incomplete", gateway=self.name, instrument=inst,
                                expected=hist.expected, got=len(got), missing=hist.missing)
            if self.guard is not None:
                self.guard.seed(got)
            if got:
                self._last_open[inst] = max(self._last_open.get(inst, 0), got[-1].ts_open)
            out.extend(got)
        out.sort(key=lambda b: (b.ts, b.instrument_id))
        return out

    def now_ns(self) -> int:
        """The venue's clock: the host clock corrected by the offset measured at /v2/clock."""
        return time.time_ns() - self._offset_ns

    # -- checks -------------------------------------------------------------------------------
    def order_problem(self, order: OrderRequest, symbol: str) -> str | None:
        """Why ``order`` must not be sent (session, extended hours, fractional), or None."""
        why = self.capabilities.supports(order)
        if why is not None:
            return why
        if is_crypto(symbol):
            return None
        whole = abs(order.quantity - round(order.quantity)) < _EPS
        if not whole and not self._fractionable.get(symbol, False):
            return f"{symbol} is not fractionable on Alpaca: quantity {order.quantity:g} not sent"
        if is_open(self.config.calendar, self.now_ns()):
            return None
        if not self.config.extended_hours:
            return (f"US equity market is closed ({self.config.calendar} session) and "
                    "extended_hours is off: not sent")
        if order.order_type is not OrderType.LIMIT:
            return ("outside the regular session Alpaca takes only limit orders with "
                    "extended_hours (day): not sent")
        return None

    def _tif(self, symbol: str, order: OrderRequest) -> tuple[str, bool]:
        """Time in force and the extended-hours flag an order goes out with."""
        if is_crypto(symbol):
            return self.config.crypto_time_in_force, False
        whole = abs(order.quantity - round(order.quantity)) < _EPS
        extended = (self.config.extended_hours and order.order_type is OrderType.LIMIT
                    and not is_open(self.config.calendar, self.now_ns()))
        # fractional and extended-hours orders must be DAY orders at Alpaca
        return ("day" if extended or not whole else self.config.time_in_force), extended

    # -- orders: submit ------------------------------------------------------------------------
    async def _supervised_submit(self, tracked: _Tracked) -> None:
        """``_submit``, but no exception leaves the order without an outcome."""
        try:
            await self._submit(tracked)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.error("submit_task_error", gateway=self.name,
                      client_order_id=tracked.client_order_id, error=message_of(exc))
            if tracked.terminal_sent or tracked.accepted_sent:
                return
            if tracked.in_flight:
                self._outcome_unknown(tracked, exc)
            else:
                self._reject(tracked, f"not sent: {message_of(exc)}")

    async def _submit(self, tracked: _Tracked) -> None:
        req = tracked.request
        assert req is not None
        tif, extended = self._tif(tracked.symbol, req)
        try:
            body = order_request(req, tracked.symbol, tif, extended)
        except ValueError as exc:
            self._reject(tracked, str(exc))
            return
        # one order at a time per symbol: requests must reach the venue in decision order
        async with self._submit_locks.setdefault(tracked.symbol, asyncio.Lock()):
            tracked.submit_ns = self.now_ns()
            tracked.in_flight = True
            self.stats.submits_sent += 1
            try:
                o = await self.rest.call(self._trading.submit_order, body)
            except RateLimited as exc:
                self._reject(tracked, str(exc))
                return
            except Exception as exc:  # noqa: BLE001 - sorted by what it says about the order
                if status_of(exc) in _REFUSED:
                    self._reject(tracked, message_of(exc))  # refused: the order does not exist
                else:
                    self._outcome_unknown(tracked, exc)  # timeout, 5xx, garbled: may exist
                return
            tracked.in_flight = False
            await self._apply_order(tracked, o)
            if tracked.cancel_requested and not tracked.terminal_sent:
                await self._cancel(tracked)

    async def _replace(self, old: _Tracked, new: _Tracked, quantity: float | None,
                       limit_price: float | None) -> None:
        from alpaca.trading.requests import ReplaceOrderRequest

        body = ReplaceOrderRequest(qty=quantity, limit_price=limit_price,
                                   client_order_id=new.client_order_id)
        new.submit_ns = self.now_ns()
        new.in_flight = True
        # the stream's "replaced" update of the old order can beat the PATCH answer: it must
        # already know the new order's name (used only if the venue does replace the order)
        old.replaced_by = new.client_order_id
        try:
            o = await self.rest.call(self._trading.replace_order_by_id, old.broker_order_id, body)
        except Exception as exc:  # noqa: BLE001
            if status_of(exc) in _REFUSED:
                self._reject(new, f"replace refused: {message_of(exc)}")
            else:
                self._outcome_unknown(new, exc)
            return
        new.in_flight = False
        await self._apply_order(new, o)
        found = await self._find_safe(old)
        if found is not None:
            await self._apply_order(old, found)

    def _outcome_unknown(self, tracked: _Tracked, exc: BaseException) -> None:
        """The answer was lost: OUTCOME_UNKNOWN, then resolve by our id; never re-sent."""
        why = message_of(exc)
        log.warning("submit_outcome_unknown", gateway=self.name,
                    client_order_id=tracked.client_order_id, error=why)
        tracking.resolve_unknown(tracked, why, self._emit_update, self._resolver)

    async def _resolve_lookup(self, coid: str) -> Any:
        tracked = self._orders.get(coid)
        if tracked is None or tracked.terminal_sent or tracked.accepted_sent:
            return {}  # settled meanwhile by a stream
        return await self._find(coid)

    async def _resolve_found(self, coid: str, o: Any) -> None:
        tracked = self._orders.get(coid)
        if tracked is None or not o:
            return
        self.stats.resolved_by_query += 1
        await tracking.apply_found(tracked, o, self._apply_order, self._cancel)

    def _resolve_absent(self, coid: str, reason: str) -> None:
        tracked = self._orders.get(coid)
        if tracked is not None:
            self._reject(tracked, reason)

    def _order_lost(self, coid: str, reason: str) -> None:
        """Give up on an order whose outcome stayed unknown: error, health event, EXPIRED."""
        tracked = self._orders.get(coid)
        if tracked is None or tracked.terminal_sent:
            return
        tracked.in_flight = False
        tracked.terminal_sent = True
        self.stats.lost_orders += 1
        log.error("order_lost", gateway=self.name, client_order_id=coid, reason=reason)
        self._raw_sink(GatewayHealth(self.now_ns(), self.name, HealthState.DEGRADED,
                                     f"order {coid} {reason}"))
        self._emit_update(coid, OrderStatus.EXPIRED, reason, tracked.broker_order_id)

    # -- orders: cancel -------------------------------------------------------------------------
    async def _supervised_cancel(self, tracked: _Tracked) -> None:
        try:
            await self._cancel(tracked)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001
            log.error("cancel_task_error", gateway=self.name,
                      client_order_id=tracked.client_order_id, error=message_of(exc))
            self._order_lost(tracked.client_order_id, f"lost: cancel failed ({message_of(exc)})")

    async def _cancel(self, tracked: _Tracked) -> None:
        """Cancel until the venue shows the order ended (a repeated cancel is harmless)."""
        t = self.config.timing
        loop = asyncio.get_running_loop()
        deadline = loop.time() + t.unknown_order_timeout_s
        attempt = 0
        while self._running and not tracked.terminal_sent:
            attempt += 1
            try:
                await self.rest.call(self._trading.cancel_order_by_id, tracked.broker_order_id)
            except Exception as exc:  # noqa: BLE001 - 422: not cancelable any more; else retry
                log.info("cancel_answer", gateway=self.name,
                         client_order_id=tracked.client_order_id, answer=message_of(exc))
            found = await self._find_safe(tracked)
            if found is not None:
                await self._apply_order(tracked, found)
                if tracked.terminal_sent or order_status(found.status).is_terminal:
                    return
            if loop.time() >= deadline:
                self._order_lost(tracked.client_order_id,
                                 f"lost: cancel outcome unknown after "
                                 f"{t.unknown_order_timeout_s:g} s")
                return
            await asyncio.sleep(backoff_delay(attempt, t.backoff_initial_s, t.backoff_max_s,
                                              t.backoff_jitter, self._rng))

    # -- orders: state --------------------------------------------------------------------------
    async def _apply_order(self, tracked: _Tracked, o: Any) -> None:
        """Fold one venue view of an order into events: ack, missed fills, terminal status."""
        bid = str(o.id)
        if not tracked.broker_order_id:
            tracked.broker_order_id = bid
            self._coid_by_broker[bid] = tracked.client_order_id
        filled = fnum(o.filled_qty or 0, "order.filled_qty")
        status = order_status(o.status, filled)
        if status is OrderStatus.REJECTED:
            self._reject(tracked, "rejected by Alpaca")
            return
        if not tracked.accepted_sent and not tracked.terminal_sent:
            tracked.accepted_sent = True
            self._emit_update(tracked.client_order_id, OrderStatus.ACCEPTED, "", bid)
        if filled > tracked.filled + _EPS:
            await self._catch_up_fills(tracked)
        if tracked.terminal_sent:
            return
        if status in (OrderStatus.CANCELED, OrderStatus.EXPIRED):
            tracked.terminal_sent = True
            reason = ""
            if word(o.status) == "replaced":
                new = self._coid_by_broker.get(str(o.replaced_by or ""), tracked.replaced_by)
                reason = f"replaced by {new or o.replaced_by}"
            self._emit_update(tracked.client_order_id, status, reason, bid)
        elif status is OrderStatus.FILLED and tracked.filled >= filled - _EPS:
            tracked.terminal_sent = True  # the router derives FILLED from the fills
            self._retire(tracked.client_order_id)

    async def _catch_up_fills(self, tracked: _Tracked) -> None:
        """Fills the stream did not deliver, from the ``FILL`` activities of this order."""
        try:
            acts = await self._activities(max(tracked.submit_ns - 60 * NS, 0))
        except Exception as exc:  # noqa: BLE001 - the next view of the order tries again
            log.warning("fill_catch_up_failed", gateway=self.name,
                        client_order_id=tracked.client_order_id, error=message_of(exc))
            return
        for act in acts:
            if str(act.get("order_id")) != tracked.broker_order_id:
                continue
            try:
                fill = fill_from_activity(act, tracked.client_order_id, tracked.instrument_id)
            except AlpacaMessageError as exc:
                log.error("bad_fill_activity", gateway=self.name, error=str(exc))
                continue
            if self._on_fill(tracked, fill):
                self.stats.activity_fills += 1

    def _on_fill(self, tracked: _Tracked, fill: Fill) -> bool:
        """Emit ``fill`` once per execution id; True if it was new."""
        if fill.trade_id in self._seen_trades:
            return False
        self._seen_trades.add(fill.trade_id)
        tracked.trade_ids.add(fill.trade_id)
        tracked.filled += fill.quantity
        if not tracked.accepted_sent:
            tracked.accepted_sent = True
            self._emit_update(tracked.client_order_id, OrderStatus.ACCEPTED, "",
                              fill.broker_order_id)
        self._sink(fill)
        return True

    async def _on_trade_update(self, update: Any) -> None:
        """One ``trade_updates`` message: fills by execution id, states through ``_apply_order``."""
        o = update.order
        coid = self._coid_by_broker.get(str(o.id)) or str(o.client_order_id)
        tracked = self._orders.get(coid)
        if tracked is None:
            return  # not an order of this daemon (placed by hand, or by another process)
        if tracked.in_flight:
            self._resolver.forget(coid)
            tracked.in_flight = False
        event = word(update.event)
        if event in ("fill", "partial_fill"):
            try:
                fill = fill_from_update(update, tracked.client_order_id, tracked.instrument_id)
            except (AlpacaMessageError, ValueError) as exc:
                # not marked seen: the order view below is ahead of our fills, so the
                # activities deliver it whole
                log.error("bad_trade_update", gateway=self.name, error=str(exc))
                self.stats.bad_frames += 1
            else:
                if not tracked.broker_order_id:
                    tracked.broker_order_id = str(o.id)
                    self._coid_by_broker[str(o.id)] = coid
                self._on_fill(tracked, fill)
        await self._apply_order(tracked, o)

    async def _find(self, coid: str) -> Any:
        """The venue's order by our client order id; None if it has none (raises on trouble)."""
        try:
            return await self.rest.call(self._trading.get_order_by_client_id, coid)
        except Exception as exc:
            if status_of(exc) == 404:
                return None
            raise

    async def _find_safe(self, tracked: _Tracked) -> Any:
        try:
            return await self._find(tracked.client_order_id)
        except Exception as exc:  # noqa: BLE001 - no answer: the caller tries later
            log.warning("order_lookup_failed", gateway=self.name,
                        client_order_id=tracked.client_order_id, error=message_of(exc))
            return None

    async def _reread_orders(self) -> None:
        """After a trading stream reconnect: every working order's venue view, fills caught up."""
        for tracked in list(self._orders.values()):
            if tracked.terminal_sent or (tracked.in_flight and not tracked.broker_order_id):
                continue
            found = await self._find_safe(tracked)
            if found is not None:
                await self._apply_order(tracked, found)

    def _track_found(self, o: Any, inst: str, symbol: str) -> None:
        """Adopt an order found by a query (after a restart) so its events map back."""
        coid = str(o.client_order_id)
        tracked = self._orders.get(coid)
        if tracked is None:
            tracked = _Tracked(coid, inst, symbol, accepted_sent=True)
            tracked.submit_ns = ns_of(o.submitted_at or o.created_at)
            tracked.filled = fnum(o.filled_qty or 0, "order.filled_qty")
            self._orders[coid] = tracked
        tracked.broker_order_id = str(o.id)
        self._coid_by_broker[str(o.id)] = coid

    async def _coid_for(self, order_id: str) -> str | None:
        coid = self._coid_by_broker.get(order_id)
        if coid is None and order_id:
            try:
                o = await self.rest.call(self._trading.get_order_by_id, order_id)
            except Exception as exc:  # noqa: BLE001
                if status_of(exc) == 404:
                    return None
                raise
            coid = str(o.client_order_id)
            self._coid_by_broker[order_id] = coid
        return coid

    async def _activities(self, after_ns: int) -> list[dict[str, Any]]:
        """Every ``FILL`` activity after ``after_ns``, oldest first, following ``page_token``.

        A short page is not the end (the venue may cap below our page size): only an
        empty page is.
        """
        out: list[dict[str, Any]] = []
        token: str | None = None
        seen: set[str] = set()
        while True:
            params: dict[str, Any] = {"after": utc(after_ns).isoformat().replace("+00:00", "Z"),
                                      "direction": "asc", "page_size": 100}
            if token:
                params["page_token"] = token
            page = await self.rest.call(self._trading.get, "/account/activities/FILL", params)
            if not isinstance(page, list):
                raise AlpacaMessageError(f"account activities: expected a list, got "
                                         f"{str(page)[:200]}")
            fresh = [a for a in page if isinstance(a, dict) and str(a.get("id")) not in seen]
            if not fresh:
                return out
            for a in fresh:
                seen.add(str(a.get("id")))
            out.extend(fresh)
            token = str(fresh[-1].get("id"))

    # -- streams --------------------------------------------------------------------------------
    def _start_data_stream(self, label: str, symbols: list[str], *, crypto: bool) -> None:
        from alpaca.data.enums import DataFeed
        from alpaca.data.live import CryptoDataStream, StockDataStream

        creds = self._credentials
        assert creds is not None
        urls = self.config.urls
        if crypto:
            stream: Any = CryptoDataStream(creds.api_key, creds.secret,
                                           url_override=urls.crypto_stream)
        else:
            stream = StockDataStream(creds.api_key, creds.secret,
                                     feed=DataFeed(self.config.feed),
                                     url_override=urls.stock_stream)
        stream.subscribe_bars(self._on_stream_bar, *symbols)
        stream.subscribe_updated_bars(self._on_updated_bar, *symbols)

        async def on_up(reconnected: bool) -> None:
            await self._sync_clock()  # a long outage may have moved the clocks
            for s in symbols:
                await self._backfill(s)
            state = HealthState.RESYNCED if reconnected or self.health.get(
                label) in UNHEALTHY else HealthState.CONNECTED
            self._set_health(label, state, "bar stream reconnected, gap backfilled"
                             if state is HealthState.RESYNCED else "bar stream subscribed")

        self._run_stream(stream, label, subscribe=True, on_up=on_up)

    def _start_trading_stream(self) -> None:
        from alpaca.trading.stream import TradingStream

        creds = self._credentials
        assert creds is not None
        stream = TradingStream(creds.api_key, creds.secret, paper=self.config.paper,
                               url_override=self.config.urls.trading_stream)
        stream.subscribe_trade_updates(self._on_trade_update)

        async def on_up(reconnected: bool) -> None:
            await self._reread_orders()
            state = HealthState.RESYNCED if reconnected or self.health.get(
                "orders") in UNHEALTHY else HealthState.CONNECTED
            self._set_health("orders", state, "order stream reconnected, orders re-read"
                             if state is HealthState.RESYNCED else "order stream listening")

        self._run_stream(stream, "orders", subscribe=False, on_up=on_up)

    def _run_stream(self, stream: Any, label: str, *, subscribe: bool, on_up: Any) -> None:
        t = self.config.timing

        def on_down(reason: str) -> None:
            log.warning("alpaca_stream_down", gateway=self.name, stream=label, reason=reason)
            self._set_health(label, HealthState.DISCONNECTED, reason)

        def on_bad_frame(reason: str) -> None:
            self.stats.bad_frames += 1
            log.error("alpaca_bad_frame", gateway=self.name, stream=label, reason=reason)
            self._raw_sink(GatewayHealth(self.now_ns(), self.name, HealthState.DEGRADED,
                                         reason, label))

        runner = StreamRunner(stream, label, subscribe=subscribe, on_up=on_up, on_down=on_down,
                              on_bad_frame=on_bad_frame,
                              backoff=(t.backoff_initial_s, t.backoff_max_s, t.backoff_jitter),
                              rng=self._rng)
        self._runners.append(runner)
        task = runner.start(f"{self.name}:stream:{label}")
        self._tasks.adopt(task)

    async def _on_stream_bar(self, b: Any) -> None:
        """A closed minute bar ``b``: emitted once, after the last one emitted."""
        symbol = str(b.symbol)
        inst = self._inst_of.get(symbol)
        if inst is None:
            return
        bar = self._to_bar(b, inst, symbol)
        last = self._last_open.get(inst)
        if last is not None and bar.ts_open <= last:
            self.stats.duplicate_bars += 1  # already emitted (backfill or a repeat)
            return
        self._last_open[inst] = bar.ts_open
        self.stats.bars += 1
        self._sink(bar)

    async def _on_updated_bar(self, b: Any) -> None:
        """An updated bar ``u`` (late trades) of a bar already emitted: a ``BarCorrection``."""
        symbol = str(b.symbol)
        inst = self._inst_of.get(symbol)
        if inst is None:
            return
        bar = correction_from_alpaca(b, inst, self._tf_s, self.now_ns())
        last = self._last_open.get(inst)
        if last is None or bar.ts_open > last:
            # a revision of a bar we never emitted: the bar itself will come (or came as
            # history) with the final values; nothing to correct
            return
        problem = validate_bar(bar, None, None)
        if problem is not None:
            if self.guard is not None:
                self.guard.reject(inst, f"updated bar: {problem}")
            return
        self.stats.corrections += 1
        close = bar_close_ns(bar.ts_open, self._tf_s)
        self._raw_sink(as_correction(bar, close))

    async def _backfill(self, symbol: str) -> None:
        """Emit the closed bars missed since the last one emitted (first contact: none)."""
        inst = self._inst_of[symbol]
        tf = self._tf_s * NS
        now = self.now_ns()
        closed_end = now - now % tf
        last = self._last_open.get(inst)
        if last is None:
            # first contact: the stream starts with the first bar that closes from now on
            self._last_open[inst] = closed_end - tf
            return
        if last + tf >= closed_end:
            return
        hist = await self.history(inst, last + tf, closed_end)
        for bar in hist.bars:
            if bar.ts_open > self._last_open.get(inst, -1):
                self._last_open[inst] = bar.ts_open
                self.stats.backfilled_bars += 1
                self._raw_sink(bar)  # the guard already filtered ``hist``

    async def _daily_loop(self, symbol: str) -> None:
        """Daily bars: after each session close, read the closed day over REST and emit it."""
        inst = self._inst_of[symbol]
        t = self.config.timing
        label = f"bars:daily:{symbol}"  # a bar stream for the daemon's feed monitor
        attempt = 0
        while self._running:
            try:
                await self._sync_clock()
                last = self._last_open.get(inst)
                if last is None:
                    # first contact: the last closed day is history, not news
                    recent = await self.history(inst, self.now_ns() - 10 * 86_400 * NS)
                    self._last_open[inst] = (recent.bars[-1].ts_open if recent.bars
                                             else self.now_ns() - 86_400 * NS)
                else:
                    hist = await self.history(inst, last + 1)
                    for bar in hist.bars:
                        if bar.ts_open > self._last_open.get(inst, -1):
                            self._last_open[inst] = bar.ts_open
                            self.stats.bars += 1
                            self._raw_sink(bar)
                attempt = 0
                if self.health.get(label) in UNHEALTHY:
                    self._set_health(label, HealthState.RESYNCED, "daily bars read")
                await asyncio.sleep(t.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - keep polling, loudly
                attempt += 1
                self._set_health(label, HealthState.DEGRADED,
                                 f"daily bar read failed: {message_of(exc)}")
                await asyncio.sleep(backoff_delay(attempt, t.backoff_initial_s, t.backoff_max_s,
                                                  t.backoff_jitter, self._rng))

    # -- helpers --------------------------------------------------------------------------------
    def _build_clients(self, creds: Credentials) -> None:
        from alpaca.data.historical import CryptoHistoricalDataClient, StockHistoricalDataClient
        from alpaca.trading.client import TradingClient

        urls = self.config.urls
        timeout = self.config.timing.request_timeout_s
        self._trading = tune(TradingClient(creds.api_key, creds.secret, paper=self.config.paper,
                                           url_override=urls.trading), timeout)
        self._stock_data = tune(StockHistoricalDataClient(creds.api_key, creds.secret,
                                                          url_override=urls.data), timeout)
        self._crypto_data = tune(CryptoHistoricalDataClient(creds.api_key, creds.secret,
                                                            url_override=urls.data), timeout)

    async def _sync_clock(self) -> None:
        """Measure the venue clock (``/v2/clock``): bars close on its time, not the host's."""
        before = time.time_ns()
        clock = await self.rest.call(self._trading.get_clock)
        after = time.time_ns()
        self._offset_ns = (before + after) // 2 - ns_of(clock.timestamp)

    async def _load_assets(self) -> None:
        """Every configured symbol must be an active, tradable Alpaca asset."""
        from alpaca.trading.enums import AssetClass as AlpacaAssetClass
        from alpaca.trading.enums import AssetStatus
        from alpaca.trading.requests import GetAssetsRequest

        assets: dict[str, Any] = {}
        for crypto in sorted({is_crypto(s) for s in self.config.symbols}):
            cls = AlpacaAssetClass.CRYPTO if crypto else AlpacaAssetClass.US_EQUITY
            for a in await self.rest.call(self._trading.get_all_assets,
                                          GetAssetsRequest(status=AssetStatus.ACTIVE,
                                                           asset_class=cls)):
                assets[str(a.symbol)] = a
        for symbol, inst in self._inst_of.items():
            a = assets.get(symbol)
            if a is None or not a.tradable:
                raise GatewayStartError(f"gateway {self.name}: symbol {symbol!r} is not listed "
                                        "as an active tradable asset on Alpaca")
            self._fractionable[symbol] = bool(a.fractionable)
            crypto = is_crypto(symbol)
            step = float(a.min_trade_increment or 0) or (1e-9 if a.fractionable else 1.0)
            self.instruments[inst] = Instrument(
                id=inst, symbol=symbol, venue="ALPACA",
                asset_class=AssetClass.CRYPTO if crypto else AssetClass.EQUITY,
                quote_currency=symbol.split("/")[1] if crypto else "USD",
                tick_size=float(a.price_increment or 0.01), lot_step=step,
                min_quantity=max(float(a.min_order_size or 0), step) if crypto else 0.0)

    async def _fetch_bars(self, symbol: str, start_ns: int, end_ns: int) -> list[Any]:
        from alpaca.data.enums import Adjustment, DataFeed
        from alpaca.data.requests import CryptoBarsRequest, StockBarsRequest
        from alpaca.data.timeframe import TimeFrame, TimeFrameUnit

        tf = {60: TimeFrame(1, TimeFrameUnit.Minute), 300: TimeFrame(5, TimeFrameUnit.Minute),
              900: TimeFrame(15, TimeFrameUnit.Minute), 1800: TimeFrame(30, TimeFrameUnit.Minute),
              3600: TimeFrame(1, TimeFrameUnit.Hour), 14_400: TimeFrame(4, TimeFrameUnit.Hour),
              86_400: TimeFrame(1, TimeFrameUnit.Day)}[self._tf_s]
        # Alpaca's end is inclusive: stop a microsecond before the first bar not wanted
        start, end = utc(start_ns), utc(end_ns - 1_000)
        if is_crypto(symbol):
            got = await self.rest.call(self._crypto_data.get_crypto_bars, CryptoBarsRequest(
                symbol_or_symbols=symbol, timeframe=tf, start=start, end=end))
        else:
            got = await self.rest.call(self._stock_data.get_stock_bars, StockBarsRequest(
                symbol_or_symbols=symbol, timeframe=tf, start=start, end=end,
                feed=DataFeed(self.config.feed), adjustment=Adjustment(self.config.adjustment)))
        return list(got.data.get(symbol, []))

    def _to_bar(self, b: Any, inst: str, symbol: str) -> Bar:
        return bar_from_alpaca(b, inst, self._tf_s, equity_daily=not is_crypto(symbol),
                               mic=self.config.calendar)

    def _symbol(self, venue_symbol: str) -> str | None:
        """Our configured symbol for a venue spelling (``BTCUSD`` or ``BTC/USD``)."""
        if venue_symbol in self._inst_of:
            return venue_symbol
        return self._by_plain.get(plain_symbol(venue_symbol))

    def _reject(self, tracked: _Tracked, reason: str) -> None:
        tracking.reject(tracked, reason, self._emit_update)

    def _set_health(self, stream: str, state: HealthState, reason: str) -> None:
        """Report a change of one stream's health (repeats of the same state are quiet)."""
        self.health.report(self._raw_sink, stream, state, reason, self.now_ns())

    def _emit_update(self, coid: str, status: OrderStatus, reason: str = "",
                     broker_order_id: str = "") -> None:
        self._sink(OrderUpdate(self.now_ns(), coid, status, reason, broker_order_id))
        if status.is_terminal:
            self._retire(coid)

    def _retire(self, coid: str) -> None:
        """Bound memory: forget the oldest finished orders beyond ``tracking.KEEP_FINISHED``."""
        self._finished.retire(coid)

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, name)

