"""The protocols every gateway speaks, simulated or real (ccxt, Alpaca, IB, MT5).

Two roles, one object may play both:

* ``Gateway`` (execution): orders out, order events back.  The kernel is
  synchronous, so ``submit`` and ``cancel`` never block: a real gateway
  schedules the network call as a task and reports the outcome later as
  ``OrderUpdate`` / ``Fill`` events through the sink it was bound to.  Queries
  used by reconciliation are coroutines.
* ``MarketData``: closed bars, from history (``history``/``warm_up_bars``) and
  then from a live stream (``start_streams``) into the same sink.

What a gateway hands to its sink, and the rules for each:

``Bar``
    closed bars only, each interval once, ``ts`` = close time; every bar has
    passed ``trader.core.validation.validate_bar`` (wrap the sink in
    ``gateways.validation.BarGuard``): a bad bar is dropped, logged with venue
    and values, counted, and reported as ``GatewayHealth(degraded)``.
``BarCorrection``
    a venue revised a bar already published: never a second ``Bar``.
``OrderUpdate``
    every submit and cancel ends in an outcome.  When the venue's answer is
    lost, the order goes to ``OUTCOME_UNKNOWN`` and the gateway keeps asking
    the venue by client order id (``gateways.inflight.InFlightResolver``)
    until it answers; the order is never re-sent.
``Fill``
    once per venue execution id (``trade_id``).
``FillCorrection``
    a late commission or a corrected price/quantity of a reported execution
    (the values it carries are absolute; ``None`` fields are unchanged).  The
    kernel stores it and books it (``Portfolio.on_fill_correction``).
``GatewayHealth``
    connected / degraded / disconnected / resynced, with a reason.

Every gateway declares ``capabilities`` (``GatewayCapabilities``): what it can
do, and how far back ``fills_since`` reaches (``check_horizon``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderType
from trader.core.instruments import Instrument

EventSink = Callable[[Any], None]

NS = 1_000_000_000
DAY_NS = 86_400 * NS


class GatewayConfigError(ValueError):
    """A gateway's config section cannot be used; the message names the key.

    The daemon turns it into its own configuration error (exit code 2).
    """


class GatewayStartError(RuntimeError):
    """The gateway cannot start: refused credentials, an unlisted instrument, venue down.

    Every gateway raises this from ``connect``; the daemon reports it and exits.
    """


# -- reports (reconciliation) -----------------------------------------------------------
@dataclass(frozen=True, slots=True)
class OrderReport:
    """What a broker says about one order (for reconciliation)."""

    client_order_id: str
    instrument_id: str
    status: OrderStatus
    side: str
    quantity: float
    filled_quantity: float = 0.0
    broker_order_id: str = ""
    limit_price: float | None = None


@dataclass(frozen=True, slots=True)
class PositionReport:
    """One position as the broker keeps it.

    Netting brokers hold one per instrument; hedging brokers (MT5 hedging
    accounts, some FX brokers) may hold several per instrument, long and short
    at once, each with its own ``position_id``.  ``quantity`` is signed.
    """

    instrument_id: str
    quantity: float
    avg_price: float | None = None
    position_id: str = ""


@dataclass(frozen=True, slots=True)
class AccountReport:
    """Cash and positions as the broker reports them.

    ``positions`` is the net signed quantity per instrument (what the kernel
    reconciles against): for a spot wallet, only the daemon's share of it (the
    balance minus the start-up baseline and configured ``external`` holdings);
    ``avg_prices`` the broker's average entry price per instrument where it
    reports one; ``position_details`` every broker-side
    position (several per instrument on a hedging account).  Money figures
    are in the account currency; None = the broker does not report it.
    """

    cash: dict[str, float] = field(default_factory=dict)
    positions: dict[str, float] = field(default_factory=dict)
    avg_prices: dict[str, float] = field(default_factory=dict)
    position_details: tuple[PositionReport, ...] = ()
    buying_power: float | None = None
    margin_used: float | None = None
    margin_available: float | None = None
    equity: float | None = None

    @property
    def hedged(self) -> bool:
        """True if some instrument has more than one broker-side position."""
        seen: set[str] = set()
        for p in self.position_details:
            if p.instrument_id in seen:
                return True
            seen.add(p.instrument_id)
        return False


# -- capabilities ----------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GatewayCapabilities:
    """What a gateway can do; the planner and the daemon check against it, not by trying.

    ``fills_lookback_ns`` is the reconciliation horizon: how far back
    ``fills_since`` can reach at the venue (None = unbounded).  A daemon that was
    down longer than that cannot prove it lost no fill (see ``check_horizon``).
    """

    order_types: frozenset[OrderType] = frozenset({OrderType.MARKET, OrderType.LIMIT})
    time_in_force: frozenset[str] = frozenset({"GTC"})
    modify: bool = False  # amend/replace a working order in place
    stop_limit: bool = False
    bracket: bool = False
    oco: bool = False
    hedged_positions: bool = False
    client_order_ids: bool = True  # orders can be found again by our id
    market_data: bool = False
    trading: bool = True
    fills_lookback_ns: int | None = None

    def supports(self, order: OrderRequest) -> str | None:
        """Why ``order`` cannot go through this gateway, or None."""
        if not self.trading:
            return "gateway does not trade"
        if order.order_type not in self.order_types:
            return (f"order type {order.order_type} not supported "
                    f"(supported: {sorted(str(t) for t in self.order_types)})")
        return None


def check_horizon(caps: GatewayCapabilities, last_seen_ns: int | None,
                  now_ns: int) -> str | None:
    """A warning if the venue can no longer list every fill since ``last_seen_ns``.

    ``last_seen_ns`` is when the daemon last knew the account (its last stored
    fill or session end); None means never (a fresh data directory: nothing to
    recover).  Returns None when ``fills_since(last_seen_ns)`` is complete.
    """
    horizon = caps.fills_lookback_ns
    if horizon is None or last_seen_ns is None:
        return None
    gap = now_ns - last_seen_ns
    if gap <= horizon:
        return None
    return (f"last known state is {gap / DAY_NS:.1f} days old but the venue lists fills for "
            f"only {horizon / DAY_NS:.1f} days: fills in between cannot be reconciled from "
            "the venue; check the account statement before trading")


# -- history ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class History:
    """Closed bars of one instrument over ``[start_ns, end_ns)`` (bar open times).

    ``expected`` is how many intervals of the bar length the range holds (those
    already closed); ``complete`` is true only if every one of them came back.
    A venue that keeps a limited history, or skips intervals without trades,
    returns fewer: ``missing`` says how many, and callers decide.
    """

    instrument_id: str
    bars: list[Bar]
    start_ns: int
    end_ns: int
    expected: int

    @property
    def missing(self) -> int:
        """How many intervals of the range have no bar."""
        return max(self.expected - len(self.bars), 0)

    @property
    def complete(self) -> bool:
        """True if the venue returned a bar for every closed interval asked for."""
        return self.missing == 0


def expected_bars(start_ns: int, end_ns: int, timeframe_s: int) -> int:
    """Intervals of ``timeframe_s`` opening in ``[start_ns, end_ns)`` on the bar grid."""
    tf = timeframe_s * NS
    first = -(-start_ns // tf) * tf  # first grid point at or after start
    return 0 if end_ns <= first else (end_ns - first + tf - 1) // tf


# -- protocols -----------------------------------------------------------------------------
@runtime_checkable
class Gateway(Protocol):
    """Execution gateway: orders out, order events back through the bound sink."""

    name: str
    capabilities: GatewayCapabilities

    def bind(self, sink: EventSink) -> None:
        """Set where events go (the bus in replay, ``Kernel.post`` live)."""

    def submit(self, order: OrderRequest) -> None:
        """Send an order; never blocks, never raises for broker-side failures."""

    def cancel(self, client_order_id: str) -> None:
        """Ask for a cancel; the outcome arrives as an ``OrderUpdate``."""

    async def connect(self) -> None:
        """Open connections and check credentials; raise if the gateway cannot work."""

    async def close(self) -> None:
        """Let orders already handed over reach the venue, then stop every task."""

    async def open_orders(self) -> list[OrderReport]:
        """Orders working at the venue now (with our client order ids)."""

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        """The venue's view of one order by our id; None if the venue has none."""

    async def fills_since(self, ts: int) -> list[Fill]:
        """Every execution since ``ts`` (ns), back to ``capabilities.fills_lookback_ns``."""

    async def account(self) -> AccountReport:
        """Cash, positions and margin as the broker reports them."""


