"""What every exchange stand-in shares: the server, the recording, the scripts, the book.

A stand-in is an ``aiohttp`` application bound to ``127.0.0.1`` on an
ephemeral port.  It speaks one venue's real wire format (see the subclasses),
verifies request signatures the way the venue does, records every request,
and can be scripted: push candles, fill orders, drop connections, fail or
throttle or stall the next request to an endpoint.

The "matching engine" is deliberately tiny: market orders fill in full at the
last price; limit orders rest until a test calls ``fill``.  Balances are
checked at order entry so an unaffordable order is refused like the venue
refuses it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web


@dataclass(slots=True)
class Recorded:
    """One request as the stand-in received it."""

    method: str
    path: str
    params: dict[str, str]
    signed_ok: bool | None = None


@dataclass(slots=True)
class Fault:
    """A scripted misbehaviour for the next request(s) to an endpoint.

    kind: ``error`` (venue error ``code``/``message``), ``rate_limit``,
    ``stall_after`` (execute, then answer only after ``delay`` s: the client
    times out although the order exists), ``stall_before`` (answer late and do
    nothing: the order never existed), ``error_after`` (execute, then answer
    with the venue's "status unknown" 5xx: the order exists), ``error_before``
    (the same 5xx, order not executed; ``code`` picks the venue code, e.g. Binance
    -1006/-1000), ``rate_limit`` (429; ``retry_after`` adds the header where the
    venue sends one), ``ban`` (Binance 418 with ``Retry-After``, Kraken
    ``EGeneral:Temporary lockout``: every request is refused for ``delay`` s on
    the stand-in's ``ban_clock``), ``truncated_after`` / ``truncated_before``
    (HTTP 200 whose JSON body is cut in half; the order executed / not).
    """

    kind: str
    code: Any = None
    message: str = ""
    delay: float = 0.0
    retry_after: float | None = None


@dataclass(slots=True)
class SOrder:
    """An order inside the stand-in."""

    order_id: str
    client_order_id: str
    symbol: str  # venue symbol id (BTCUSDT / XXBTZUSD)
    side: str  # buy / sell
    type: str  # market / limit
    qty: float
    price: float | None
    ts_ms: int
    filled: float = 0.0
    cost: float = 0.0
    status: str = "open"  # open / closed / canceled
    trade_ids: list[str] = field(default_factory=list)


@dataclass(slots=True)
class STrade:
    trade_id: str
    order_id: str
    symbol: str
    side: str
    qty: float
    price: float
    fee: float
    fee_asset: str
    ts_ms: int


@dataclass(slots=True)
class MarketSpec:
    """A listed market: the venue id, assets and constraints."""

    venue_id: str
    base: str
    quote: str
    tick: float
    step: float
    min_qty: float
    min_notional: float
    price: float


class StandinExchange:
    """Base class: subclasses add the venue's routes and message shapes."""

    fee_rate = 0.001
    # Which asset fees are charged in, as venues do it: ``quote`` (always the quote
    # currency), ``received`` (Binance without BNB: the asset the trade pays out, the
    # base on a buy) or another asset code such as ``BNB`` (Binance's fee discount:
    # the fee's quote value at ``fee_asset_price`` comes out of that asset's balance).
    fee_mode = "quote"
    fee_asset_price = 600.0

    def __init__(self, api_key: str, secret: str, markets: list[MarketSpec]) -> None:
        self.api_key = api_key
        self.secret = secret
        self.markets = {m.venue_id: m for m in markets}
        self.requests: list[Recorded] = []
        self.faults: dict[str, deque[Fault]] = {}
        self.candles: dict[str, list[list[float]]] = {m.venue_id: [] for m in markets}
        self.orders: dict[str, SOrder] = {}
        self.trades: list[STrade] = []
        self.balances: dict[str, float] = {}
        self.market_ws: set[web.WebSocketResponse] = set()
        self.private_ws: set[web.WebSocketResponse] = set()
        self._ids = itertools.count(1)
        self.clock_offset_ms = 0
        # a half-open connection: the socket stays up but nothing is sent, pings unanswered
        self.muted = False
        self.ban_clock: Any = time.monotonic  # tests share a fake clock with the limiter
        self.ban_until = 0.0
        self.refused_in_ban = 0  # requests answered with the ban error
        self._runner: web.AppRunner | None = None
        self.port = 0
        self.app = web.Application()
        self.routes(self.app)

    # -- lifecycle -----------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def start(self) -> StandinExchange:
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        sock = site._server.sockets[0]  # type: ignore[union-attr]
        self.port = sock.getsockname()[1]
        return self

    async def stop(self) -> None:
        await self.drop_connections()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    # -- scripting -------------------------------------------------------------------
    def script(self, endpoint: str, fault: Fault, times: int = 1) -> None:
        """Make the next ``times`` requests to ``endpoint`` misbehave."""
        self.faults.setdefault(endpoint, deque()).extend([fault] * times)

    def take_fault(self, endpoint: str) -> Fault | None:
        q = self.faults.get(endpoint)
        return q.popleft() if q else None

    def received(self, path_suffix: str, method: str | None = None) -> list[Recorded]:
        return [r for r in self.requests
                if r.path.endswith(path_suffix) and (method is None or r.method == method)]

    async def drop_connections(self) -> None:
        """Close every websocket from the server side (a venue disconnect)."""
        for ws in list(self.market_ws | self.private_ws):
            await ws.close()
        self.market_ws.clear()
        self.private_ws.clear()

    def set_series(self, venue_id: str, candles: list[list[float]]) -> None:
        self.candles[venue_id] = [list(c) for c in candles]

    async def push_candle(self, venue_id: str, candle: list[float], closed: bool = False) -> None:
        """Add or update a candle (ms open time) and stream it to subscribers."""
        series = self.candles[venue_id]
        if series and series[-1][0] == candle[0]:
            series[-1] = list(candle)
        else:
            series.append(list(candle))
        self.markets[venue_id].price = float(candle[4])
        await self.broadcast_candle(venue_id, candle, closed)

    async def broadcast_candle(self, venue_id: str, candle: list[float], closed: bool) -> None:
        raise NotImplementedError

    async def stream_forming(self, venue_id: str, updates: list[list[float]], *,
                             every_s: float = 0.05, close: bool = True) -> None:
        """The venue's habit: the forming candle re-sent as it changes, then final once.

        Binance pushes the current kline about every second with ``x=false`` and
        once with ``x=true`` at the close; Kraken re-sends the forming ohlc candle on
        each trade and has no closed flag (``close`` is then just the last update).
        """
        for i, c in enumerate(updates):
            await self.push_candle(venue_id, c, closed=close and i == len(updates) - 1)
            await asyncio.sleep(every_s)

    async def push_private(self, payload: Any) -> None:
        if self.muted:
            return
        for ws in list(self.private_ws):
            if not ws.closed:
                await ws.send_json(payload)

    async def push_raw(self, text: str, *, private: bool) -> None:
        """Send one raw text frame (e.g. a truncated JSON object) to every subscriber."""
        for ws in list(self.private_ws if private else self.market_ws):
            if not ws.closed:
                await ws.send_str(text)

    async def push_truncated(self, payload: Any, *, private: bool, keep: float = 0.6) -> None:
        """Send ``payload`` as JSON cut short: what a venue sends when a frame is torn."""
        import json

        text = json.dumps(payload)
        await self.push_raw(text[: max(1, int(len(text) * keep))], private=private)

    # -- book --------------------------------------------------------------------------
    def next_id(self) -> int:
        return next(self._ids)

    def now_ms(self) -> int:
        """The venue's clock: real time shifted by a scriptable offset."""
        return int(time.time() * 1000) + self.clock_offset_ms

    def set_clock(self, ms: int) -> None:
        """Make the venue's clock read ``ms`` now (it keeps running from there)."""
        self.clock_offset_ms = ms - int(time.time() * 1000)

    def affordable(self, spec: MarketSpec, side: str, qty: float, price: float) -> bool:
        if side == "buy":
            return self.balances.get(spec.quote, 0.0) + 1e-9 >= qty * price * (1 + self.fee_rate)
        return self.balances.get(spec.base, 0.0) + 1e-9 >= qty

    def order_by_client_id(self, coid: str) -> SOrder | None:
        for o in self.orders.values():
            if o.client_order_id == coid:
                return o
        return None

    def execute(self, order: SOrder, qty: float, price: float) -> STrade:
        """Book one execution: balances, order state, trade record."""
        spec = self.markets[order.symbol]
        notional = qty * price
        sign = 1 if order.side == "buy" else -1
        fee_asset, fee = spec.quote, notional * self.fee_rate
        if self.fee_mode == "received" and order.side == "buy":
            fee_asset, fee = spec.base, qty * self.fee_rate
        elif self.fee_mode not in ("quote", "received"):
            fee_asset, fee = self.fee_mode, notional * self.fee_rate / self.fee_asset_price
        self.balances[spec.base] = self.balances.get(spec.base, 0.0) + sign * qty
        self.balances[spec.quote] = self.balances.get(spec.quote, 0.0) - sign * notional
        self.balances[fee_asset] = self.balances.get(fee_asset, 0.0) - fee
        order.filled += qty
        order.cost += notional
        if order.filled >= order.qty - 1e-12:
            order.status = "closed"
        trade = STrade(self.trade_id(), order.order_id, order.symbol, order.side, qty, price,
                       fee, fee_asset, self.now_ms())
        order.trade_ids.append(trade.trade_id)
        self.trades.append(trade)
        return trade

    def trade_id(self) -> str:
        return str(self.next_id())

    async def fill(self, client_order_id: str, qty: float | None = None,
                   price: float | None = None, *, notify: bool = True) -> STrade:
        """Execute (part of) a resting order, as if the market traded through it."""
        order = self.order_by_client_id(client_order_id)
        if order is None or order.status != "open":
            raise KeyError(f"no open order {client_order_id}")
        q = order.qty - order.filled if qty is None else qty
        p = price if price is not None else (order.price or self.markets[order.symbol].price)
        trade = self.execute(order, q, p)
        if notify:
            await self.notify_trade(order, trade)
        return trade

    async def notify_trade(self, order: SOrder, trade: STrade) -> None:
        raise NotImplementedError

    async def notify_order(self, order: SOrder) -> None:
        raise NotImplementedError

    # -- websocket plumbing ------------------------------------------------------------
    async def serve_ws(self, request: web.Request, bucket: set[web.WebSocketResponse],
                       handler: Any) -> web.WebSocketResponse:
        # pongs by hand, so a muted (stalled) venue can leave pings unanswered
        ws = web.WebSocketResponse(autoping=False)
        await ws.prepare(request)
        bucket.add(ws)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.PING:
                    if not self.muted:
                        await ws.pong(msg.data)
                elif msg.type == WSMsgType.TEXT:
                    if self.muted:
                        continue
                    await handler(ws, msg.json())
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            bucket.discard(ws)
        return ws

    def ban_left(self) -> float:
        """Seconds of the ban still to run (0 when none)."""
        return max(0.0, self.ban_until - self.ban_clock())

    def start_ban(self, seconds: float) -> None:
        self.ban_until = self.ban_clock() + seconds

    @staticmethod
    def truncate(payload: Any) -> str:
        """A JSON document cut in half, as a dropped connection or a proxy leaves it."""
        import json

        text = json.dumps(payload)
        return text[: max(1, len(text) // 2)]

    async def record_and_fault(self, endpoint: str, rec: Recorded) -> Fault | None:
        self.requests.append(rec)
        if self.ban_left() > 0:
            # a banned client gets the ban answer for everything, scripted or not
            self.refused_in_ban += 1
            return Fault("banned")
        fault = self.take_fault(endpoint)
        if fault is not None and fault.kind == "ban":
            self.start_ban(fault.delay)
        if fault is not None and fault.kind == "stall_before":
            await asyncio.sleep(fault.delay)
        return fault
