"""IB message codes: which ones end an order, which are about the link, which are noise.

TWS reports everything through ``error(reqId, code, text)``: order rejections,
cancels, connectivity, data-farm state and plain information.  ``classify`` turns
a code into one ``Kind``; the gateway decides what to emit from the kind, and
keeps IB's own text in every reason.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    REJECTED = "rejected"  # the order is refused or killed by IB
    CANCELLED = "cancelled"  # a cancel took effect
    UNKNOWN_ORDER = "unknown_order"  # a cancel/modify named an order IB does not have
    DUPLICATE_ID = "duplicate_id"  # an order id used before (103)
    LINK_LOST = "link_lost"  # TWS <-> IB servers (1100, 2110)
    LINK_RESTORED = "link_restored"  # 1102: subscriptions kept
    LINK_RESTORED_DATA_LOST = "link_restored_data_lost"  # 1101: resubscribe
    FARM_DOWN = "farm_down"  # a market or historical data farm is broken
    FARM_OK = "farm_ok"
    PACING = "pacing"  # historical-data pacing violation or HMDS refusal
    NOT_LISTED = "not_listed"  # no security definition
    CLIENT_ID_IN_USE = "client_id_in_use"
    WARNING = "warning"  # the order lives on (price tick 110 on a modify, outside RTH 2109)
    INFO = "info"


_KINDS: dict[int, Kind] = {
    201: Kind.REJECTED, 203: Kind.REJECTED, 110: Kind.REJECTED, 135: Kind.UNKNOWN_ORDER,
    161: Kind.UNKNOWN_ORDER, 10147: Kind.UNKNOWN_ORDER, 10148: Kind.UNKNOWN_ORDER,
    202: Kind.CANCELLED, 103: Kind.DUPLICATE_ID, 1100: Kind.LINK_LOST, 2110: Kind.LINK_LOST,
    1101: Kind.LINK_RESTORED_DATA_LOST, 1102: Kind.LINK_RESTORED, 2103: Kind.FARM_DOWN,
    2105: Kind.FARM_DOWN, 2157: Kind.FARM_DOWN, 2104: Kind.FARM_OK, 2106: Kind.FARM_OK,
    2107: Kind.FARM_OK, 2108: Kind.FARM_OK, 2158: Kind.FARM_OK, 162: Kind.PACING,
    366: Kind.PACING, 200: Kind.NOT_LISTED, 326: Kind.CLIENT_ID_IN_USE, 2109: Kind.WARNING,
    399: Kind.WARNING, 404: Kind.WARNING, 2100: Kind.INFO, 2119: Kind.INFO,
}

# what the codes mean, for reasons and logs (IB's text follows in the reason)
MEANING: dict[int, str] = {
    201: "order rejected", 202: "order cancelled", 110: "price does not conform to the tick",
    103: "duplicate order id", 10147: "order to cancel not found",
    10148: "order cannot be cancelled", 1100: "connectivity between TWS and IB lost",
    1101: "connectivity restored, data lost", 1102: "connectivity restored, data kept",
    2103: "market data farm broken", 2105: "historical data farm broken",
    2104: "market data farm OK", 2106: "historical data farm OK",
    2107: "historical data farm inactive", 2108: "market data farm inactive",
    2109: "order outside regular trading hours", 162: "historical data pacing violation",
    200: "no security definition", 326: "client id already in use",
    2110: "connectivity between TWS and server broken",
}


def classify(code: int) -> Kind:
    """The kind of an IB message code (``INFO`` for anything not listed)."""
    return _KINDS.get(code, Kind.INFO)


def reason(code: int, text: str) -> str:
    """A reason that keeps IB's code and text: ``IB 201 (order rejected): <text>``."""
    meaning = MEANING.get(code)
    return f"IB {code} ({meaning}): {text}" if meaning else f"IB {code}: {text}"
