"""A stand-in for Binance spot: ``/api/v3`` REST, ``/ws/<n>`` market streams, ``/ws-api/v3``.

Shapes follow Binance's spot API documentation (and what ccxt 4.5.90 sends
and parses): HMAC-SHA256 signatures over the query/body, ``X-MBX-APIKEY``,
error bodies ``{"code": -2010, "msg": ...}``, klines as 12-element arrays,
``executionReport`` events delivered through the WS-API user data stream.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import secrets
from typing import Any
from urllib.parse import parse_qsl

from aiohttp import web

from gateways.testing.standin import Fault, MarketSpec, Recorded, SOrder, StandinExchange, STrade

DAY_MS = 86_400_000
_INTERVAL_MS = {"1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}


def _fmt(x: float | str | None) -> str:
    if isinstance(x, str):
        return x  # a scripted non-numeric field goes out as the venue garbled it
    return "0.00000000" if x is None else f"{x:.8f}"


class BinanceStandin(StandinExchange):
    """Binance spot, as far as a spot trading daemon uses it."""

    def __init__(self, api_key: str | None = None, secret: str | None = None,
                 markets: list[MarketSpec] | None = None) -> None:
        # A fresh key pair per stand-in: nothing that looks like a credential is committed.
        super().__init__(api_key or secrets.token_hex(16), secret or secrets.token_hex(32),
                         markets or [
            MarketSpec("BTCUSDT", "BTC", "USDT", 0.01, 0.00001, 0.00001, 5.0, 50_000.0),
            MarketSpec("ETHUSDT", "ETH", "USDT", 0.01, 0.0001, 0.0001, 5.0, 3_000.0),
        ])
        self.balances = {"USDT": 100_000.0, "BTC": 0.0, "ETH": 0.0}
        self.subscriptions: list[str] = []
        self.kline_interval = "1m"
        self.private_subs = 0

    def private_subscriptions(self) -> int:
        return self.private_subs

    def urls(self) -> dict[str, Any]:
        """The ``urls['api']`` override pointing ccxt at this stand-in."""
        return {
            "public": f"{self.http}/api/v3",
            "private": f"{self.http}/api/v3",
            "v1": f"{self.http}/api/v1",
            "ws": {"spot": f"{self.ws}/ws", "ws-api": {"spot": f"{self.ws}/ws-api/v3"}},
        }

    def routes(self, app: web.Application) -> None:
        r = app.router
        r.add_get("/api/v3/time", self.h_time)
        r.add_get("/api/v3/exchangeInfo", self.h_exchange_info)
        r.add_get("/api/v3/klines", self.h_klines)
        r.add_get("/api/v3/account", self.h_account)
        r.add_post("/api/v3/order", self.h_new_order)
        r.add_delete("/api/v3/order", self.h_cancel)
        r.add_get("/api/v3/order", self.h_query_order)
        r.add_get("/api/v3/openOrders", self.h_open_orders)
        r.add_get("/api/v3/myTrades", self.h_my_trades)
        r.add_get("/ws/{n}", self.h_market_ws)
        r.add_get("/ws-api/v3", self.h_user_ws)

    # -- helpers -------------------------------------------------------------------
    @staticmethod
    def error(code: int, msg: str, status: int = 400) -> web.Response:
        return web.json_response({"code": code, "msg": msg}, status=status)

    def _verify(self, raw: str, key: str | None) -> web.Response | None:
        if key != self.api_key:
            return self.error(-2015, "Invalid API-key, IP, or permissions for action.", 401)
        payload, sep, sig = raw.rpartition("&signature=")
        if not sep:
            return self.error(-1102, "Mandatory parameter 'signature' was not sent.")
        want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(want, sig):
            return self.error(-1022, "Signature for this request is not valid.", 400)
        return None

    async def _enter(self, request: web.Request, endpoint: str, signed: bool
                     ) -> tuple[dict[str, str], Fault | None, web.Response | None]:
        raw_q = request.query_string
        body = await request.text() if request.method == "POST" else ""
        params = dict(parse_qsl(raw_q)) | dict(parse_qsl(body))
        rec = Recorded(request.method, request.path, params)
        fault = await self.record_and_fault(endpoint, rec)
        if signed:
            bad = self._verify(body or raw_q, request.headers.get("X-MBX-APIKEY"))
            rec.signed_ok = bad is None
            if bad is not None:
                return params, fault, bad
        if fault is not None:
            if fault.kind in ("ban", "banned"):
                # Binance's IP ban: 418 with the seconds left, for every request
                left = max(1, int(self.ban_left() + 0.999))
                resp = self.error(-1003, f"Way too many requests; IP banned until "
                                  f"{self.now_ms() + left * 1000}.", 418)
                resp.headers["Retry-After"] = str(left)
                return params, fault, resp
            if fault.kind == "stall_before":
                return params, fault, self.error(-1000, "Internal error.", 500)
            if fault.kind == "error_before":
                code = int(fault.code or -1000)
                msg = fault.message or {
                    -1006: "An unexpected response was received from the message bus. "
                           "Execution status unknown.",
                }.get(code, "An unknown error occurred while processing the request.")
                return params, fault, self.error(code, msg, 500)
            if fault.kind == "truncated_before":
                return params, fault, web.Response(
                    status=200, content_type="application/json",
                    text=self.truncate({"symbol": params.get("symbol"), "orderId": 0,
                                        "clientOrderId": params.get("newClientOrderId", ""),
                                        "status": "NEW", "fills": []}))
            if fault.kind == "rate_limit":
                resp = self.error(-1003, "Too many requests.", 429)
                if fault.retry_after is not None:
                    resp.headers["Retry-After"] = f"{fault.retry_after:g}"
                return params, fault, resp
            if fault.kind == "error":
                return params, fault, self.error(int(fault.code), fault.message)
        return params, fault, None

    def _spec(self, params: dict[str, str]) -> MarketSpec | None:
        return self.markets.get(params.get("symbol", ""))

    def order_json(self, o: SOrder, full: bool = False) -> dict[str, Any]:
        status = {"open": "PARTIALLY_FILLED" if o.filled > 0 else "NEW", "closed": "FILLED",
                  "canceled": "CANCELED"}[o.status]
        d: dict[str, Any] = {
            "symbol": o.symbol, "orderId": int(o.order_id), "orderListId": -1,
            "clientOrderId": o.client_order_id, "price": _fmt(o.price),
            "origQty": _fmt(o.qty), "executedQty": _fmt(o.filled),
            "cummulativeQuoteQty": _fmt(o.cost), "status": status,
            "timeInForce": "GTC" if o.type == "limit" else "GTC", "type": o.type.upper(),
            "side": o.side.upper(), "workingTime": o.ts_ms, "selfTradePreventionMode": "NONE",
        }
        if full:
            d["transactTime"] = o.ts_ms
            d["fills"] = [
                {"price": _fmt(t.price), "qty": _fmt(t.qty), "commission": _fmt(t.fee),
                 "commissionAsset": t.fee_asset, "tradeId": int(t.trade_id)}
                for t in self.trades if t.order_id == o.order_id
            ]
        else:
            d.update({"stopPrice": "0.00000000", "icebergQty": "0.00000000", "time": o.ts_ms,
                      "updateTime": o.ts_ms, "isWorking": True,
                      "origQuoteOrderQty": "0.00000000"})
        return d

    def _find(self, params: dict[str, str]) -> SOrder | None:
        if "origClientOrderId" in params:
            o = self.order_by_client_id(params["origClientOrderId"])
        else:
            o = self.orders.get(params.get("orderId", ""))
        if o is not None and o.symbol != params.get("symbol"):
            return None
        return o

    # -- REST ----------------------------------------------------------------------
    async def h_time(self, request: web.Request) -> web.Response:
        _params, fault, _bad = await self._enter(request, "time", False)
        if fault is not None and fault.kind == "error_before":
            # Binance's edge answers a backend outage with an HTML 502, not a JSON error
            return web.Response(status=502, content_type="text/html",
                                text="<html><body><h1>502 Bad Gateway</h1></body></html>")
        return web.json_response({"serverTime": self.now_ms()})

    async def h_exchange_info(self, request: web.Request) -> web.Response:
        _params, _fault, bad = await self._enter(request, "exchangeInfo", False)
        if bad is not None:  # a scripted 5xx, 418 ban, 429 or torn body: met at a start
            return bad
        symbols = []
        for m in self.markets.values():
            symbols.append({
                "symbol": m.venue_id, "status": "TRADING", "baseAsset": m.base,
                "baseAssetPrecision": 8, "quoteAsset": m.quote, "quotePrecision": 8,
                "quoteAssetPrecision": 8, "baseCommissionPrecision": 8,
                "quoteCommissionPrecision": 8,
                "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT",
                               "TAKE_PROFIT_LIMIT"],
                "icebergAllowed": True, "ocoAllowed": True, "quoteOrderQtyMarketAllowed": True,
                "allowTrailingStop": True, "cancelReplaceAllowed": True,
                "isSpotTradingAllowed": True, "isMarginTradingAllowed": False,
                "filters": [
                    {"filterType": "PRICE_FILTER", "minPrice": _fmt(m.tick),
                     "maxPrice": "1000000.00000000", "tickSize": _fmt(m.tick)},
                    {"filterType": "LOT_SIZE", "minQty": _fmt(m.min_qty),
                     "maxQty": "9000.00000000", "stepSize": _fmt(m.step)},
                    {"filterType": "NOTIONAL", "minNotional": _fmt(m.min_notional),
                     "applyMinToMarket": True, "maxNotional": "9000000.00000000",
                     "applyMaxToMarket": False, "avgPriceMins": 5},
                ],
                "permissions": [], "permissionSets": [["SPOT"]],
                "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
                "allowedSelfTradePreventionModes": ["NONE", "EXPIRE_MAKER"],
            })
        return web.json_response({"timezone": "UTC", "serverTime": self.now_ms(),
                                  "rateLimits": [], "exchangeFilters": [], "symbols": symbols})

    async def h_klines(self, request: web.Request) -> web.Response:
        params, _fault, bad = await self._enter(request, "klines", False)
        if bad is not None:
            return bad
        if self._spec(params) is None:
            return self.error(-1121, "Invalid symbol.")
        tf = _INTERVAL_MS[params.get("interval", "1m")]
        series = self.candles[params["symbol"]]
        start = int(params.get("startTime", 0))
        end = int(params.get("endTime", 2**62))
        limit = min(int(params.get("limit", 500)), 1000)
        rows = [c for c in series if start <= c[0] <= end]
        rows = rows[:limit] if "startTime" in params else rows[-limit:]
        return web.json_response([
            [int(c[0]), _fmt(c[1]), _fmt(c[2]), _fmt(c[3]), _fmt(c[4]), _fmt(c[5]),
             int(c[0]) + tf - 1, _fmt(c[4] * c[5]), 10, _fmt(c[5] / 2), _fmt(c[4] * c[5] / 2),
             "0"] for c in rows
        ])

    async def h_account(self, request: web.Request) -> web.Response:
        _params, _fault, bad = await self._enter(request, "account", True)
        if bad is not None:
            return bad
        return web.json_response({
            "makerCommission": 10, "takerCommission": 10, "buyerCommission": 0,
            "sellerCommission": 0, "canTrade": True, "canWithdraw": True, "canDeposit": True,
            "updateTime": self.now_ms(), "accountType": "SPOT", "permissions": ["SPOT"],
            "balances": [{"asset": a, "free": _fmt(v), "locked": "0.00000000"}
                         for a, v in self.balances.items()],
        })

    async def h_new_order(self, request: web.Request) -> web.Response:
        params, fault, bad = await self._enter(request, "order", True)
        if bad is not None:
            return bad
        spec = self._spec(params)
        if spec is None:
            return self.error(-1121, "Invalid symbol.")
        coid = params.get("newClientOrderId", "")
        existing = self.order_by_client_id(coid)
        if existing is not None and existing.status == "open":
            return self.error(-2010, "Duplicate order sent.")
        side = params["side"].lower()
        kind = params["type"].lower()
        qty = float(params["quantity"])
        price = float(params["price"]) if "price" in params else None
        ref = price if price is not None else spec.price
        if not self.affordable(spec, side, qty, ref):
            return self.error(-2010, "Account has insufficient balance for requested action.")
        o = SOrder(str(self.next_id()), coid, spec.venue_id, side, kind, qty, price,
                   self.now_ms())
        self.orders[o.order_id] = o
        trade = self.execute(o, qty, spec.price) if kind == "market" else None
        await self.notify_order(o, "NEW", None)
        if trade is not None:
            await self.notify_trade(o, trade)
        if fault is not None and fault.kind == "stall_after":
            await asyncio.sleep(fault.delay)
        if fault is not None and fault.kind == "error_after":
            # what Binance answers when its backend timed out: executed or not, nobody knows
            return self.error(-1007, "Timeout waiting for response from backend server. "
                              "Send status unknown; execution status unknown.", 503)
        if fault is not None and fault.kind == "truncated_after":
            return web.Response(status=200, content_type="application/json",
                                text=self.truncate(self.order_json(o, full=True)))
        return web.json_response(self.order_json(o, full=True))

    async def h_cancel(self, request: web.Request) -> web.Response:
        params, _fault, bad = await self._enter(request, "cancel", True)
        if bad is not None:
            return bad
        o = self._find(params)
        if o is None or o.status != "open":
            return self.error(-2011, "Unknown order sent.")
        o.status = "canceled"
        await self.notify_order(o, "CANCELED", None)
        d = self.order_json(o)
        d["origClientOrderId"] = o.client_order_id
        return web.json_response(d)

    async def h_query_order(self, request: web.Request) -> web.Response:
        params, _fault, bad = await self._enter(request, "queryOrder", True)
        if bad is not None:
            return bad
        o = self._find(params)
        if o is None:
            return self.error(-2013, "Order does not exist.")
        return web.json_response(self.order_json(o))

    async def h_open_orders(self, request: web.Request) -> web.Response:
        params, _fault, bad = await self._enter(request, "openOrders", True)
        if bad is not None:
            return bad
        sym = params.get("symbol")
        return web.json_response([self.order_json(o) for o in self.orders.values()
                                  if o.status == "open" and (sym is None or o.symbol == sym)])

    async def h_my_trades(self, request: web.Request) -> web.Response:
        """``GET /api/v3/myTrades`` as Binance pages it.

        Oldest first, ``limit`` 500 by default and 1000 at most.  ``fromId`` gives
        trades with id >= it (no time limit) and cannot be combined with a time
        range; ``startTime``/``endTime`` span at most 24 h (one alone means the 24 h
        after/before it); with neither, the most recent trades.
        """
        params, _fault, bad = await self._enter(request, "myTrades", True)
        if bad is not None:
            return bad
        sym = params.get("symbol")
        if self._spec(params) is None:
            return self.error(-1121, "Invalid symbol.")
        oid = params.get("orderId")
        limit = int(params.get("limit", 500))
        if not 0 < limit <= 1000:
            return self.error(-1100, "Illegal characters found in parameter 'limit'; legal "
                              "range is '1..1000'.")
        has_time = "startTime" in params or "endTime" in params
        if "fromId" in params and has_time:
            return self.error(-1128, "Combination of optional parameters invalid.")
        rows = [t for t in self.trades if t.symbol == sym
                and (oid is None or t.order_id == oid)]
        if "fromId" in params:
            rows = [t for t in rows if int(t.trade_id) >= int(params["fromId"])][:limit]
        elif has_time:
            start = int(params.get("startTime", int(params.get("endTime", 0)) - DAY_MS + 1))
            end = int(params.get("endTime", start + DAY_MS - 1))
            if end - start >= DAY_MS:
                return self.error(-1127, "More than 24 hours between startTime and endTime.")
            rows = [t for t in rows if start <= t.ts_ms <= end][:limit]
        elif oid is not None:
            rows = rows[:limit]
        else:
            rows = rows[-limit:]
        return web.json_response([
            {"symbol": t.symbol, "id": int(t.trade_id), "orderId": int(t.order_id),
             "orderListId": -1, "price": _fmt(t.price), "qty": _fmt(t.qty),
             "quoteQty": _fmt(t.qty * t.price), "commission": _fmt(t.fee),
             "commissionAsset": t.fee_asset, "time": t.ts_ms, "isBuyer": t.side == "buy",
             "isMaker": False, "isBestMatch": True}
            for t in rows
        ])

    # -- websockets ----------------------------------------------------------------
    async def h_market_ws(self, request: web.Request) -> web.WebSocketResponse:
        return await self.serve_ws(request, self.market_ws, self._on_market_msg)

    async def _on_market_msg(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        self.requests.append(Recorded("WS", "/ws", {"method": msg.get("method", "")}))
        if msg.get("method") == "SUBSCRIBE":
            self.subscriptions.extend(msg.get("params", []))
            await ws.send_json({"result": None, "id": msg.get("id")})

    def kline_message(self, venue_id: str, c: list[float], closed: bool) -> str:
        tf = _INTERVAL_MS[self.kline_interval]
        return json.dumps({
            "e": "kline", "E": self.now_ms(), "s": venue_id,
            "k": {"t": int(c[0]), "T": int(c[0]) + tf - 1, "s": venue_id,
                  "i": self.kline_interval, "f": 1, "L": 2, "o": _fmt(c[1]), "c": _fmt(c[4]),
                  "h": _fmt(c[2]), "l": _fmt(c[3]), "v": _fmt(c[5]), "n": 2, "x": closed,
                  "q": _fmt(c[4] * c[5]) if not isinstance(c[4], str) else "0",
                  "V": "0.0", "Q": "0.0", "B": "0"},
        })

    async def broadcast_candle(self, venue_id: str, candle: list[float], closed: bool) -> None:
        text = self.kline_message(venue_id, candle, closed)
        for ws in list(self.market_ws):
            if not ws.closed:
                await ws.send_str(text)

    async def h_user_ws(self, request: web.Request) -> web.WebSocketResponse:
        return await self.serve_ws(request, self.private_ws, self._on_user_msg)

    async def _on_user_msg(self, ws: web.WebSocketResponse, msg: dict[str, Any]) -> None:
        method = msg.get("method", "")
        self.requests.append(Recorded("WS", "/ws-api/v3", {"method": method}))
        if method == "userDataStream.subscribe.signature":
            p = dict(msg.get("params") or {})
            sig = p.pop("signature", "")
            payload = "&".join(f"{k}={p[k]}" for k in sorted(p))
            want = hmac.new(self.secret.encode(), payload.encode(), hashlib.sha256).hexdigest()
            if p.get("apiKey") != self.api_key or not hmac.compare_digest(want, sig):
                await ws.send_json({"id": msg.get("id"), "status": 401,
                                    "error": {"code": -1022,
                                              "msg": "Signature for this request is not valid."}})
                return
            await ws.send_json({"id": msg.get("id"), "status": 200,
                                "result": {"subscriptionId": 0}})
            self.private_subs += 1

    def execution_report(self, o: SOrder, exec_type: str, trade: STrade | None) -> dict[str, Any]:
        status = {"open": "PARTIALLY_FILLED" if o.filled > 0 else "NEW", "closed": "FILLED",
                  "canceled": "CANCELED"}[o.status]
        now = self.now_ms()
        return {
            "e": "executionReport", "E": now, "s": o.symbol, "c": o.client_order_id,
            "S": o.side.upper(), "o": o.type.upper(), "f": "GTC", "q": _fmt(o.qty),
            "p": _fmt(o.price), "P": "0.00000000", "F": "0.00000000", "g": -1,
            "C": o.client_order_id if exec_type == "CANCELED" else "", "x": exec_type,
            "X": status, "r": "NONE", "i": int(o.order_id),
            "l": _fmt(trade.qty if trade else 0.0), "z": _fmt(o.filled),
            "L": _fmt(trade.price if trade else 0.0),
            "n": _fmt(trade.fee if trade else 0.0),
            "N": trade.fee_asset if trade else None, "T": now,
            "t": int(trade.trade_id) if trade else -1, "I": self.next_id(), "w": True,
            "m": False, "M": False, "O": o.ts_ms, "Z": _fmt(o.cost),
            "Y": _fmt(trade.qty * trade.price if trade else 0.0), "Q": "0.00000000",
            "W": o.ts_ms, "V": "NONE",
        }

    async def notify_order(self, order: SOrder, exec_type: str = "NEW",  # type: ignore[override]
                           trade: STrade | None = None) -> None:
        await self.push_private({"subscriptionId": 0,
                                 "event": self.execution_report(order, exec_type, trade)})

    async def notify_trade(self, order: SOrder, trade: STrade) -> None:
        await self.notify_order(order, "TRADE", trade)
