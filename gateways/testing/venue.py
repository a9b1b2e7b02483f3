"""What the shared conformance suite needs from a venue: the ``VenueHarness`` protocol.

``tests/gateways/test_conformance.py`` runs every scenario against every entry
of ``VENUES`` (Binance and Kraken through ccxt, Alpaca, IB, MT5).  A harness
owns one running stand-in that speaks the venue's real wire protocol and
builds the real gateway configured against it; the suite drives the venue
only through the methods below, so it never knows which broker it tests.

Rows are venue-neutral bar tuples ``(ts_open_ns, open, high, low, close,
volume)``.  A harness translates them into its venue's shape (ccxt candle
lists, Alpaca bar JSON, IB historical bars, MT5 rates records) and back.

Scripted submit faults (``script_submit``) name what happened at the venue,
not how the venue says it:

``"timeout_placed"``      the order is placed but the answer arrives after the
                          gateway's request timeout
``"timeout_lost"``        the request hangs past the timeout and is never placed
``"error_placed"``        a 5xx (or the venue's equivalent) although the order was placed
``"error_lost"``          a 5xx and nothing placed
``"rate_limited"``        the venue throttles the request (429 or its equivalent),
                          then accepts the retry

A venue that cannot express one of these (an rpyc call has no 429) lists it
in ``unsupported_faults``; the suite then checks the venue's own nearest
habit in that venue's own tests instead.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, Protocol, runtime_checkable

Row = tuple[int, float, float, float, float, float]

SUBMIT_FAULTS = ("timeout_placed", "timeout_lost", "error_placed", "error_lost",
                 "rate_limited")


# venue name -> "module:HarnessClass"; a gateway joins the conformance suite by adding a line
VENUES: dict[str, str] = {
    "binance": "gateways.testing.harness:BinanceHarness",
    "kraken": "gateways.testing.harness:KrakenHarness",
    "ib": "gateways.testing.ib_harness:IbHarness",
    "mt5": "gateways.testing.mt5_harness:Mt5Harness",
    "alpaca": "gateways.testing.alpaca_harness:AlpacaHarness",
}


def harness_class(venue: str) -> type[VenueHarness]:
    """The harness class of ``venue`` (imported on first use: each needs its client library)."""
    module, _, name = VENUES[venue].partition(":")
    return getattr(importlib.import_module(module), name)


def row(ts_open_ns: int, base: float, volume: float = 1.0) -> Row:
    """A well-formed bar opening at ``ts_open_ns`` around price ``base``."""
    return (ts_open_ns, base, base + 2.0, base - 1.0, base + 1.0, volume)


@runtime_checkable
class VenueHarness(Protocol):
    """One venue's stand-in and a factory for its real gateway, as the suite sees them."""

    venue: str  # the gateway's name (the ``gateway`` field of its health events)
    instrument_id: str  # the instrument most scenarios trade
    second_instrument: str  # another instrument of the same venue
    unlisted_instrument: str  # configured with a venue symbol the venue does not list
    timeframe_s: int  # the bar length the gateway is configured with
    order_qty: float  # a quantity that is valid, affordable and above the minimum
    resting_limit: float  # a buy limit price far below the market: the order rests
    unaffordable_qty: float  # a buy quantity beyond the account's buying power
    insufficient_text: str  # what the venue says when funds are short (case-insensitive)
    fills_lookback_ns: int | None  # the venue's reconciliation horizon
    unsupported_faults: frozenset[str]  # submit faults this venue cannot express

    async def start(self) -> VenueHarness:
        """Start the stand-in; return self."""

    async def stop(self) -> None:
        """Close every gateway built by ``gateway`` and stop the stand-in."""

    def gateway(self, sink: Callable[[Any], None], *, trading: bool = True,
                instruments: tuple[str, ...] | None = None,
                bad_credentials: bool = False) -> Any:
        """The real gateway against the stand-in, bound to ``sink``, not yet connected.

        ``instruments`` defaults to ``(instrument_id,)``; ``trading=False`` builds
        a market-data-only gateway; ``bad_credentials`` uses credentials the
        venue refuses.  The gateway is closed by ``stop``.
        """

    async def connect(self, gw: Any, *, stream: bool = True) -> None:
        """Connect ``gw`` and wait until its streams (bars; orders when trading) are live."""

    def now_ns(self) -> int:
        """The venue's clock."""

    def bar_open(self, k: int = 0) -> int:
        """Open time of the ``k``-th bar after the current (forming) one; negative: closed."""

    def install_history(self, instrument_id: str, rows: list[Row]) -> None:
        """Make ``rows`` the venue's whole stored history of ``instrument_id``."""

    def set_now(self, ts_ns: int) -> None:
        """Move the venue's clock (forward) to ``ts_ns``."""

    async def publish_bar(self, instrument_id: str, bar: Row) -> None:
        """Make the venue publish ``bar`` as closed through its live path, after whatever
        forming updates that venue sends first (which must never reach the sink)."""

    async def drop_streams(self) -> None:
        """Cut every streaming connection (market data and orders) from the venue side."""

    async def venue_fill(self, client_order_id: str, qty: float | None = None,
                         price: float | None = None, *, notify: bool = True) -> str:
        """Execute a resting order at the venue; return the venue's execution id.
        ``notify=False``: the venue tells no stream (the fill happened during an outage)."""

    def script_submit(self, fault: str) -> None:
        """The next order submission meets ``fault`` (one of ``SUBMIT_FAULTS``)."""

    def submissions(self) -> int:
        """How many order submissions reached the venue (throttled ones included)."""

    def venue_orders(self) -> dict[str, str]:
        """Client order id -> the venue's own status word, for every order it holds."""

    def execution_ids(self) -> list[str]:
        """Every execution id the venue produced, in order."""
