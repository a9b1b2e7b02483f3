"""Complete account history from ccxt venues: every trade and closed order since a time.

Reconciliation is only as good as ``fills_since``: a restart after 63 fills on
Kraken once recovered 50 of them, because Kraken serves ``TradesHistory`` and
``ClosedOrders`` 50 at a time, newest first, and the rest sit behind ``ofs``.
Each venue pages differently, so each gets a pager that follows its documented
page size and ordering, driven through ccxt's own methods and params:

* Kraken (``TradesHistory``/``ClosedOrders``): 50 per page, newest first,
  ``start`` (exclusive, seconds) and ``ofs`` (offset into the result).  A trade
  booked while we page shifts later pages by one: we see a duplicate, never a
  gap, and duplicates are dropped by id.
* Binance (``myTrades``): at most 1000 per page, oldest first, per symbol; a
  ``startTime``/``endTime`` window may span at most 24 h, while ``fromId``
  continues from a trade id with no time limit.  So: find the first window
  after ``since`` that holds a trade, then follow ``fromId`` to the present.
* Any other venue: ccxt's ``since``/``limit`` cursor, advanced by timestamp.

Every function takes the ccxt exchange and returns ccxt's unified dicts.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import structlog

log = structlog.get_logger(__name__)

DAY_MS = 86_400_000
KRAKEN_PAGE = 50  # Kraken's fixed page size for TradesHistory and ClosedOrders
BINANCE_PAGE = 1000  # myTrades' largest limit
BINANCE_WINDOW_MS = DAY_MS  # the widest startTime..endTime window myTrades accepts
GENERIC_PAGE = 500
# A runaway guard, not a horizon: 10 000 pages is 500 000 Kraken trades.
MAX_PAGES = 10_000


class IncompleteHistory(RuntimeError):
    """The venue kept returning pages beyond ``MAX_PAGES``: the history is not provably complete."""


def _add_new(out: list[dict[str, Any]], seen: set[str], page: Iterable[dict[str, Any]]) -> int:
    """Append the entries of ``page`` not seen yet (by id); how many were new."""
    n = 0
    for item in page:
        key = str(item.get("id"))
        if key in seen:
            continue
        seen.add(key)
        out.append(item)
        n += 1
    return n


async def kraken_trades_since(ex: Any, since_ms: int) -> list[dict[str, Any]]:
    """Every trade of the account since ``since_ms``, all pairs (Kraken pages across pairs).

    Asked without a symbol on purpose: ccxt filters a symbol client-side, so a
    filtered page can hold fewer than 50 entries although more pages follow.
    """
    return await _kraken_pages(lambda p: ex.fetch_my_trades(None, since_ms, None, p))


async def kraken_closed_orders_since(ex: Any, since_ms: int) -> list[dict[str, Any]]:
    """Every order closed (or opened) since ``since_ms``, all pairs, newest first pages."""
    return await _kraken_pages(lambda p: ex.fetch_closed_orders(None, since_ms, None, p))


async def _kraken_pages(fetch: Any) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    ofs = 0
    for _ in range(MAX_PAGES):
        page = await fetch({"ofs": ofs})
        _add_new(out, seen, page)
        # A short page is the last one; ccxt may also have dropped entries older than
        # ``since`` (Kraken's ``start`` has one-second resolution), and those are the
        # oldest, i.e. at the end of the newest-first listing: nothing follows them.
        if len(page) < KRAKEN_PAGE:
            return out
        ofs += KRAKEN_PAGE
    raise IncompleteHistory(f"Kraken history longer than {MAX_PAGES} pages")


async def binance_trades_since(ex: Any, symbol: str, since_ms: int,
                               now_ms: int) -> list[dict[str, Any]]:
    """Every trade in ``symbol`` since ``since_ms``: 24 h windows to the first, then ``fromId``."""
    # One cheap look at the newest trade: nothing since ``since`` ends the search here
    # instead of walking empty day windows up to now.
    latest = await ex.fetch_my_trades(symbol, None, 1)
    if not latest or int(latest[-1].get("timestamp") or 0) < since_ms:
        return []
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    start = since_ms
    first: list[dict[str, Any]] = []
    for _ in range(MAX_PAGES):
        if start > now_ms:
            return out
        end = start + BINANCE_WINDOW_MS - 1
        first = await ex.fetch_my_trades(symbol, start, BINANCE_PAGE, {"endTime": end})
        if first:
            break
        start = end + 1
    else:
        raise IncompleteHistory(f"Binance {symbol}: no trade found in {MAX_PAGES} windows")
    # the first window may end before later trades: fromId always continues from it
    page = first
    for _ in range(MAX_PAGES):
        _add_new(out, seen, page)
        next_id = max(int(t["id"]) for t in page) + 1
        page = await ex.fetch_my_trades(symbol, None, BINANCE_PAGE, {"fromId": next_id})
        if len(page) < BINANCE_PAGE:
            _add_new(out, seen, page)
            return out
    raise IncompleteHistory(f"Binance {symbol}: more than {MAX_PAGES} pages of trades")


async def generic_trades_since(ex: Any, symbol: str, since_ms: int) -> list[dict[str, Any]]:
    """ccxt's unified cursor: ``since``/``limit``, advanced to the newest timestamp seen."""
    out: list[dict[str, Any]] = []
    seen: set[str] = set()
    cursor = since_ms
    for _ in range(MAX_PAGES):
        page = await ex.fetch_my_trades(symbol, cursor, GENERIC_PAGE)
        fresh = _add_new(out, seen, page)
        if not fresh or len(page) < GENERIC_PAGE:
            return out
        cursor = max(int(tr.get("timestamp") or cursor) for tr in page)
    raise IncompleteHistory(f"{symbol}: more than {MAX_PAGES} pages of trades")


async def trades_since(ex: Any, exchange_id: str, symbols: list[str], since_ms: int,
                       now_ms: int) -> dict[str, list[dict[str, Any]]]:
    """Every trade since ``since_ms`` per configured symbol (others dropped), oldest first."""
    by_symbol: dict[str, list[dict[str, Any]]] = {s: [] for s in symbols}
    if exchange_id == "kraken":
        for tr in await kraken_trades_since(ex, since_ms):
            bucket = by_symbol.get(str(tr.get("symbol")))
            if bucket is not None:
                bucket.append(tr)
    else:
        for symbol in symbols:
            if exchange_id == "binance":
                by_symbol[symbol] = await binance_trades_since(ex, symbol, since_ms, now_ms)
            else:
                by_symbol[symbol] = await generic_trades_since(ex, symbol, since_ms)
    for trades in by_symbol.values():
        trades.sort(key=lambda t: (int(t.get("timestamp") or 0), str(t.get("id"))))
    return by_symbol


async def closed_orders_since(ex: Any, exchange_id: str,
                              since_ms: int) -> list[dict[str, Any]] | None:
    """Closed orders since ``since_ms`` where the venue lists them cheaply in pages.

    Kraken only: it answers a whole page of orders per request, where looking up
    each trade's order one by one costs a request per trade.  None elsewhere
    (the caller looks orders up one at a time).
    """
    if exchange_id == "kraken":
        return await kraken_closed_orders_since(ex, since_ms)
    return None
