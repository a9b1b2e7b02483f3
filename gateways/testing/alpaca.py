"""A stand-in for Alpaca: trading REST ``/v2``, market data REST, msgpack data streams, JSON
trading stream, all on one loopback port.

Shapes follow Alpaca's API and what alpaca-py 0.44.0 sends and validates:

* REST (``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers checked): account, clock,
  assets, orders (submit, list, by id, by client order id, replace with PATCH, cancel
  answering 204), positions, account activities of type ``FILL`` paged with
  ``page_token``; stock bars ``/v2/stocks/bars`` and crypto bars
  ``/v1beta3/crypto/us/bars`` paged with ``next_page_token`` (pages are kept small on
  purpose so every history walk pages).  Errors are ``{"code", "message"}`` with the
  venue's status codes; a throttled request gets 429 with ``X-RateLimit-*`` headers.
* Data streams (``/v2/iex``, ``/v2/sip``, ``/v1beta3/crypto/us``): binary msgpack frames,
  each a list of messages: ``success``/``connected``, ``auth``, ``subscription``, bars
  ``b`` (closed minute bars), updated bars ``u`` (a late trade revised a bar already
  sent), daily bars ``d`` (the forming day, re-sent as it changes), ``t`` a msgpack
  Timestamp as the venue sends it.
* Trading stream (``/stream``): JSON ``authenticate`` / ``listen`` / ``trade_updates``
  with the full order, ``execution_id``, ``price``, ``qty``, ``position_qty``.

The book is the shared tiny one of ``gateways.testing.standin``: market orders fill at
the last price, limit orders rest until a test calls ``fill``.  US equities follow a
scriptable session (``equity_open``): outside it market orders queue (``accepted``, not
filled), as Alpaca queues them for the next open.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import msgpack
from aiohttp import WSMsgType, web

from gateways.testing.standin import Fault, MarketSpec, Recorded, SOrder, StandinExchange, STrade

_TF_MS = {"1Min": 60_000, "5Min": 300_000, "15Min": 900_000, "1Hour": 3_600_000,
          "1Day": 86_400_000}
_OPEN = ("new", "accepted", "partially_filled", "pending_new", "pending_cancel",
         "pending_replace")


def _s(x: float) -> str:
    """A decimal as Alpaca writes one: a string, up to nine places, no float noise."""
    text = f"{x:.9f}".rstrip("0").rstrip(".")
    return "0" if text in ("", "-0") else text


def iso(ms: int) -> str:
    """RFC 3339 with microseconds and a Z, as Alpaca writes times."""
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_iso(text: str) -> int:
    """Milliseconds of an RFC 3339 time (``Z`` or an offset)."""
    return int(dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


@dataclass(slots=True)
class OrderExtra:
    """What Alpaca keeps per order beyond the shared book's fields."""

    time_in_force: str = "gtc"
    extended_hours: bool = False
    order_type: str = "market"
    stop_price: float | None = None
    asset_class: str = "crypto"
    replaced_by: str | None = None
    replaces: str | None = None
    created_ms: int = 0
    updated_ms: int = 0


@dataclass(slots=True)
class Activity:
    """One ``FILL`` account activity (the venue's record of an execution)."""

    id: str
    trade: STrade
    cum_qty: float
    leaves_qty: float
    order_status: str


@dataclass(slots=True)
class StreamState:
    """A data stream connection: which feed, and what it subscribed."""

    path: str
    authed: bool = False
    bars: set[str] = field(default_factory=set)
    updated: set[str] = field(default_factory=set)
    daily: set[str] = field(default_factory=set)


def default_markets() -> list[MarketSpec]:
    """Two crypto pairs and two US stocks (venue id = Alpaca symbol)."""
    return [
        MarketSpec("BTC/USD", "BTC", "USD", 0.01, 0.0001, 0.0001, 1.0, 50_000.0),
        MarketSpec("ETH/USD", "ETH", "USD", 0.01, 0.001, 0.001, 1.0, 3_000.0),
        MarketSpec("AAPL", "AAPL", "USD", 0.01, 0.000001, 0.000001, 1.0, 190.0),
        MarketSpec("SPY", "SPY", "USD", 0.01, 0.000001, 0.000001, 1.0, 470.0),
    ]


