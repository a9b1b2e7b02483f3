"""Building the ccxt.pro exchange object and the per-venue differences ("dialects").

ccxt hides most venue differences, but not all: how an order is found by our
client order id, which markets to load, which error needs which treatment.
Those differences live in one small ``Dialect`` per exchange so the gateway
itself stays venue-neutral; a new ccxt venue normally needs no dialect at all.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

import ccxt.pro as ccxtpro
from ccxt.base.errors import OrderNotFound

from gateways.ccxt.config import CcxtConfigError, CcxtGatewayConfig, Credentials
from gateways.inflight import backoff_delay

__all__ = ["backoff_delay", "build_exchange", "dialect_for", "Dialect"]

DEAD_END = "http://127.0.0.1:1"
DEAD_END_WS = "ws://127.0.0.1:1"




def dead_end_urls(tree: Any) -> Any:
    """Every URL in ``urls['api']`` rewritten to a closed loopback port (keeps the paths)."""
    if isinstance(tree, Mapping):
        return {k: dead_end_urls(v) for k, v in tree.items()}
    if isinstance(tree, str):
        scheme, sep, rest = tree.partition("://")
        if not sep:
            return tree
        path = rest.partition("/")[2]
        host = DEAD_END_WS if scheme.startswith("ws") else DEAD_END
        return f"{host}/{path}" if path else host
    return tree


def deep_merge(base: Any, override: Any) -> Any:
    if isinstance(base, Mapping) and isinstance(override, Mapping):
        out = dict(base)
        for k, v in override.items():
            out[k] = deep_merge(base.get(k), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(override)


DAY_NS = 86_400 * 1_000_000_000


class Dialect:
    """Venue specifics ccxt does not unify; the defaults suit Binance-like venues."""

    options: dict[str, Any] = {}
    sign_with_server_time = True
    # how far back the venue lists our executions (reconciliation horizon); a venue
    # without a dialect gets a cautious 30 days rather than an unproven "forever"
    fills_lookback_ns: int | None = 30 * DAY_NS

    async def find_order(
        self, ex: Any, client_order_id: str, symbols: list[str]
    ) -> dict[str, Any] | None:
        """The exchange's order carrying our client order id, or None if it has none."""
        for symbol in symbols:
            try:
                return await ex.fetch_order(None, symbol, {"clientOrderId": client_order_id})
            except OrderNotFound:
                continue
        return None

    def trades_query(self, broker_order_id: str, since_ms: int) -> tuple[int | None, dict]:
        """(since, params) for ``fetch_my_trades`` narrowed to one order."""
        return None, {"orderId": broker_order_id}


class BinanceDialect(Dialect):
    # only spot markets; currency and margin endpoints need SAPI, which a spot
    # trader does not use and a testnet does not serve
    options = {
        "fetchMarkets": {"types": ["spot"]},
        "fetchCurrencies": False,
        "fetchMargins": False,
        "defaultType": "spot",
    }
    # Binance serves the account's trade list (myTrades) for about six months; older
    # executions come only from the statement export
    fills_lookback_ns = 180 * DAY_NS


class KrakenDialect(Dialect):
    sign_with_server_time = False  # the nonce must only ever grow
    # TradesHistory pages through the whole account history (50 per page, by offset)
    fills_lookback_ns = None

    async def find_order(
        self, ex: Any, client_order_id: str, symbols: list[str]
    ) -> dict[str, Any] | None:
        # Kraken's QueryOrders takes only txids/userref; open and closed order
        # lists accept cl_ord_id, so the order is looked up there
        params = {"clientOrderId": client_order_id}
        for fetch in (ex.fetch_open_orders, ex.fetch_closed_orders):
            for order in await fetch(None, None, None, dict(params)):
                if order.get("clientOrderId") == client_order_id:
                    return order
        return None

    def trades_query(self, broker_order_id: str, since_ms: int) -> tuple[int | None, dict]:
        return since_ms, {}


DIALECTS: dict[str, type[Dialect]] = {"binance": BinanceDialect, "kraken": KrakenDialect}


def dialect_for(exchange_id: str) -> Dialect:
    return DIALECTS.get(exchange_id, Dialect)()


def build_exchange(config: CcxtGatewayConfig, credentials: Credentials, dialect: Dialect) -> Any:
    """A configured ``ccxt.pro`` exchange: options, credentials, sandbox and URL overrides."""
    cls = getattr(ccxtpro, config.exchange)
    params: dict[str, Any] = {
        "enableRateLimit": config.rate_limit,
        "timeout": config.timing.request_timeout_ms,
        "options": deep_merge(dialect.options, config.options),
    }
    if credentials:
        params["apiKey"] = credentials.api_key
        params["secret"] = credentials.secret
    ex = cls(params)
    if config.sandbox:
        try:
            ex.set_sandbox_mode(True)
        except Exception as exc:  # ccxt raises NotSupported or even TypeError here
            raise CcxtConfigError(
                f"sandbox: {config.exchange} has no sandbox in ccxt ({type(exc).__name__}); "
                "point `urls` at a test endpoint instead"
            ) from None
    if config.urls:
        api = dead_end_urls(ex.urls["api"]) if config.dead_end_other_urls else ex.urls["api"]
        ex.urls["api"] = deep_merge(api, config.urls)
    return ex
