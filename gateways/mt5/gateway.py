"""A ``Gateway`` and ``MarketData`` for one MetaTrader 5 account (MetaTrader5 or mt5linux).

MT5 pushes nothing to Python: closed bars, fills of pending orders, SL/TP hits
and broker-side closes are all found by polling at ``timing.poll_interval_s``.
Every call goes through ``Mt5Worker``'s one thread; the loop never blocks.

Rules that matter for money:

* each order is written to the ``TicketBook`` before it is sent; its ticket and
  deal tickets follow, so reconciliation never depends on the comment;
* an IPC timeout (-10005) or a lost terminal during ``order_send`` is
  ``OUTCOME_UNKNOWN``: ``InFlightResolver`` looks the order up, it is never
  re-sent; a requote (nothing placed) is re-priced and retried, bounded;
* a fill is emitted once per deal ticket, whichever path saw it first, and a
  terminal status only after the order's deals.

Bars are the closed ones only (never the forming bar, index 0 of
``copy_rates_from_pos``), each once, through ``BarGuard``; times are converted
from the trade server's zone to UTC.  Losing the terminal is reported as
``GatewayHealth`` (disconnected, then resynced after the gap is backfilled).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from gateways.base import (
    DAY_NS,
    AccountReport,
    EventSink,
    GatewayCapabilities,
    GatewayStartError,
    History,
    OrderReport,
    expected_bars,
)
from gateways.health import StreamHealth
from gateways.inflight import InFlightResolver, backoff_delay
from gateways.mt5 import convert as cv
from gateways.mt5.config import Account, Mt5ConfigError, Mt5GatewayConfig, load_account
from gateways.mt5.retcodes import (
    AUTH_FAILED,
    UNKNOWN_OUTCOME_ERRORS,
    Verdict,
    describe,
    verdict,
)
from gateways.mt5.tickets import TicketBook
from gateways.mt5.worker import Mt5Worker, TerminalError, TerminalLost
from gateways.tasks import GatewayTasks
from gateways.tracking import mark_cancel, submit_refusal
from gateways.validation import BarGuard
from trader.core.events import (
    Bar,
    Fill,
    HealthState,
    OrderRequest,
    OrderStatus,
    OrderType,
    OrderUpdate,
    Side,
)

log = structlog.get_logger(__name__)

NS = 1_000_000_000
FAR_FUTURE_S = 4_102_444_800  # 2100-01-01: "up to now" for MT5 history queries


def capabilities_for(config: Mt5GatewayConfig) -> GatewayCapabilities:
    """What this gateway does, declared before it connects (the account mode is checked then)."""
    lookback = config.fills_lookback_days
    return GatewayCapabilities(
        order_types=frozenset({OrderType.MARKET, OrderType.LIMIT, OrderType.STOP}),
        time_in_force=frozenset({"GTC"}), modify=True, stop_limit=True,
        hedged_positions=config.account_mode == "hedging", client_order_ids=True,
        market_data=config.market_data, trading=config.trading,
        fills_lookback_ns=None if lookback is None else int(lookback * DAY_NS))


@dataclass
class _Order:
    coid: str
    instrument_id: str
    symbol: str
    side: Side
    quantity: float
    order_type: OrderType = OrderType.MARKET
    limit_price: float | None = None
    stop_price: float | None = None
    sent_ns: int = 0
    sent_mono: float = field(default_factory=time.monotonic)
    ticket: int = 0
    filled: float = 0.0
    accepted_sent: bool = False
    terminal_sent: bool = False
    cancel_requested: bool = False
    position: int = 0  # a close of this position ticket (hedging accounts)


class Mt5Gateway:
    """Market data and execution on one MT5 account through one terminal."""

    def __init__(self, config: Mt5GatewayConfig, *, account: Account | None = None,
                 worker_factory: Callable[..., Mt5Worker] | None = None) -> None:
        self.name = config.name
        self.config = config
        self.capabilities = capabilities_for(config)
        self._account = account
        self._worker_factory = worker_factory or Mt5Worker
        self._tz = ZoneInfo(config.server_timezone)
        self._tf_s = config.timeframe_seconds
        self._tf = cv.mt5_timeframe(self._tf_s)
        self._inst_of = dict(config.symbols)
        self._symbol_of = {v: k for k, v in config.symbols.items()}
        self._raw_sink: EventSink = lambda _e: None
        self._sink: EventSink = self._raw_sink
        self.guard: BarGuard | None = None
        self.health = StreamHealth(self.name)
        self.worker: Mt5Worker | None = None
        self.book: TicketBook | None = None
        self.symbol_info: dict[str, dict[str, Any]] = {}
        self._orders: dict[str, _Order] = {}
        self._seen_deals: set[int] = set()
        self._preexisting: set[int] = set()  # deal tickets made before this start
        self._positions: dict[int, str] = {}  # position id -> instrument, of our deals
        self._last_open: dict[str, int] = {}  # symbol -> open (UTC ns) of the last bar out
        self._checked: dict[str, int] = {}  # symbol -> forming open at the last rates look
        self._last_tick: dict[str, tuple[int, float]] = {}  # symbol -> (tick ns, monotonic)
        self._venue_now_ns = 0
        self._tasks = GatewayTasks(self.name)
        self._running = False
        self._streaming = False
        self._down = False
        self.poll_cycles = 0
        t = config.timing
        self._resolver = InFlightResolver(
            self._lookup, self._resolve_found, self._resolve_absent, gateway=self.name,
            initial_s=min(0.5, t.poll_interval_s), max_s=t.reconnect_max_s,
            settle_s=t.unknown_settle_s, timeout_s=t.unknown_order_timeout_s,
            on_lost=self._order_lost)

    # -- protocol --------------------------------------------------------------------------
    def bind(self, sink: EventSink) -> None:
        """Bars, order updates, fills and health all go to ``sink``; bars through a guard."""
        self._raw_sink = sink
        self.guard = BarGuard(sink, gateway=self.name, venue="mt5", band=self.config.bar_band,
                              now_ns=self._now_ns)
        self._sink = self.guard

    @property
    def resolver(self) -> InFlightResolver:
        """The resolver of submits whose outcome is unknown."""
        return self._resolver

    async def connect(self, *, stream: bool = True) -> None:
        """Log in, check the account and symbols, adopt booked orders, then start polling."""
        cfg = self.config
        try:
            account = self._account if self._account is not None else (
                load_account(cfg.credentials) if cfg.trading else Account())
        except Mt5ConfigError as exc:
            raise GatewayStartError(f"gateway {self.name}: {exc}") from None
        self.worker = self._worker_factory(cfg.backend, cfg.host, cfg.port,
                                           cfg.timing.request_timeout_s, account, self.name)
        try:
            await self.worker.open()
            await self._check_account()
            for symbol in cfg.symbols:
                await self._select(symbol)
        except ImportError:
            await self._close_worker()
            hint = ("the MetaTrader5 package (Windows, next to the terminal): pip install "
                    "MetaTrader5; on Linux use backend: mt5linux with `python -m mt5linux` "
                    "running under Wine" if cfg.backend == "metatrader5" else
                    "the mt5linux client: pip install 'trader-daemon[mt5]'")
            raise GatewayStartError(f"gateway {self.name}: backend {cfg.backend!r} needs "
                                    f"{hint}") from None
        except TerminalLost as exc:
            await self._close_worker()
            raise GatewayStartError(
                f"gateway {self.name}: cannot reach the MT5 terminal at {cfg.host}:{cfg.port} "
                f"({exc}); start the terminal and its rpyc server (python -m mt5linux) "
                f"or check gateways.{self.name}.host and .port") from None
        except TerminalError as exc:
            await self._close_worker()
            what = ("the terminal refused the account credentials" if exc.code == AUTH_FAILED
                    else str(exc))
            raise GatewayStartError(f"gateway {self.name}: {what}") from None
        except GatewayStartError:
            await self._close_worker()
            raise
        if cfg.trading:
            assert cfg.state_file is not None  # the config requires it when trading
            self.book = TicketBook(cfg.state_file)
            self._adopt_booked()
            try:
                await self._note_preexisting()
            except (TerminalLost, TerminalError) as exc:
                await self._close_worker()
                self.book.close()
                self.book = None
                raise GatewayStartError(f"gateway {self.name}: cannot list the account's "
                                        f"deals: {exc}") from None
        self._running = True
        self._set_health("gateway", HealthState.CONNECTED,
                         f"connected to the MT5 terminal ({cfg.backend})")
        if stream:
            self.start_streams()

    def start_streams(self) -> None:
        """Start the one poll loop: closed bars (``market_data``), orders and deals."""
        if self._streaming or not self._running:
            return
        self._streaming = True
        self._spawn(self._poll_loop(), "poll")

    async def close(self) -> None:
        """Let submits already handed over finish (bounded), then stop everything."""
        await self._tasks.settle_orders(2 * self.config.timing.request_timeout_s + 1.0)
        self._running = False
        self._streaming = False
        await self._resolver.close()
        await self._tasks.cancel_all()
        await self._close_worker()
        if self.book is not None:
            self.book.close()
            self.book = None

    def submit(self, order: OrderRequest) -> None:
        self._submit_order(order, 0)

    def close_position(self, order: OrderRequest, position_id: str) -> None:
        """Send ``order`` (a market order) as the close of one position by its ticket.

        On a hedging account an opposite market order would open a second position;
        this reduces the given one.  Outcomes arrive like those of ``submit``."""
        if order.order_type is not OrderType.MARKET:
            self._emit_update(order.client_order_id, OrderStatus.REJECTED,
                              "a position is closed by a market order")
            return
        self._submit_order(order, int(position_id))

    async def modify_order(self, client_order_id: str, *, price: float | None = None,
                           sl: float = 0.0, tp: float = 0.0) -> str | None:
        """Move a working pending order (``TRADE_ACTION_MODIFY``): its price, SL and TP.

        Returns None when the server did it, else the reason it did not."""
        tracked = self._orders.get(client_order_id)
        if tracked is None or not tracked.ticket or tracked.terminal_sent:
            return f"no working order {client_order_id} on {self.name}"
        new_price = price if price is not None else (tracked.limit_price or 0.0)
        req = {"action": cv.TRADE_ACTION_MODIFY, "order": tracked.ticket,
               "symbol": tracked.symbol, "price": float(new_price), "sl": float(sl),
               "tp": float(tp), "type_time": cv.ORDER_TIME_GTC, "magic": self.config.magic}
        why = await self._request(req)
        if why is None and price is not None:
            tracked.limit_price = price
        return why

    async def set_stops(self, position_id: str, *, sl: float = 0.0,
                        tp: float = 0.0) -> str | None:
        """Set a position's stop loss and take profit (``TRADE_ACTION_SLTP``; 0 = none).

        Returns None when the server did it, else the reason it did not.  The close
        the server makes when one is hit arrives as a fill ``mt5-sl-<deal>``."""
        found = await self._call("positions_get", ticket=int(position_id))
        if not found:
            return f"no position {position_id} on {self.name}"
        req = {"action": cv.TRADE_ACTION_SLTP, "position": int(position_id),
               "symbol": str(found[0]["symbol"]), "sl": float(sl), "tp": float(tp),
               "magic": self.config.magic}
        return await self._request(req)

    async def _request(self, req: dict[str, Any]) -> str | None:
        """A modifying request: None when done, else why not (nothing is retried)."""
        try:
            res = await self._call("order_send", req)
        except (TerminalLost, TerminalError) as exc:
            return f"outcome unknown: {exc}"
        retcode = int(res["retcode"])
        if verdict(retcode) is Verdict.DONE:
            return None
        return describe(retcode, str(res.get("comment", "")))

    def _submit_order(self, order: OrderRequest, position: int) -> None:
        coid = order.client_order_id
        symbol = self._symbol_of.get(order.instrument_id)
        # the ticket book is the memory of orders across restarts: a duplicate there counts
        refusal = submit_refusal(
            self.name, order, listed=symbol is not None, trading=self.config.trading,
            connected=self._running and self.book is not None,
            duplicate=coid in self._orders or (self.book is not None
                                               and self.book.get(coid) is not None))
        if refusal is None:
            refusal = self.capabilities.supports(order)
        if refusal is None and (why := cv.volume_violation(
                order.quantity, self.symbol_info.get(symbol or "", {}))) is not None:
            refusal = f"{why} (not sent)"
        if refusal is not None:
            self._emit_update(coid, OrderStatus.REJECTED, refusal)
            return
        assert symbol is not None and self.book is not None
        tracked = _Order(coid, order.instrument_id, symbol, order.side, order.quantity,
                         order.order_type, order.limit_price, order.stop_price,
                         self._now_ns(), position=position)
        self._orders[coid] = tracked
        # written before the send: a crash after it leaves a record to reconcile from
        self.book.record_submit(coid, order.instrument_id, symbol, str(order.side),
                                order.quantity, tracked.sent_ns)
        self._spawn(self._submit(tracked), f"submit:{coid}")

    def cancel(self, client_order_id: str) -> None:
        tracked = mark_cancel(self._orders, client_order_id)
        if tracked is not None and tracked.ticket:
            self._spawn(self._cancel(tracked), f"cancel:{client_order_id}")

    async def open_orders(self) -> list[OrderReport]:
        out = []
        for o in await self._working():
            # an order of our magic the book does not know keeps its comment (or ticket) as
            # its id, so reconciliation reports it as an unknown broker order
            coid = self._coid_of(o) or str(o["comment"] or f"mt5-order-{o['ticket']}")
            inst = self._inst_of.get(str(o["symbol"]))
            if inst:
                out.append(cv.order_report(o, coid, inst, working=True))
        return out

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        tracked = self._orders.get(client_order_id)
        booked = self.book.get(client_order_id) if self.book is not None else None
        ticket = (tracked.ticket if tracked else 0) or (booked.ticket if booked else 0)
        o = await self._order_by_ticket(ticket) if ticket else await self._lookup(
            client_order_id)
        if o is None:
            return None
        inst = self._inst_of.get(str(o["symbol"]), "")
        return cv.order_report(o, client_order_id, inst, working=bool(o.get("_working")))

    async def fills_since(self, ts: int) -> list[Fill]:
        """Our deals since ``ts`` (reconciliation's path): each deal returned here counts
        as reported and is not streamed again by the poll loop."""
        frm = cv.server_datetime(cv.utc_to_server_s(ts, self._tz) - 1)
        deals = await self._call("history_deals_get", frm, cv.server_datetime(FAR_FUTURE_S))
        out = []
        for d in deals:
            fill = self._fill_of(d)
            if fill is not None and fill.ts >= ts:
                out.append(fill)
                # handed over: the poll loop must not report this deal again
                if int(d["ticket"]) not in self._seen_deals:
                    self._seen_deals.add(int(d["ticket"]))
                    tracked = self._orders.get(fill.client_order_id)
                    if tracked is not None:
                        tracked.filled += fill.quantity
                    if self.book is not None:
                        self.book.record_deal(int(d["ticket"]), fill.client_order_id,
                                              int(d["order"]))
        return out

    async def account(self) -> AccountReport:
        """Balance, positions (this deployment's magic) and margin of the account.

        ``cash`` is the kernel's view of a margin account: the balance minus the
        entry value of the open positions (lots x contract size x open price), which
        is what the portfolio's cash is after the same fills; the balance itself is
        ``equity`` minus floating profit.  Both are in the account currency; a
        symbol whose profit currency differs (USDJPY) is valued unconverted."""
        info = await self._call("account_info")
        details = []
        entry_value = 0.0
        for p in await self._call("positions_get"):
            inst = self._inst_of.get(str(p["symbol"]))
            if inst is not None and int(p["magic"]) == self.config.magic:
                rep = cv.position_report(p, inst)
                details.append(rep)
                size = float(self.symbol_info.get(str(p["symbol"]), {}).get(
                    "trade_contract_size", 1.0))
                entry_value += rep.quantity * float(p["price_open"]) * size
        positions: dict[str, float] = {}
        for d in details:
            positions[d.instrument_id] = positions.get(d.instrument_id, 0.0) + d.quantity
        avg: dict[str, float] = {}
        for inst in positions:
            mine = [d for d in details if d.instrument_id == inst]
            if len(mine) == 1 and mine[0].avg_price is not None:
                avg[inst] = mine[0].avg_price
        return AccountReport(
            cash={str(info["currency"]): float(info["balance"]) - entry_value},
            positions={k: v for k, v in positions.items() if abs(v) > 1e-12},
            avg_prices=avg, position_details=tuple(details),
            margin_used=float(info["margin"]), margin_available=float(info["margin_free"]),
            equity=float(info["equity"]))

    # -- market data ---------------------------------------------------------------------------
    async def history(self, instrument_id: str, start_ns: int,
                      end_ns: int | None = None) -> History:
        """Closed bars opening in ``[start_ns, end_ns)``, fetched in pages of
        ``timing.history_page_bars`` with ``copy_rates_range``."""
        symbol = self._symbol_of.get(instrument_id)
        if symbol is None:
            raise ValueError(f"gateway {self.name}: instrument {instrument_id} is not "
                             f"configured (known: {sorted(self._symbol_of)})")
        tf = self._tf_s * NS
        forming = await self._forming_open(symbol)
        end = forming if end_ns is None else min(end_ns, forming)
        bars: list[Bar] = []
        page = self.config.timing.history_page_bars * tf
        lo = start_ns
        while lo < end:
            hi = min(lo + page, end)
            rows = await self._call(
                "copy_rates_range", symbol, self._tf,
                cv.server_datetime(cv.utc_to_server_s(lo, self._tz)),
                cv.server_datetime(cv.utc_to_server_s(hi, self._tz) - 1))
            bars.extend(b for b in self._bars_of(symbol, rows) if lo <= b.ts_open < hi)
            lo = hi
        bars = self._dedupe(bars)
        if self.guard is not None:
            bars = self.guard.filter(bars)
        return History(instrument_id, bars, start_ns, end_ns if end_ns is not None else end,
                       expected_bars(start_ns, end, self._tf_s))

    async def warm_up_bars(self, count: int) -> list[Bar]:
        """The last ``count`` closed bars of every symbol; polling continues after them."""
        out: list[Bar] = []
        for symbol in self.config.symbols:
            forming = await self._forming_open(symbol)
            rows = await self._call("copy_rates_from_pos", symbol, self._tf, 0, count + 1)
            bars = [b for b in self._bars_of(symbol, rows) if b.ts_open < forming][-count:]
            if self.guard is not None:
                bars = self.guard.filter(bars, remember=True)
            if bars:
                self._last_open[symbol] = bars[-1].ts_open
            else:
                self._last_open.setdefault(symbol, forming - self._tf_s * NS)
            out.extend(bars)
        out.sort(key=lambda b: (b.ts, b.instrument_id))
        return out

    # -- polling ------------------------------------------------------------------------------
    async def _poll_loop(self) -> None:
        failures = 0
        t = self.config.timing
        while self._running:
            try:
                if self.config.market_data:
                    for symbol in self.config.symbols:
                        await self._poll_bars(symbol)
                if self.config.trading:
                    await self._poll_orders()
                failures = 0
                if self._down:
                    self._down = False
                    self._set_health("gateway", HealthState.RESYNCED,
                                     "MT5 terminal back; bars and deals caught up")
                self.poll_cycles += 1
                await asyncio.sleep(t.poll_interval_s)
            except asyncio.CancelledError:
                raise
            except TerminalError as exc:
                if exc.code not in UNKNOWN_OUTCOME_ERRORS:  # an answer, not an outage
                    log.warning("mt5_poll_error", gateway=self.name, error=str(exc))
                    await asyncio.sleep(t.poll_interval_s)
                    continue
                failures += 1
                if not self._down:  # no IPC, IPC timeout: the terminal is unreachable
                    self._down = True
                    self._set_health("gateway", HealthState.DISCONNECTED,
                                     f"MT5 terminal unavailable: {exc}")
                await asyncio.sleep(backoff_delay(failures, t.reconnect_initial_s,
                                                  t.reconnect_max_s, 0.25))
            except TerminalLost as exc:
                failures += 1
                if not self._down:
                    self._down = True
                    self._set_health("gateway", HealthState.DISCONNECTED,
                                     f"MT5 terminal unavailable: {exc}")
                await asyncio.sleep(backoff_delay(failures, t.reconnect_initial_s,
                                                  t.reconnect_max_s, 0.25))
            except Exception:  # a bug must not end the only poll loop
                log.exception("mt5_poll_failed", gateway=self.name)
                await asyncio.sleep(t.poll_interval_s)

    async def _poll_bars(self, symbol: str) -> None:
        tf = self._tf_s * NS
        forming = await self._forming_open(symbol)
        last = self._last_open.get(symbol)
        if last is None:  # the stream continues after what is already closed
            self._last_open[symbol] = forming - tf
            return
        if self._checked.get(symbol) == forming and last >= forming - tf:
            return  # no bar closed since the last look: spare the terminal the rates copy
        self._checked[symbol] = forming
        if forming - last > 2 * tf:  # a gap (down, slow poll): page it in
            fresh = (await self.history(self._inst_of[symbol], last + tf, forming)).bars
            fresh = [b for b in fresh if b.ts_open > last]
            for bar in fresh:  # already through the guard's batch filter: keep band state
                self._raw_sink(bar)
                if self.guard is not None:
                    self.guard.seed([bar])
            if fresh:  # only as far as bars were seen: a late one is still taken
                self._last_open[symbol] = fresh[-1].ts_open
            return
        rows = await self._call("copy_rates_from_pos", symbol, self._tf, 0, 3)
        for bar in self._bars_of(symbol, rows):
            if last < bar.ts_open < forming:  # never the forming bar, never one twice
                self._sink(bar)
                last = bar.ts_open
        self._last_open[symbol] = last

    async def _forming_open(self, symbol: str) -> int:
        """Open of the bar forming now by the terminal's tick clock (UTC ns)."""
        tick = await self._call("symbol_info_tick", symbol)
        now = cv.server_to_utc_ns(int(tick["time_msc"]) / 1000, self._tz)
        self._note_tick(symbol, now)
        tf = self._tf_s * NS
        return now // tf * tf

    def _note_tick(self, symbol: str, tick_ns: int) -> None:
        self._venue_now_ns = max(self._venue_now_ns, tick_ns)
        prev = self._last_tick.get(symbol)
        mono = time.monotonic()
        if prev is None or prev[0] != tick_ns:
            self._last_tick[symbol] = (tick_ns, mono)
            if self.health.get(f"ticks:{symbol}") is HealthState.DEGRADED:
                self._set_health(f"ticks:{symbol}", HealthState.CONNECTED, "ticks again")
        elif mono - prev[1] > self.config.timing.stale_after_s:
            info = self.symbol_info.get(symbol, {})
            # a closed market or a disabled symbol has no ticks: that is not a stale feed
            if int(info.get("trade_mode", 4)) != 0 and self._session_open(tick_ns):
                self._set_health(f"ticks:{symbol}", HealthState.DEGRADED,
                                 f"{symbol}: no tick for {mono - prev[1]:.0f} s")

    def _session_open(self, ts_ns: int) -> bool:
        """Whether ``config.calendar`` says the market trades at ``ts_ns`` (no calendar: yes).

        The Python API does not expose a symbol's trade sessions; FX and most CFDs
        follow the FX week, which is the default."""
        if self.config.calendar is None:
            return True
        from trader.core.calendars import is_open

        return is_open(self.config.calendar, ts_ns)

    def _bars_of(self, symbol: str, rows: list[Any]) -> list[Bar]:
        inst = self._inst_of[symbol]
        out = []
        for r in rows:
            try:
                out.append(cv.rate_to_bar(r, inst, self._tf_s, self._tz))
            except cv.Mt5MessageError as exc:
                if self.guard is not None:
                    self.guard.reject(inst, str(exc))
        return out

    @staticmethod
    def _dedupe(bars: list[Bar]) -> list[Bar]:
        seen: dict[int, Bar] = {}
        for b in bars:
            seen[b.ts_open] = b
        return [seen[k] for k in sorted(seen)]

    async def _poll_orders(self) -> None:
        working = {int(o["ticket"]): o for o in await self._working()}
        for tracked in list(self._orders.values()):
            if tracked.terminal_sent or not tracked.ticket:
                continue
            await self._collect_deals(tracked)
            if tracked.ticket not in working:
                await self._settle(tracked)
            elif working[tracked.ticket] and not tracked.accepted_sent:
                self._accept(tracked)
        for pid, _inst in list(self._positions.items()):
            deals = await self._call("history_deals_get", position=pid)
            for d in deals:
                self._on_deal(d)
            if not await self._call("positions_get", ticket=pid):
                self._positions.pop(pid, None)

    async def _settle(self, tracked: _Order) -> None:
        """The order left the working list: emit its final state after its deals."""
        [o] = await self._call("history_orders_get", ticket=tracked.ticket) or [None]
        if o is None:
            return  # not in history yet (the terminal syncs it): ask next cycle
        status = cv.order_status(o, working=False)
        if status is OrderStatus.FILLED or tracked.filled >= tracked.quantity - 1e-9:
            self._finish(tracked, None)
        elif status in (OrderStatus.CANCELED, OrderStatus.EXPIRED, OrderStatus.REJECTED):
            self._finish(tracked, status, f"MT5 order {tracked.ticket} {status.value.lower()}")

    async def _collect_deals(self, tracked: _Order) -> None:
        for d in await self._call("history_deals_get", ticket=tracked.ticket):
            self._on_deal(d)

    def _on_deal(self, d: dict[str, Any]) -> None:
        ticket = int(d["ticket"])
        if ticket in self._seen_deals or not cv.is_trade_deal(d):
            return
        fill = self._fill_of(d)
        if fill is None:
            return
        self._seen_deals.add(ticket)
        inst = fill.instrument_id
        tracked = self._orders.get(fill.client_order_id)
        if self.book is not None:
            self.book.record_deal(ticket, fill.client_order_id, int(d["order"]))
        if tracked is not None:
            tracked.filled += fill.quantity
        if int(d.get("position_id") or 0):
            self._positions.setdefault(int(d["position_id"]), inst)
        if ticket in self._preexisting:
            return  # made before this start: reported by fills_since, not streamed
        if tracked is not None:
            self._accept(tracked)
        self._sink(fill)

    def _fill_of(self, d: dict[str, Any]) -> Fill | None:
        """The ``Fill`` of one of our deals (None: not a trade, or not this deployment's)."""
        inst = self._inst_of.get(str(d.get("symbol")))
        if inst is None or not cv.is_trade_deal(d):
            return None
        coid = self._coid_of_ticket(int(d["order"])) or self._unticketed(d)
        if coid is None:
            if int(d.get("magic", -1)) != self.config.magic and int(
                    d.get("position_id") or 0) not in self._positions:
                return None
            coid = cv.broker_close_id(d)  # SL/TP/stop-out: the server's own order
        return cv.deal_to_fill(d, coid, inst, self._tz)

    # -- orders -------------------------------------------------------------------------------
    async def _submit(self, tracked: _Order) -> None:
        t = self.config.timing
        info = self.symbol_info[tracked.symbol]
        market = tracked.order_type is OrderType.MARKET
        attempt = 0
        while True:
            price = tracked.limit_price or 0.0
            if market:
                try:
                    tick = await self._call("symbol_info_tick", tracked.symbol)
                except (TerminalLost, TerminalError) as exc:  # nothing sent yet
                    self._reject(tracked, f"no price for {tracked.symbol}: {exc}")
                    return
                price = float(tick["ask"] if tracked.side is Side.BUY else tick["bid"])
            elif tracked.order_type is OrderType.STOP and tracked.stop_price is None:
                price = tracked.limit_price or 0.0
            req = cv.order_request(
                symbol=tracked.symbol, side=tracked.side, order_type=tracked.order_type,
                volume=tracked.quantity, price=price, magic=self.config.magic,
                comment=cv.comment_for(tracked.coid), deviation=self.config.deviation_points,
                filling=cv.filling_for(int(info.get("filling_mode", 0)), market),
                stop_price=tracked.stop_price, position=tracked.position)
            try:
                res = await self._call("order_send", req)
            except TerminalError as exc:
                if exc.code in UNKNOWN_OUTCOME_ERRORS:
                    self._unknown(tracked, str(exc))
                else:
                    self._reject(tracked, f"{exc} (not sent)")
                return
            except TerminalLost as exc:
                self._unknown(tracked, str(exc))
                return
            retcode = int(res["retcode"])
            v = verdict(retcode)
            attempt += 1
            if (v is Verdict.REPRICE and market and attempt <= t.requote_retries) or (
                    v is Verdict.BUSY and attempt <= t.busy_retries):
                log.warning("mt5_retry", gateway=self.name, client_order_id=tracked.coid,
                            retcode=retcode, attempt=attempt)
                await asyncio.sleep(t.retry_delay_s * attempt)
                continue
            break
        if v in (Verdict.DONE, Verdict.PLACED):
            await self._acknowledged(tracked, int(res["order"]))
        else:
            self._reject(tracked, describe(retcode, str(res.get("comment", ""))))

    async def _acknowledged(self, tracked: _Order, ticket: int) -> None:
        tracked.ticket = ticket
        if self.book is not None:
            self.book.record_ticket(tracked.coid, ticket)
        self._accept(tracked)
        if tracked.cancel_requested:
            self._spawn(self._cancel(tracked), f"cancel:{tracked.coid}")
        try:
            await self._collect_deals(tracked)
        except (TerminalLost, TerminalError) as exc:  # the poll loop finds them later
            log.warning("mt5_deals_deferred", gateway=self.name, client_order_id=tracked.coid,
                        error=str(exc))

    def _accept(self, tracked: _Order) -> None:
        if not tracked.accepted_sent and not tracked.terminal_sent:
            tracked.accepted_sent = True
            self._emit_update(tracked.coid, OrderStatus.ACCEPTED, "", str(tracked.ticket))

    async def _cancel(self, tracked: _Order) -> None:
        req = {"action": cv.TRADE_ACTION_REMOVE, "order": tracked.ticket,
               "magic": self.config.magic, "comment": cv.comment_for(tracked.coid)}
        try:
            res = await self._call("order_send", req)
        except (TerminalLost, TerminalError) as exc:
            # the poll loop sees the order leave the working list (or not)
            log.warning("mt5_cancel_unanswered", gateway=self.name,
                        client_order_id=tracked.coid, error=str(exc))
            return
        try:
            await self._collect_deals(tracked)  # fills before the cancel
        except (TerminalLost, TerminalError):
            return
        if verdict(int(res["retcode"])) is Verdict.DONE:
            self._finish(tracked, OrderStatus.CANCELED, "canceled at MT5")
        else:
            log.warning("mt5_cancel_refused", gateway=self.name, client_order_id=tracked.coid,
                        reason=describe(int(res["retcode"]), str(res.get("comment", ""))))

    def _unknown(self, tracked: _Order, why: str) -> None:
        self._emit_update(tracked.coid, OrderStatus.OUTCOME_UNKNOWN,
                          f"order_send outcome unknown: {why}; looking it up (not re-sent)")
        self._resolver.track(tracked.coid, tracked.sent_mono)

    async def _lookup(self, coid: str) -> dict[str, Any] | None:
        """Find an order by our id: the booked ticket, else its comment among our magic's."""
        tracked = self._orders.get(coid)
        if tracked is not None and tracked.ticket:
            return await self._order_by_ticket(tracked.ticket)
        booked = self.book.get(coid) if self.book is not None else None
        if booked is not None and booked.ticket:
            return await self._order_by_ticket(booked.ticket)
        known = self.book.tickets() if self.book is not None else {}
        for o in await self._working():
            if cv.comment_matches(str(o["comment"]), coid) and int(o["ticket"]) not in known:
                return {**o, "_working": True}
        sent = booked.sent_ns if booked else (tracked.sent_ns if tracked else 0)
        frm = cv.server_datetime(cv.utc_to_server_s(sent, self._tz) - 60)
        for o in await self._call("history_orders_get", frm, cv.server_datetime(FAR_FUTURE_S)):
            if (int(o["magic"]) == self.config.magic and int(o["ticket"]) not in known
                    and cv.comment_matches(str(o["comment"]), coid)):
                return o
        return None

    async def _order_by_ticket(self, ticket: int) -> dict[str, Any] | None:
        working = await self._call("orders_get", ticket=ticket)
        if working:
            return {**working[0], "_working": True}
        done = await self._call("history_orders_get", ticket=ticket)
        return done[0] if done else None

    async def _resolve_found(self, coid: str, o: dict[str, Any]) -> None:
        tracked = self._orders.get(coid)
        if tracked is not None and not tracked.terminal_sent:
            await self._acknowledged(tracked, int(o["ticket"]))

    def _resolve_absent(self, coid: str, reason: str) -> None:
        tracked = self._orders.get(coid)
        if tracked is not None:
            self._reject(tracked, reason)

    def _order_lost(self, coid: str, reason: str) -> None:
        tracked = self._orders.get(coid)
        self._set_health(f"order:{coid}", HealthState.DEGRADED, f"{coid}: {reason}")
        if tracked is not None:
            self._finish(tracked, OrderStatus.EXPIRED, reason)

    def _reject(self, tracked: _Order, reason: str) -> None:
        self._finish(tracked, OrderStatus.REJECTED, reason)

    def _finish(self, tracked: _Order, status: OrderStatus | None, reason: str = "") -> None:
        """The order is over; ``status`` None: filled (the router derives FILLED from fills)."""
        if tracked.terminal_sent:
            return
        tracked.terminal_sent = True
        if self.book is not None:
            self.book.mark_done(tracked.coid)
        if status is not None:
            self._emit_update(tracked.coid, status, reason, str(tracked.ticket or ""))

    # -- helpers ------------------------------------------------------------------------------
    async def _check_account(self) -> None:
        info = await self._call("account_info")
        hedging = int(info["margin_mode"]) == cv.ACCOUNT_MARGIN_MODE_RETAIL_HEDGING
        if hedging != (self.config.account_mode == "hedging"):
            raise GatewayStartError(
                f"gateway {self.name}: the MT5 account is a "
                f"{'hedging' if hedging else 'netting'} account but "
                f"gateways.{self.name}.account_mode is {self.config.account_mode!r}")
        if self.config.trading and not info.get("trade_expert", True):
            raise GatewayStartError(f"gateway {self.name}: the terminal does not allow "
                                    "algorithmic trading: enable AutoTrading")

    async def _select(self, symbol: str) -> None:
        try:
            await self._call("symbol_select", symbol, True)
            self.symbol_info[symbol] = await self._call("symbol_info", symbol)
        except TerminalError as exc:
            raise GatewayStartError(f"gateway {self.name}: symbol {symbol!r} is not listed by "
                                    f"the terminal ({exc})") from None

    def _adopt_booked(self) -> None:
        assert self.book is not None
        self._seen_deals.update(self.book.deals())
        for b in self.book.open_orders():
            if b.instrument_id not in self._symbol_of:
                continue
            tracked = _Order(b.client_order_id, b.instrument_id, b.symbol, Side(b.side),
                             b.quantity, sent_ns=b.sent_ns, ticket=b.ticket or 0,
                             accepted_sent=True)
            self._orders[b.client_order_id] = tracked
            if not b.ticket:  # sent, never answered: find out before anything else
                self._spawn(self._adopt_unknown(b.client_order_id), f"adopt:{b.client_order_id}")

    async def _note_preexisting(self) -> None:
        """Deals of booked orders made before this start are reconciliation's to report
        (``fills_since``), never the stream's: a fill the daemon adopted at start-up must
        not arrive a second time as a live event."""
        assert self.book is not None
        booked = self.book.open_orders()
        if not booked:
            return
        frm = cv.utc_to_server_s(min(b.sent_ns for b in booked), self._tz) - 86_400
        deals = await self._call("history_deals_get", cv.server_datetime(frm),
                                 cv.server_datetime(FAR_FUTURE_S))
        self._preexisting = {int(d["ticket"]) for d in deals
                             if int(d.get("magic", -1)) == self.config.magic}

    async def _adopt_unknown(self, coid: str) -> None:
        self._resolver.track(coid, time.monotonic() - self.config.timing.unknown_settle_s)

    async def _working(self) -> list[dict[str, Any]]:
        orders = await self._call("orders_get")
        return [o for o in orders if int(o["magic"]) == self.config.magic]

    def _coid_of(self, o: dict[str, Any]) -> str | None:
        return self._coid_of_ticket(int(o["ticket"])) or next(
            (c for c in self._orders if cv.comment_matches(str(o["comment"]), c)), None)

    def _unticketed(self, d: dict[str, Any]) -> str | None:
        """Our order a deal belongs to when its ticket never reached us (the answer to
        ``order_send`` was lost): matched by comment among booked orders without a ticket."""
        if int(d.get("magic", -1)) != self.config.magic or self.book is None:
            return None
        for b in self.book.open_orders():
            if not b.ticket and cv.comment_matches(str(d.get("comment", "")), b.client_order_id):
                return b.client_order_id
        return None

    def _coid_of_ticket(self, ticket: int) -> str | None:
        for tracked in self._orders.values():
            if tracked.ticket == ticket:
                return tracked.coid
        return self.book.coid_of_ticket(ticket) if self.book is not None else None

    async def _call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        if self.worker is None:
            raise TerminalLost(fn, "gateway not connected")
        try:
            return await self.worker.call(fn, *args, **kwargs)
        except TerminalLost as exc:
            # whichever path met it: the poll loop reports resynced after a clean cycle
            if self._running and not self._down:
                self._down = True
                self._set_health("gateway", HealthState.DISCONNECTED,
                                 f"MT5 terminal unavailable: {exc}")
            raise

    async def _close_worker(self) -> None:
        if self.worker is not None:
            await self.worker.close()
            self.worker = None

    def _now_ns(self) -> int:
        return self._venue_now_ns or time.time_ns()

    def _set_health(self, stream: str, state: HealthState, reason: str) -> None:
        """Report a change of one stream's health (repeats of the same state are quiet)."""
        self.health.report(self._raw_sink, stream, state, reason, self._now_ns())

    def _emit_update(self, coid: str, status: OrderStatus, reason: str = "",
                     broker_order_id: str = "") -> None:
        self._sink(OrderUpdate(self._now_ns(), coid, status, reason, broker_order_id))

    def _spawn(self, coro: Any, name: str) -> None:
        self._tasks.spawn(coro, name)