class AlpacaStandin(StandinExchange):
    """Alpaca's trading and market data APIs, as far as the daemon uses them."""

    fee_rate = 0.0  # stocks trade commission-free; crypto fees are not modelled here

    def __init__(self, markets: list[MarketSpec] | None = None) -> None:
        # a fresh key pair per stand-in: nothing that looks like a credential is committed
        super().__init__("PK" + secrets.token_hex(9).upper(), secrets.token_urlsafe(30),
                         markets or default_markets())
        self.balances = {"USD": 100_000.0}
        self.extra: dict[str, OrderExtra] = {}
        self.activities: list[Activity] = []
        self.avg_price: dict[str, float] = {}
        self.streams: dict[web.WebSocketResponse, StreamState] = {}
        self.subscriptions: list[dict[str, Any]] = []  # every subscribe message received
        self.listens = 0  # trading stream ``listen`` requests
        self.bar_page = 4  # bars per page: every history walk pages
        self.activity_page = 2  # activities per page
        self.equity_open = True  # the US equity session (scriptable)
        self.refuse_stream_auth = False
        self.fractionable = {"AAPL": True, "SPY": False}
        self.account_id = str(uuid.uuid4())

    # -- lifecycle -------------------------------------------------------------------
    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/v2/account", self.h_account)
        r.add_get("/v2/clock", self.h_clock)
        r.add_get("/v2/assets", self.h_assets)
        r.add_post("/v2/orders", self.h_submit)
        r.add_get("/v2/orders", self.h_orders)
        r.add_get("/v2/orders:by_client_order_id", self.h_by_client_id)
        r.add_get("/v2/orders/{id}", self.h_order)
        r.add_delete("/v2/orders/{id}", self.h_cancel)
        r.add_patch("/v2/orders/{id}", self.h_replace)
        r.add_get("/v2/positions", self.h_positions)
        r.add_get("/v2/account/activities/{kind}", self.h_activities)
        r.add_get("/v2/stocks/bars", self.h_stock_bars)
        r.add_get("/v1beta3/crypto/us/bars", self.h_crypto_bars)
        r.add_get("/v2/iex", self.h_data_ws)
        r.add_get("/v2/sip", self.h_data_ws)
        r.add_get("/v1beta3/crypto/us", self.h_data_ws)
        r.add_get("/stream", self.h_trading_ws)

    async def restart(self, down_s: float = 0.2) -> None:
        """The venue goes away (every socket closed, the port refusing) and comes back on
        the same port, as after a deployment on its side."""
        port = self.port
        await self.stop()
        await asyncio.sleep(down_s)
        self.app = web.Application()
        self.routes(self.app)
        self._runner = web.AppRunner(self.app, handle_signals=False)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", port).start()

    def urls(self) -> dict[str, str]:
        """The endpoint overrides of a gateway pointed at this stand-in."""
        return {"trading": self.http, "data": self.http,
                "stock_stream": f"{self.ws}/v2/iex",
                "crypto_stream": f"{self.ws}/v1beta3/crypto/us",
                "trading_stream": f"{self.ws}/stream"}

    # -- helpers -----------------------------------------------------------------------
    @staticmethod
    def error(status: int, code: int, message: str,
              headers: dict[str, str] | None = None) -> web.Response:
        return web.json_response({"code": code, "message": message}, status=status,
                                 headers=headers)

    def _authorized(self, request: web.Request) -> bool:
        return (request.headers.get("APCA-API-KEY-ID") == self.api_key
                and request.headers.get("APCA-API-SECRET-KEY") == self.secret)

    async def _enter(self, request: web.Request, endpoint: str,
                     params: dict[str, Any] | None = None) -> tuple[web.Response | None,
                                                                     Fault | None]:
        """Record, authenticate, apply bans and scripted faults common to every route."""
        rec = Recorded(request.method, request.path,
                       {k: str(v) for k, v in (params or dict(request.query)).items()})
        rec.signed_ok = self._authorized(request)
        fault = await self.record_and_fault(endpoint, rec)
        if not rec.signed_ok:
            return self.error(401, 40110000, "request is not authorized"), None
        if fault is not None and fault.kind in ("rate_limit", "banned"):
            reset = int(time.time()) + max(1, int(fault.retry_after or 1))
            return self.error(429, 42910000, "rate limit exceeded", {
                "X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0",
                "X-RateLimit-Reset": str(reset),
                **({"Retry-After": _s(fault.retry_after)} if fault.retry_after else {})}), None
        if fault is not None and fault.kind in ("error_before", "stall_before"):
            return self.error(500, 50010000, "internal server error"), None
        if fault is not None and fault.kind == "error":
            return self.error(int(fault.code or 500), 50010000, fault.message or "error"), None
        return None, fault

    @staticmethod
    async def _after(fault: Fault | None, body: Any, status: int = 200) -> web.Response:
        """The answer of an executed request, after any scripted stall / error / truncation."""
        if fault is not None and fault.kind == "stall_after":
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.kind == "error_after":
            return AlpacaStandin.error(500, 50010000, "internal server error")
        if fault is not None and fault.kind == "truncated_after":
            return web.Response(text=StandinExchange.truncate(body), status=status,
                                content_type="application/json")
        return web.json_response(body, status=status)

    def asset_class(self, symbol: str) -> str:
        return "crypto" if "/" in symbol else "us_equity"

    def asset_json(self, spec: MarketSpec) -> dict[str, Any]:
        crypto = "/" in spec.venue_id
        return {
            "id": str(uuid.uuid5(uuid.NAMESPACE_URL, spec.venue_id)),
            "class": "crypto" if crypto else "us_equity",
            "exchange": "CRYPTO" if crypto else "ARCA" if spec.venue_id == "SPY" else "NASDAQ",
            "symbol": spec.venue_id, "name": spec.venue_id, "status": "active",
            "tradable": True, "marginable": not crypto, "shortable": not crypto,
            "easy_to_borrow": not crypto,
            "fractionable": True if crypto else self.fractionable.get(spec.venue_id, False),
            "min_order_size": spec.min_qty if crypto else None,
            "min_trade_increment": spec.step if crypto else None,
            "price_increment": spec.tick, "attributes": [],
        }

    def order_json(self, o: SOrder) -> dict[str, Any]:
        x = self.extra[o.order_id]
        ms = lambda v: iso(v) if v else None  # noqa: E731
        avg = o.cost / o.filled if o.filled else None
        return {
            "id": o.order_id, "client_order_id": o.client_order_id,
            "created_at": iso(x.created_ms), "updated_at": iso(x.updated_ms or x.created_ms),
            "submitted_at": iso(x.created_ms),
            "filled_at": ms(x.updated_ms) if o.status == "filled" else None,
            "expired_at": None,
            "canceled_at": ms(x.updated_ms) if o.status == "canceled" else None,
            "failed_at": None,
            "replaced_at": ms(x.updated_ms) if o.status == "replaced" else None,
            "replaced_by": x.replaced_by, "replaces": x.replaces,
            "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, o.symbol)), "symbol": o.symbol,
            "asset_class": x.asset_class, "notional": None, "qty": _s(o.qty),
            "filled_qty": _s(o.filled),
            "filled_avg_price": None if avg is None else _s(avg),
            "order_class": "simple", "order_type": x.order_type, "type": x.order_type,
            "side": o.side, "time_in_force": x.time_in_force,
            "limit_price": None if o.price is None else _s(o.price),
            "stop_price": None if x.stop_price is None else _s(x.stop_price),
            "status": o.status, "extended_hours": x.extended_hours, "legs": None,
            "trail_percent": None, "trail_price": None, "hwm": None,
            "position_intent": "buy_to_open" if o.side == "buy" else "sell_to_close",
        }

    def by_id(self, oid: str) -> SOrder | None:
        return self.orders.get(oid)

    # -- REST: account -------------------------------------------------------------------
    def positions_value(self) -> float:
        return sum(q * self.markets[s].price for s, q in self._positions().items())

    def _positions(self) -> dict[str, float]:
        by_base = {m.base: m.venue_id for m in self.markets.values()}
        return {by_base[a]: q for a, q in self.balances.items()
                if a in by_base and abs(q) > 1e-12}

    async def h_account(self, request: web.Request) -> web.Response:
        refused, _f = await self._enter(request, "account")
        if refused is not None:
            return refused
        cash = self.balances.get("USD", 0.0)
        equity = cash + self.positions_value()
        return web.json_response({
            "id": self.account_id, "account_number": "PA" + self.account_id[:8].upper(),
            "status": "ACTIVE", "crypto_status": "ACTIVE", "currency": "USD",
            "buying_power": f"{cash:.2f}", "regt_buying_power": f"{cash:.2f}",
            "daytrading_buying_power": "0", "non_marginable_buying_power": f"{cash:.2f}",
            "cash": f"{cash:.2f}", "accrued_fees": "0", "portfolio_value": f"{equity:.2f}",
            "pattern_day_trader": False, "trading_blocked": False, "transfers_blocked": False,
            "account_blocked": False, "created_at": iso(0), "trade_suspended_by_user": False,
            "multiplier": "1", "shorting_enabled": False, "equity": f"{equity:.2f}",
            "last_equity": f"{equity:.2f}", "long_market_value": f"{self.positions_value():.2f}",
            "short_market_value": "0", "initial_margin": "0", "maintenance_margin": "0",
            "last_maintenance_margin": "0", "sma": "0", "daytrade_count": 0,
        })

    async def h_clock(self, request: web.Request) -> web.Response:
        refused, _f = await self._enter(request, "clock")
        if refused is not None:
            return refused
        now = self.now_ms()
        return web.json_response({"timestamp": iso(now), "is_open": self.equity_open,
                                  "next_open": iso(now + 3_600_000),
                                  "next_close": iso(now + 7_200_000)})

    async def h_assets(self, request: web.Request) -> web.Response:
        refused, _f = await self._enter(request, "assets")
        if refused is not None:
            return refused
        cls = request.query.get("asset_class")
        out = [self.asset_json(m) for m in self.markets.values()
               if cls is None or self.asset_class(m.venue_id) == cls]
        return web.json_response(out)

    async def h_positions(self, request: web.Request) -> web.Response:
        refused, _f = await self._enter(request, "positions")
        if refused is not None:
            return refused
        out = []
        for sym, qty in sorted(self._positions().items()):
            spec = self.markets[sym]
            avg = self.avg_price.get(sym, spec.price)
            crypto = "/" in sym
            out.append({
                "asset_id": str(uuid.uuid5(uuid.NAMESPACE_URL, sym)),
                "symbol": sym.replace("/", ""), "exchange": "CRYPTO" if crypto else "NASDAQ",
                "asset_class": "crypto" if crypto else "us_equity",
                "avg_entry_price": _s(avg), "qty": _s(qty),
                "side": "long" if qty > 0 else "short",
                "market_value": _s(qty * spec.price), "cost_basis": _s(qty * avg),
                "current_price": _s(spec.price), "qty_available": _s(qty),
            })
        return web.json_response(out)

    # -- REST: orders ----------------------------------------------------------------------
    async def h_submit(self, request: web.Request) -> web.Response:
        body = await request.json()
        refused, fault = await self._enter(request, "orders", body)
        if refused is not None:
            return refused
        sym = str(body.get("symbol"))
        spec = self.markets.get(sym)
        if spec is None:
            return self.error(422, 40010001, f"asset not found: {sym}")
        coid = str(body.get("client_order_id") or uuid.uuid4())
        if self.order_by_client_id(coid) is not None:
            return self.error(422, 40010001, "client_order_id must be unique")
        try:
            qty = float(body["qty"])
        except (KeyError, TypeError, ValueError):
            return self.error(422, 40010001, "qty is required")
        kind = str(body.get("type", "market"))
        tif = str(body.get("time_in_force", "day"))
        ext = bool(body.get("extended_hours", False))
        cls = self.asset_class(sym)
        if ext and (kind != "limit" or tif != "day"):
            return self.error(422, 42210000,
                              "extended hours order must be DAY limit orders")
        if cls == "us_equity" and qty != int(qty) and not self.fractionable.get(sym, False):
            return self.error(422, 40010001, f"asset {sym} is not fractionable")
        limit = float(body["limit_price"]) if body.get("limit_price") else None
        stop = float(body["stop_price"]) if body.get("stop_price") else None
        px = limit or spec.price
        if body.get("side") == "buy" and not self.affordable(spec, "buy", qty, px):
            return self.error(403, 40310000, "insufficient buying power")
        if body.get("side") == "sell" and not self.affordable(spec, "sell", qty, px):
            return self.error(403, 40310000, f"insufficient qty available for order "
                                             f"(requested: {_s(qty)})")
        now = self.now_ms()
        o = SOrder(str(uuid.uuid4()), coid, sym, str(body["side"]), kind, qty, limit, now,
                   status="accepted" if kind == "market" else "new")
        self.orders[o.order_id] = o
        self.extra[o.order_id] = OrderExtra(tif, ext, kind, stop, cls, created_ms=now)
        answer = self.order_json(o)
        await self.notify_order(o, "new")
        if kind == "market" and (cls == "crypto" or self.equity_open):
            o.status = "new"
            trade = self.execute(o, qty, spec.price)
            await self.notify_trade(o, trade)
        return await self._after(fault, answer)

    async def h_orders(self, request: web.Request) -> web.Response:
        refused, _f = await self._enter(request, "list_orders")
        if refused is not None:
            return refused
        status = request.query.get("status", "open")
        after = request.query.get("after")
        symbols = request.query.get("symbols")
        out = []
        for o in self.orders.values():
            is_open = o.status in _OPEN
            if (status == "open") != is_open and status != "all":
                continue
            if after and o.ts_ms <= parse_iso(after):
                continue
            if symbols and o.symbol not in symbols.split(","):
                continue
            out.append(self.order_json(o))
        out.sort(key=lambda j: j["created_at"], reverse=request.query.get("direction") != "asc")
        return web.json_response(out[: int(request.query.get("limit", 50))])

    async def h_by_client_id(self, request: web.Request) -> web.Response:
        refused, fault = await self._enter(request, "order_by_client_id")
        if refused is not None:
            return refused
        o = self.order_by_client_id(request.query.get("client_order_id", ""))
        if o is None:
            return self.error(404, 40410000, "order not found")
        return await self._after(fault, self.order_json(o))

    async def h_order(self, request: web.Request) -> web.Response:
        refused, _f = await self._enter(request, "order")
        if refused is not None:
            return refused
        o = self.by_id(request.match_info["id"])
        if o is None:
            return self.error(404, 40410000, "order not found")
        return web.json_response(self.order_json(o))

    async def h_cancel(self, request: web.Request) -> web.Response:
        refused, fault = await self._enter(request, "cancel")
        if refused is not None:
            return refused
        o = self.by_id(request.match_info["id"])
        if o is None:
            return self.error(404, 40410000, "order not found")
        if o.status not in _OPEN:
            return self.error(422, 42210000, f"order is not cancelable (status {o.status})")
        o.status = "canceled"
        self.extra[o.order_id].updated_ms = self.now_ms()
        await self.notify_order(o, "canceled")
        if fault is not None and fault.kind == "error_after":
            return self.error(500, 50010000, "internal server error")
        return web.Response(status=204)

    async def h_replace(self, request: web.Request) -> web.Response:
        body = await request.json()
        refused, fault = await self._enter(request, "replace", body)
        if refused is not None:
            return refused
        old = self.by_id(request.match_info["id"])
        if old is None:
            return self.error(404, 40410000, "order not found")
        if old.status not in _OPEN:
            return self.error(422, 42210000, f"order is not replaceable (status {old.status})")
        x = self.extra[old.order_id]
        qty = float(body["qty"]) if body.get("qty") else old.qty
        limit = float(body["limit_price"]) if body.get("limit_price") else old.price
        coid = str(body.get("client_order_id") or uuid.uuid4())
        if self.order_by_client_id(coid) is not None:
            return self.error(422, 40010001, "client_order_id must be unique")
        now = self.now_ms()
        new = SOrder(str(uuid.uuid4()), coid, old.symbol, old.side, old.type, qty, limit, now,
                     status="new")
        self.orders[new.order_id] = new
        self.extra[new.order_id] = OrderExtra(
            str(body.get("time_in_force") or x.time_in_force), x.extended_hours, x.order_type,
            x.stop_price, x.asset_class, replaces=old.order_id, created_ms=now)
        old.status = "replaced"
        x.replaced_by, x.updated_ms = new.order_id, now
        await self.notify_order(old, "replaced")
        await self.notify_order(new, "new")
        return await self._after(fault, self.order_json(new))

    # -- REST: activities ------------------------------------------------------------------
    async def h_activities(self, request: web.Request) -> web.Response:
        refused, _f = await self._enter(request, "activities")
        if refused is not None:
            return refused
        if request.match_info["kind"] != "FILL":
            return web.json_response([])
        q = request.query
        after = parse_iso(q["after"]) if q.get("after") else None
        until = parse_iso(q["until"]) if q.get("until") else None
        rows = [a for a in self.activities
                if (after is None or a.trade.ts_ms > after)
                and (until is None or a.trade.ts_ms <= until)]
        desc = q.get("direction", "desc") == "desc"
        if desc:
            rows.reverse()
        token = q.get("page_token")
        if token:  # the page continues after the activity whose id is the token
            ids = [a.id for a in rows]
            rows = rows[ids.index(token) + 1:] if token in ids else []
        size = min(int(q.get("page_size", 100)), self.activity_page)
        return web.json_response([self.activity_json(a) for a in rows[:size]])

    def activity_json(self, a: Activity) -> dict[str, Any]:
        t = a.trade
        return {"id": a.id, "activity_type": "FILL", "transaction_time": iso(t.ts_ms),
                "type": "fill" if a.leaves_qty <= 1e-12 else "partial_fill",
                "price": _s(t.price), "qty": _s(t.qty), "side": t.side,
                "symbol": t.symbol, "leaves_qty": _s(a.leaves_qty), "order_id": t.order_id,
                "cum_qty": _s(a.cum_qty), "order_status": a.order_status}

    # -- REST: bars --------------------------------------------------------------------------
    async def h_stock_bars(self, request: web.Request) -> web.Response:
        return await self._bars(request, "stock_bars")

    async def h_crypto_bars(self, request: web.Request) -> web.Response:
        return await self._bars(request, "crypto_bars")

    async def _bars(self, request: web.Request, endpoint: str) -> web.Response:
        refused, _f = await self._enter(request, endpoint)
        if refused is not None:
            return refused
        q = request.query
        tf_ms = _TF_MS.get(q.get("timeframe", ""), None)
        if tf_ms is None:
            return self.error(422, 42210000, f"invalid timeframe {q.get('timeframe')!r}")
        start = parse_iso(q["start"]) if q.get("start") else 0
        end = parse_iso(q["end"]) if q.get("end") else self.now_ms()
        symbols = q.get("symbols", "").split(",")
        rows: list[tuple[str, list[float]]] = []
        for sym in symbols:
            if sym not in self.candles:
                continue
            rows.extend((sym, c) for c in self.candles[sym] if start <= c[0] <= end)
        offset = int(base64.b64decode(q["page_token"]).decode()) if q.get("page_token") else 0
        limit = min(int(q.get("limit") or 10_000), self.bar_page)
        page = rows[offset: offset + limit]
        more = offset + limit < len(rows)
        bars: dict[str, list[dict[str, Any]]] = {}
        for sym, c in page:
            bars.setdefault(sym, []).append(
                {"t": iso(int(c[0])).replace(".000000Z", "Z"), "o": c[1], "h": c[2],
                 "l": c[3], "c": c[4], "v": c[5], "n": 1, "vw": c[4]})
        token = base64.b64encode(str(offset + limit).encode()).decode() if more else None
        return web.json_response({"bars": bars, "next_page_token": token})

    # -- data streams (msgpack) ------------------------------------------------------------
    async def h_data_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        state = StreamState(request.path)
        self.streams[ws] = state
        self.market_ws.add(ws)
        try:
            await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "connected"}]))
            async for msg in ws:
                if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    break
                raw = msg.data if msg.type == WSMsgType.BINARY else msg.data.encode()
                await self._on_data_msg(ws, state, msgpack.unpackb(raw))
        finally:
            self.streams.pop(ws, None)
            self.market_ws.discard(ws)
        return ws

    async def _on_data_msg(self, ws: web.WebSocketResponse, state: StreamState,
                           msg: dict[str, Any]) -> None:
        action = msg.get("action")
        if action == "auth":
            if self.refuse_stream_auth or (msg.get("key"), msg.get("secret")) != (
                    self.api_key, self.secret):
                await ws.send_bytes(msgpack.packb([{"T": "error", "code": 402,
                                                    "msg": "auth failed"}]))
                await ws.close()
                return
            state.authed = True
            await ws.send_bytes(msgpack.packb([{"T": "success", "msg": "authenticated"}]))
        elif action == "subscribe":
            if not state.authed:
                await ws.send_bytes(msgpack.packb([{"T": "error", "code": 401,
                                                    "msg": "not authenticated"}]))
                return
            state.bars |= set(msg.get("bars") or [])
            state.updated |= set(msg.get("updatedBars") or [])
            state.daily |= set(msg.get("dailyBars") or [])
            self.subscriptions.append(msg)
            await ws.send_bytes(msgpack.packb([{
                "T": "subscription", "trades": [], "quotes": [], "bars": sorted(state.bars),
                "updatedBars": sorted(state.updated), "dailyBars": sorted(state.daily),
                "statuses": [], "lulds": [], "corrections": [], "cancelErrors": []}]))

    @staticmethod
    def bar_msg(kind: str, symbol: str, c: list[float]) -> dict[str, Any]:
        return {"T": kind, "S": symbol, "o": c[1], "h": c[2], "l": c[3], "c": c[4],
                "v": c[5], "n": 1, "vw": c[4],
                "t": msgpack.Timestamp.from_unix_nano(int(c[0]) * 1_000_000)}

    async def send_data(self, symbol: str, messages: list[dict[str, Any]], channel: str) -> int:
        """Send ``messages`` to every stream subscribed to ``symbol`` on ``channel``."""
        sent = 0
        for ws, st in list(self.streams.items()):
            subs = {"bars": st.bars, "updatedBars": st.updated, "dailyBars": st.daily}[channel]
            if symbol in subs and not ws.closed and not self.muted:
                await ws.send_bytes(msgpack.packb(messages))
                sent += 1
        return sent

    async def broadcast_candle(self, venue_id: str, candle: list[float], closed: bool) -> None:
        """A closed minute bar goes out as ``b``; Alpaca never streams a forming minute bar."""
        if closed:
            await self.send_data(venue_id, [self.bar_msg("b", venue_id, candle)], "bars")

    async def push_daily(self, venue_id: str, candle: list[float]) -> None:
        """The forming daily bar ``d``, as the venue re-sends it through the session."""
        await self.send_data(venue_id, [self.bar_msg("d", venue_id, candle)], "dailyBars")

    async def push_updated_bar(self, venue_id: str, candle: list[float]) -> None:
        """A late trade revised a minute bar already sent: ``u`` with the new values."""
        series = self.candles[venue_id]
        for i, c in enumerate(series):
            if c[0] == candle[0]:
                series[i] = list(candle)
        await self.send_data(venue_id, [self.bar_msg("u", venue_id, candle)], "updatedBars")

    async def push_garbage(self, data: bytes = b"\xc1\x93\x00garbage") -> None:
        """A frame that is not msgpack (``0xc1`` is never used by the format)."""
        for ws in list(self.streams):
            if not ws.closed:
                await ws.send_bytes(data)

    # -- trading stream (JSON) -------------------------------------------------------------
    async def h_trading_ws(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        authed = False
        try:
            async for msg in ws:
                if msg.type not in (WSMsgType.BINARY, WSMsgType.TEXT):
                    break
                data = json.loads(msg.data)
                action, body = data.get("action"), data.get("data") or {}
                if action == "authenticate":
                    ok = not self.refuse_stream_auth and (
                        body.get("key_id"), body.get("secret_key")) == (self.api_key, self.secret)
                    await ws.send_bytes(json.dumps({"stream": "authorization", "data": {
                        "action": "authenticate",
                        "status": "authorized" if ok else "unauthorized"}}).encode())
                    if not ok:
                        await ws.close()
                        break
                    authed = True
                elif action == "listen" and authed:
                    self.private_ws.add(ws)
                    self.listens += 1
                    await ws.send_bytes(json.dumps({"stream": "listening", "data": {
                        "streams": ["trade_updates"]}}).encode())
        finally:
            self.private_ws.discard(ws)
        return ws

    async def push_update(self, payload: dict[str, Any]) -> None:
        if self.muted:
            return
        for ws in list(self.private_ws):
            if not ws.closed:
                await ws.send_bytes(json.dumps(payload).encode())

    async def notify_order(self, order: SOrder, event: str = "") -> None:  # type: ignore[override]
        await self.push_update({"stream": "trade_updates", "data": {
            "event": event or order.status, "order": self.order_json(order),
            "timestamp": iso(self.now_ms())}})

    async def notify_trade(self, order: SOrder, trade: STrade) -> None:
        event = "fill" if order.status == "filled" else "partial_fill"
        pos = self.balances.get(self.markets[order.symbol].base, 0.0)
        await self.push_update({"stream": "trade_updates", "data": {
            "event": event, "execution_id": trade.trade_id, "order": self.order_json(order),
            "timestamp": iso(trade.ts_ms), "price": _s(trade.price),
            "qty": _s(trade.qty), "position_qty": _s(pos)}})

    # -- book -------------------------------------------------------------------------------
    def trade_id(self) -> str:
        return str(uuid.uuid4())  # Alpaca's execution ids are UUIDs

    def execute(self, order: SOrder, qty: float, price: float) -> STrade:
        spec = self.markets[order.symbol]
        held = self.balances.get(spec.base, 0.0)
        trade = super().execute(order, qty, price)
        if order.side == "buy":  # the average entry of a long position moves with each buy
            prev = self.avg_price.get(order.symbol, price)
            self.avg_price[order.symbol] = (prev * max(held, 0.0) + price * qty) / (
                max(held, 0.0) + qty)
        order.status = "filled" if order.filled >= order.qty - 1e-12 else "partially_filled"
        self.extra[order.order_id].updated_ms = trade.ts_ms
        stamp = time.strftime("%Y%m%d%H%M%S", time.gmtime(trade.ts_ms / 1000))
        # the activity id is the transaction time and the execution id joined by "::"
        self.activities.append(Activity(f"{stamp}{trade.ts_ms % 1000:03d}::{trade.trade_id}",
                                        trade, order.filled, order.qty - order.filled,
                                        order.status))
        return trade

    async def fill(self, client_order_id: str, qty: float | None = None,
                   price: float | None = None, *, notify: bool = True) -> STrade:
        order = self.order_by_client_id(client_order_id)
        if order is None or order.status not in _OPEN:
            raise KeyError(f"no open order {client_order_id}")
        q = order.qty - order.filled if qty is None else qty
        p = price if price is not None else (order.price or self.markets[order.symbol].price)
        trade = self.execute(order, q, p)
        if notify:
            await self.notify_trade(order, trade)
        return trade

    async def expire(self, client_order_id: str) -> None:
        """The venue ends a working order at the close of its day (time in force ``day``)."""
        order = self.order_by_client_id(client_order_id)
        if order is None or order.status not in _OPEN:
            raise KeyError(f"no open order {client_order_id}")
        order.status = "expired"
        self.extra[order.order_id].updated_ms = self.now_ms()
        await self.notify_order(order, "expired")
