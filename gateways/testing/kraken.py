"""A stand-in for Kraken spot: ``/0/public``, ``/0/private``, WS v2 ``/v2`` and ``/auth/v2``.

Shapes follow Kraken's REST and WebSocket v2 documentation (and what ccxt
4.5.90 sends and parses): private calls are form POSTs starting with a
``nonce`` and signed ``API-Sign = b64(HMAC-SHA512(b64decode(secret), path +
SHA256(nonce + body)))``; errors come back as HTTP 200 ``{"error": [...]}``;
the WS v2 ``ohlc`` and ``executions`` channels carry candles and order events,
and the app-level ``ping`` is answered with ``pong``.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import secrets
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gateways.testing.standin import Fault, MarketSpec, Recorded, SOrder, StandinExchange, STrade

# venue pair id -> (ccxt/ws symbol, altname, base asset id, quote asset id)
_PAIRS = {
    "XXBTZUSD": ("BTC/USD", "XBTUSD", "XXBT", "ZUSD"),
    "XETHZUSD": ("ETH/USD", "ETHUSD", "XETH", "ZUSD"),
}
_ASSETS = {"XXBT": ("XBT", 10), "XETH": ("ETH", 10), "ZUSD": ("USD", 4)}
_ALT_TO_ID = {"BTC": "XXBT", "ETH": "XETH", "USD": "ZUSD"}


KRAKEN_PAGE = 50  # TradesHistory and ClosedOrders page size


def _iso(ms: int) -> str:
    t = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z"


def _txid(n: int, prefix: str) -> str:
    s = f"{n:011d}"
    return f"{prefix}{s[:5]}-{s[5:10]}-{s[10:]}KRK"


class KrakenStandin(StandinExchange):
    """Kraken spot, as far as a spot trading daemon uses it."""

    fee_rate = 0.0026

    def __init__(self, api_key: str | None = None, secret: str | None = None,
                 markets: list[MarketSpec] | None = None) -> None:
        # A fresh key pair per stand-in (Kraken secrets are base64): nothing that looks
        # like a credential is committed.
        super().__init__(api_key or secrets.token_hex(16),
                         secret or base64.b64encode(secrets.token_bytes(64)).decode(),
                         markets or [
            MarketSpec("XXBTZUSD", "BTC", "USD", 0.1, 0.00000001, 0.0001, 0.5, 50_000.0),
            MarketSpec("XETHZUSD", "ETH", "USD", 0.01, 0.00000001, 0.002, 0.5, 3_000.0),
        ])
        self.balances = {"USD": 100_000.0, "BTC": 0.0, "ETH": 0.0}
        self.last_nonce = 0
        self.nonce_refusals = 0  # private requests refused for a nonce not above the last
        self.tokens: set[str] = set()
        self.subscriptions: list[dict[str, Any]] = []
        self.interval_min = 1

    def private_subscriptions(self) -> int:
        return sum(1 for sub in self.subscriptions if sub.get("channel") == "executions")

    def urls(self) -> dict[str, Any]:
        """The ``urls['api']`` override pointing ccxt at this stand-in."""
        return {
            "public": self.http,
            "private": self.http,
            "ws": {"publicV2": f"{self.ws}/v2", "privateV2": f"{self.ws}/auth/v2",
                   "private": f"{self.ws}/auth/v2"},
        }

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/0/public/Time", self.h_time)
        r.add_get("/0/public/Assets", self.h_assets)
        r.add_get("/0/public/AssetPairs", self.h_pairs)
        r.add_get("/0/public/OHLC", self.h_ohlc)
        r.add_post("/0/private/{method}", self.h_private)
        r.add_get("/v2", self.h_public_ws)
        r.add_get("/auth/v2", self.h_private_ws)

    @staticmethod
    def ok(result: Any) -> web.Response:
        return web.json_response({"error": [], "result": result})

    @staticmethod
    def err(*messages: str) -> web.Response:
        return web.json_response({"error": list(messages)})

    # -- public ----------------------------------------------------------------------
    async def h_time(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded("GET", request.path, dict(request.query)))
        fault = self.take_fault("Time")
        if fault is not None and fault.kind == "error_before":
            return _bad_gateway()
        now = self.now_ms() // 1000
        return self.ok({"unixtime": now, "rfc1123": ""})

    async def h_assets(self, request: web.Request) -> web.Response:
        self.requests.append(Recorded("GET", request.path, dict(request.query)))
        return self.ok({aid: {"aclass": "currency", "altname": alt, "decimals": dec,
                              "display_decimals": 5, "status": "enabled"}
                        for aid, (alt, dec) in _ASSETS.items()})

    async def h_pairs(self, request: web.Request) -> web.Response:
        # Scriptable like the private endpoints: a stall past the client's timeout, the
        # edge's HTML 502, or a body cut short (all met at a daemon's start).
        fault = await self.record_and_fault(
            "AssetPairs", Recorded("GET", request.path, dict(request.query)))
        if fault is not None and fault.kind in ("ban", "banned"):
            return self.err("EGeneral:Temporary lockout")
        if fault is not None and fault.kind == "error_before":
            return _bad_gateway()
        out = {}
        for pid, m in self.markets.items():
            _sym, alt, base, quote = _PAIRS[pid]
            out[pid] = {
                "altname": alt, "wsname": f"{_ASSETS[base][0]}/{_ASSETS[quote][0]}",
                "aclass_base": "currency", "base": base, "aclass_quote": "currency",
                "quote": quote, "lot": "unit", "cost_decimals": 5,
                "pair_decimals": max(0, round(-__import__("math").log10(m.tick))),
                "lot_decimals": 8, "lot_multiplier": 1, "leverage_buy": [],
                "leverage_sell": [], "fees": [[0, 0.26]], "fees_maker": [[0, 0.16]],
                "fee_volume_currency": "ZUSD", "margin_call": 80, "margin_stop": 40,
                "ordermin": f"{m.min_qty}", "costmin": f"{m.min_notional}",
                "tick_size": f"{m.tick}", "status": "online",
            }
        if fault is not None and fault.kind == "truncated_before":
            return web.Response(status=200, content_type="application/json",
                                text=self.truncate({"error": [], "result": out}))
        return self.ok(out)

    async def h_ohlc(self, request: web.Request) -> web.Response:
        q = dict(request.query)
        self.requests.append(Recorded("GET", request.path, q))
        fault = self.take_fault("OHLC")
        if fault is not None and fault.kind == "rate_limit":
            return self.err("EAPI:Rate limit exceeded")
        pid = q.get("pair", "")
        if pid not in self.markets:
            return self.err("EQuery:Unknown asset pair")
        since_s = int(q.get("since", 0))
        # like Kraken: at most 720 of the most recent candles, newer than ``since``
        rows = [c for c in self.candles[pid] if c[0] // 1000 > since_s][-720:]
        data = [[int(c[0]) // 1000, f"{c[1]}", f"{c[2]}", f"{c[3]}", f"{c[4]}", f"{c[4]}",
                 f"{c[5]}", 3] for c in rows]
        last = data[-1][0] if data else since_s
        return self.ok({pid: data, "last": last})

    # -- private ---------------------------------------------------------------------
    def _verify(self, path: str, body: str, headers: Any) -> str | None:
        if headers.get("API-Key") != self.api_key:
            return "EAPI:Invalid key"
        params = dict(parse_qsl(body))
        nonce = params.get("nonce", "")
        if not nonce.isdigit():
            return "EAPI:Invalid nonce"
        sha = hashlib.sha256((nonce + body).encode()).digest()
        mac = hmac.new(base64.b64decode(self.secret), path.encode() + sha, hashlib.sha512)
        if not hmac.compare_digest(base64.b64encode(mac.digest()).decode(),
                                   headers.get("API-Sign", "")):
            return "EAPI:Invalid key"  # what Kraken answers to a bad signature
        if int(nonce) <= self.last_nonce:
            self.nonce_refusals += 1
            return "EAPI:Invalid nonce"
        self.last_nonce = int(nonce)
        return None

    async def h_private(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        body = await request.text()
        params = dict(parse_qsl(body))
        rec = Recorded("POST", request.path, params)
        fault = await self.record_and_fault(method, rec)
        if fault is not None and fault.kind in ("ban", "banned"):
            return self.err("EGeneral:Temporary lockout")  # Kraken names no end time
        if fault is not None and fault.kind == "truncated_before":
            return web.Response(status=200, content_type="application/json",
                                text=self.truncate({"error": [], "result": {
                                    "descr": {"order": "buy"}, "txid": ["OXXXXX-XXXXX-XXXXXX"]}}))
        if fault is not None and fault.kind == "stall_before":
            return self.err("EGeneral:Internal error")  # the caller has long given up
        if fault is not None and fault.kind == "error_before":
            return _bad_gateway()
        bad = self._verify(request.path, body, request.headers)
        rec.signed_ok = bad is None
        if bad is not None:
            return self.err(bad)
        if fault is not None:
            if fault.kind == "rate_limit":
                return self.err("EAPI:Rate limit exceeded")
            if fault.kind == "error":
                return self.err(fault.message)
        handler = getattr(self, f"p_{method}", None)
        if handler is None:
            return self.err("EGeneral:Unknown method")
        resp = await handler(params)
        if fault is not None and fault.kind == "stall_after":
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.kind == "error_after":
            return _bad_gateway()  # executed behind the edge proxy, the answer lost
        if fault is not None and fault.kind == "truncated_after":
            return web.Response(status=200, content_type="application/json",
                                text=self.truncate(__import__("json").loads(resp.text)))
        return resp

    def order_json(self, o: SOrder) -> dict[str, Any]:
        _sym, alt, _b, _q = _PAIRS[o.symbol]
        px = f"{o.price}" if o.price is not None else "0"
        return {
            "refid": None, "userref": 0, "cl_ord_id": o.client_order_id, "status": o.status,
            "opentm": o.ts_ms / 1000, "starttm": 0, "expiretm": 0,
            "descr": {"pair": alt, "type": o.side, "ordertype": o.type, "price": px,
                      "price2": "0", "leverage": "none",
                      "order": f"{o.side} {o.qty:.8f} {alt} @ {o.type} {px}", "close": ""},
            "vol": f"{o.qty:.8f}", "vol_exec": f"{o.filled:.8f}", "cost": f"{o.cost:.5f}",
            "fee": f"{o.cost * self.fee_rate:.5f}",
            "price": f"{(o.cost / o.filled) if o.filled else 0:.5f}",
            "stopprice": "0.00000", "limitprice": "0.00000", "misc": "", "oflags": "fciq",
            "trades": list(o.trade_ids),
        }

    def trade_id(self) -> str:
        return _txid(self.next_id(), "T")

    async def p_GetWebSocketsToken(self, params: dict[str, str]) -> web.Response:
        token = f"token-{self.next_id()}"
        self.tokens.add(token)
        return self.ok({"token": token, "expires": 900})

    async def p_BalanceEx(self, params: dict[str, str]) -> web.Response:
        return self.ok({_ALT_TO_ID.get(a, a): {"balance": f"{v:.8f}", "hold_trade": "0.0000"}
                        for a, v in self.balances.items()})

    async def p_AddOrder(self, params: dict[str, str]) -> web.Response:
        pid = params.get("pair", "")
        spec = self.markets.get(pid)
        if spec is None:
            return self.err("EQuery:Unknown asset pair")
        coid = params.get("cl_ord_id", "")
        side = params["type"]
        kind = params["ordertype"]
        qty = float(params["volume"])
        price = float(params["price"]) if "price" in params else None
        if qty < spec.min_qty:
            return self.err("EOrder:Order minimum not met")
        if not self.affordable(spec, side, qty, price if price is not None else spec.price):
            return self.err("EOrder:Insufficient funds")
        o = SOrder(_txid(self.next_id(), "O"), coid, pid, side, kind, qty, price, self.now_ms())
        self.orders[o.order_id] = o
        await self.notify_order(o, "new")
        if kind == "market":
            trade = self.execute(o, qty, spec.price)
            await self.notify_trade(o, trade)
            await self.notify_order(o, "filled")
        _sym, alt, _b, _q = _PAIRS[pid]
        return self.ok({"descr": {"order": f"{side} {qty:.8f} {alt} @ {kind}"},
                        "txid": [o.order_id]})

    def _find(self, params: dict[str, str]) -> SOrder | None:
        if params.get("cl_ord_id"):
            return self.order_by_client_id(params["cl_ord_id"])
        return self.orders.get(params.get("txid", ""))

    async def p_CancelOrder(self, params: dict[str, str]) -> web.Response:
        o = self._find(params)
        if o is None or o.status != "open":
            return self.err("EOrder:Unknown order")
        o.status = "canceled"
        await self.notify_order(o, "canceled")
        return self.ok({"count": 1})

    async def p_OpenOrders(self, params: dict[str, str]) -> web.Response:
        coid = params.get("cl_ord_id")
        return self.ok({"open": {o.order_id: self.order_json(o) for o in self.orders.values()
                                 if o.status == "open"
                                 and (coid is None or o.client_order_id == coid)}})

    async def p_ClosedOrders(self, params: dict[str, str]) -> web.Response:
        """Closed orders as Kraken pages them: 50 a page from ``ofs``, newest first, ``count``."""
        coid = params.get("cl_ord_id")
        start = float(params.get("start", 0))
        rows = [o for o in self.orders.values()
                if o.status != "open" and (coid is None or o.client_order_id == coid)
                and self._closed_ms(o) / 1000 > start]
        rows.sort(key=self._closed_ms, reverse=True)
        page = self._page(rows, params)
        return self.ok({"closed": {o.order_id: self.order_json(o) for o in page},
                        "count": len(rows)})

    def _closed_ms(self, o: SOrder) -> int:
        """When an order closed: its last execution (the stand-in keeps no close time)."""
        return max([o.ts_ms] + [t.ts_ms for t in self.trades if t.order_id == o.order_id])

    @staticmethod
    def _page(rows: list[Any], params: dict[str, str]) -> list[Any]:
        """Kraken's fixed page: 50 entries from offset ``ofs``."""
        ofs = int(params.get("ofs", 0))
        return rows[ofs:ofs + KRAKEN_PAGE]

    async def p_QueryOrders(self, params: dict[str, str]) -> web.Response:
        ids = params.get("txid", "").split(",")
        found = {i: self.order_json(self.orders[i]) for i in ids if i in self.orders}
        if not found:
            return self.err("EOrder:Unknown order")
        return self.ok(found)

    async def p_TradesHistory(self, params: dict[str, str]) -> web.Response:
        """Trades as Kraken pages them: ``start`` exclusive, 50 a page from ``ofs``, newest
        first, with the ``count`` of all matches."""
        start = float(params.get("start", 0))
        end = float(params.get("end", 2**62))
        rows = [t for t in self.trades if start < t.ts_ms / 1000 <= end]
        rows.sort(key=lambda t: (t.ts_ms, t.trade_id), reverse=True)
        out = {}
        for t in self._page(rows, params):
            out[t.trade_id] = {
                "ordertxid": t.order_id, "postxid": f"P{t.trade_id}", "pair": t.symbol,
                "time": t.ts_ms / 1000, "type": t.side, "ordertype": "market",
                "price": f"{t.price}", "cost": f"{t.qty * t.price:.5f}",
                "fee": f"{t.fee:.5f}", "vol": f"{t.qty:.8f}", "margin": "0.00000",
                "misc": "", "trade_id": int(t.trade_id[1:6]),
            }
        return self.ok({"trades": out, "count": len(rows)})

    # -- websockets ------------------------------------------------------------------
    async def h_public_ws(self, request: web.Request) -> web.WebSocketResponse:
        return await self.serve_ws(request, self.market_ws, self._on_public)

    async def h_private_ws(self, request: web.Request) -> web.WebSocketResponse:
        return await self.serve_ws(request, self.private_ws, self._on_private)

    async def _answer_common(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> bool:
        if msg.get("method") == "ping":
            await ws.send_json({"method": "pong", "req_id": msg.get("req_id"),
                                "time_in": _iso(self.now_ms()), "time_out": _iso(self.now_ms())})
            return True
        return False

    async def _on_public(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        if await self._answer_common(ws, msg):
            return
        self.requests.append(Recorded("WS", "/v2", {"method": msg.get("method", "")}))
        if msg.get("method") == "subscribe":
            p = msg.get("params") or {}
            self.subscriptions.append(p)
            await ws.send_json({"method": "subscribe", "req_id": msg.get("req_id"),
                                "success": True,
                                "result": {"channel": p.get("channel"),
                                           "symbol": (p.get("symbol") or [""])[0],
                                           "interval": p.get("interval"), "snapshot": True},
                                "time_in": _iso(self.now_ms()), "time_out": _iso(self.now_ms())})

    async def _on_private(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        if await self._answer_common(ws, msg):
            return
        self.requests.append(Recorded("WS", "/auth/v2", {"method": msg.get("method", "")}))
        if msg.get("method") == "subscribe":
            p = msg.get("params") or {}
            if p.get("token") not in self.tokens:
                await ws.send_json({"method": "subscribe", "req_id": msg.get("req_id"),
                                    "success": False, "error": "EAccount:Invalid token"})
                return
            self.subscriptions.append({"channel": p.get("channel")})
            await ws.send_json({"method": "subscribe", "req_id": msg.get("req_id"),
                                "success": True, "result": {"channel": "executions"}})

    def ohlc_message(self, venue_id: str, c: list[float]) -> dict[str, Any]:
        sym = _PAIRS[venue_id][0]
        # JSON has no NaN: a value the venue lacks arrives as null
        c = [x if isinstance(x, str) or (x == x and abs(x) != float("inf")) else None
             for x in c]
        return {"channel": "ohlc", "type": "update", "timestamp": _iso(self.now_ms()),
                "data": [{"symbol": sym, "open": c[1], "high": c[2], "low": c[3], "close": c[4],
                          "trades": 3, "volume": c[5], "vwap": c[4],
                          "interval_begin": _iso(int(c[0])), "interval": self.interval_min,
                          "timestamp": _iso(int(c[0]) + self.interval_min * 60_000)}]}

    async def broadcast_candle(self, venue_id: str, candle: list[float], closed: bool) -> None:
        msg = self.ohlc_message(venue_id, candle)
        for ws in list(self.market_ws):
            if not ws.closed:
                await ws.send_json(msg)

    async def notify_order(self, order: SOrder, exec_type: str = "new") -> None:  # type: ignore[override]
        status = {"open": "partially_filled" if order.filled else "new", "closed": "filled",
                  "canceled": "canceled"}[order.status]
        d = {
            "order_id": order.order_id, "cl_ord_id": order.client_order_id, "order_userref": 0,
            "symbol": _PAIRS[order.symbol][0], "order_qty": order.qty, "cum_qty": order.filled,
            "cum_cost": order.cost, "avg_price": (order.cost / order.filled) if order.filled
            else 0.0, "time_in_force": "GTC", "exec_type": exec_type, "side": order.side,
            "order_type": order.type, "limit_price_type": "static",
            "limit_price": order.price or 0.0, "stop_price": 0.0, "order_status": status,
            "fee_usd_equiv": order.cost * self.fee_rate, "fee_ccy_pref": "fciq",
            "timestamp": _iso(self.now_ms()),
        }
        await self.push_private({"channel": "executions", "type": "update", "data": [d],
                                 "sequence": self.next_id()})

    async def notify_trade(self, order: SOrder, trade: STrade) -> None:
        d = {
            "order_id": order.order_id, "cl_ord_id": order.client_order_id,
            "exec_id": trade.trade_id, "exec_type": "trade", "trade_id": self.next_id(),
            "symbol": _PAIRS[order.symbol][0], "side": order.side, "last_qty": trade.qty,
            "last_price": trade.price, "liquidity_ind": "t", "cost": trade.qty * trade.price,
            "order_userref": 0, "order_status": "filled" if order.status == "closed"
            else "partially_filled", "order_type": order.type,
            "fee_usd_equiv": trade.fee, "fees": [{"asset": "USD", "qty": trade.fee}],
            "timestamp": _iso(trade.ts_ms),
        }
        await self.push_private({"channel": "executions", "type": "update", "data": [d],
                                 "sequence": self.next_id()})


__all__ = ["Fault", "KrakenStandin"]


def _bad_gateway() -> web.Response:
    """What Kraken's edge (Cloudflare) answers when the backend does not: an HTML 502."""
    return web.Response(status=502, content_type="text/html",
                        text="<html><head><title>502 Bad Gateway</title></head>"
                             "<body><center><h1>502 Bad Gateway</h1></center></body></html>")
