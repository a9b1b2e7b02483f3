"""What each MT5 trade server return code (``OrderSendResult.retcode``) means for an order.

Every retcode maps to one ``Verdict``: the request was done or placed, can be
retried because nothing happened (requote, too many requests), or is refused.
Terminal-side errors (``last_error`` when ``order_send`` returns None) are
separate: an IPC timeout or a lost terminal leaves the outcome unknown.
"""

from __future__ import annotations

from enum import StrEnum


class Verdict(StrEnum):
    DONE = "done"  # executed (market) or modified/removed
    PLACED = "placed"  # a pending order rests at the server
    REPRICE = "reprice"  # nothing placed: the price moved; retry with a fresh price
    BUSY = "busy"  # nothing placed: throttled; retry after a pause
    REJECTED = "rejected"  # nothing placed, and retrying would not help


DONE, PLACED, DONE_PARTIAL = 10009, 10008, 10010
REQUOTE, PRICE_CHANGED, PRICE_OFF = 10004, 10020, 10021
TOO_MANY_REQUESTS = 10024

TEXT: dict[int, str] = {
    10004: "requote",
    10006: "request rejected",
    10007: "request canceled by trader",
    10008: "order placed",
    10009: "request completed",
    10010: "only part of the request was completed",
    10011: "request processing error",
    10012: "request canceled by timeout",
    10013: "invalid request",
    10014: "invalid volume",
    10015: "invalid price",
    10016: "invalid stops",
    10017: "trade is disabled",
    10018: "market is closed",
    10019: "no money: not enough free margin",
    10020: "prices changed",
    10021: "no quotes to process the request",
    10022: "invalid order expiration date",
    10023: "order state changed",
    10024: "too many requests",
    10025: "no changes in request",
    10026: "autotrading disabled by server",
    10027: "autotrading disabled by client terminal (enable AutoTrading)",
    10028: "request locked for processing",
    10029: "order or position frozen",
    10030: "invalid order filling type",
    10031: "no connection with the trade server",
    10032: "operation allowed only for live accounts",
    10033: "pending orders limit reached",
    10034: "orders and positions volume limit reached",
    10035: "invalid or prohibited order type",
    10036: "position already closed",
    10038: "close volume exceeds the position volume",
    10039: "a close order already exists for this position",
    10040: "positions limit reached",
    10041: "pending order activation rejected, order canceled",
    10042: "only long positions allowed",
    10043: "only short positions allowed",
    10044: "only position closing allowed",
    10045: "position closing allowed only by FIFO rule",
    10046: "opposite positions on one symbol are disabled",
}

# terminal errors (last_error) after which nobody knows whether the order reached the server
UNKNOWN_OUTCOME_ERRORS = frozenset({-10005, -10004, -10002, -10001, -10000})
AUTH_FAILED = -6
IPC_TIMEOUT = -10005


def verdict(retcode: int) -> Verdict:
    """The meaning of ``retcode`` for the order that got it."""
    if retcode in (DONE, DONE_PARTIAL):
        return Verdict.DONE
    if retcode == PLACED:
        return Verdict.PLACED
    if retcode in (REQUOTE, PRICE_CHANGED, PRICE_OFF):
        return Verdict.REPRICE
    if retcode == TOO_MANY_REQUESTS:
        return Verdict.BUSY
    return Verdict.REJECTED


def describe(retcode: int, comment: str = "") -> str:
    """A reason naming the code, its meaning and the server's own comment."""
    text = TEXT.get(retcode, "unknown return code")
    extra = f" ({comment})" if comment and comment.lower() != text.lower() else ""
    return f"MT5 retcode {retcode}: {text}{extra}"