@runtime_checkable
class MarketData(Protocol):
    """A source of closed bars: history first, then a live stream into the sink."""

    name: str

    def bind(self, sink: EventSink) -> None:
        """Set where bars (and ``BarCorrection``/``GatewayHealth``) go."""

    async def history(self, instrument_id: str, start_ns: int,
                      end_ns: int | None = None) -> History:
        """Closed bars opening in ``[start_ns, end_ns)`` (end None = now), paginated."""

    async def warm_up_bars(self, count: int) -> list[Bar]:
        """The last ``count`` closed bars of every instrument, merged by (ts, id).

        The live stream (``start_streams``) continues after the last of them, so
        no bar is both history and live.
        """

    def start_streams(self) -> None:
        """Start streaming closed bars into the sink (after ``connect(stream=False)``)."""


# -- building ------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class GatewayContext:
    """What a gateway factory may know of the application, independent of its config class."""

    instruments: Mapping[str, Instrument] = field(default_factory=dict)
    account_currency: str = "USD"
    initial_cash: float = 0.0
    trading: bool = True  # False: market data only (no credentials, no order stream)
    base_timeframes: Mapping[str, int] = field(default_factory=dict)

    def section(self, name: str, section: Mapping[str, Any]) -> dict[str, Any]:
        """Gateway ``name``'s config section as its parser takes it: named, and
        ``trading: false`` when this run does not trade (whatever the YAML says)."""
        data = {"name": name, **section}
        if not self.trading:
            data["trading"] = False
        return data


GatewayFactory = Callable[[str, Mapping[str, Any], GatewayContext], Any]


class NoBrokerRecord:
    """Reconciliation answers of a gateway that holds no orders, fills or money.

    For market-data-only gateways and for stand-ins of a broker during journal
    replay: there is nothing to reconcile against.
    """

    capabilities: GatewayCapabilities = GatewayCapabilities(
        order_types=frozenset(), trading=False, market_data=True)

    async def open_orders(self) -> list[OrderReport]:
        """No orders."""
        return []

    async def order_status(self, client_order_id: str) -> OrderReport | None:  # noqa: ARG002
        """No order is known."""
        return None

    async def fills_since(self, ts: int) -> list[Fill]:  # noqa: ARG002
        """No fills."""
        return []

    async def account(self) -> AccountReport:
        """No money, no positions."""
        return AccountReport()
