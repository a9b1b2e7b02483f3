"""Optional Prometheus ``/metrics`` endpoint, bound to 127.0.0.1 only.

Gauges are set from the daemon's heartbeat (:meth:`DaemonMetrics.update`);
counters and latency histograms follow the kernel's events through
:meth:`DaemonMetrics.attach` (a prometheus_client increment is a lock and an
add: cheap enough for the kernel's loop). ``docs/grafana-dashboard.json`` charts
every series.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from risk.events import OrderRiskEvent
from trader.core.events import Bar, OrderStatus, OrderUpdate

_HEALTH_LEVEL = {"connected": 0, "resynced": 0, "degraded": 1, "disconnected": 2}
# The venue's first answer to a submit: the order reached it (or was refused).
_ACK = {OrderStatus.ACCEPTED, OrderStatus.REJECTED, OrderStatus.PARTIALLY_FILLED,
        OrderStatus.FILLED}
_MAX_PENDING = 10_000  # submit times kept while waiting for an answer


class DaemonMetrics:
    """The daemon's gauges and counters on a private registry."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.nav = Gauge("trader_nav", "Net asset value", registry=r)
        self.trading = Gauge("trader_trading", "1 while models may trade", registry=r)
        self.kill_switch = Gauge("trader_kill_switch", "1 while the kill switch is engaged",
                                 registry=r)
        self.events = Counter("trader_events_total", "Events dispatched by the kernel", registry=r)
        self.orders = Counter("trader_orders_total", "Orders handed to gateways", registry=r)
        self.queue_depth = Gauge("trader_queue_depth", "Events waiting in the kernel inbox",
                                 registry=r)
        self.queue_dropped = Gauge("trader_queue_dropped", "Bars dropped by the full inbox",
                                   registry=r)
        self.open_orders = Gauge("trader_open_orders", "Orders still working", registry=r)
        self.stale_feeds = Gauge("trader_stale_feeds", "Feeds without a recent bar", registry=r)
        self.market_data_failed = Gauge(
            "trader_market_data_failed", "1 while the market data source delivers no bars",
            registry=r)
        self.gateway_health = Gauge(
            "trader_gateway_health",
            "Each gateway stream's health: 0 connected/resynced, 1 degraded (e.g. a rate-limit "
            "pause or ban), 2 disconnected", ["gateway", "stream"], registry=r)
        self.pnl = Gauge("trader_pnl", "NAV minus the starting cash", registry=r)
        self.drawdown = Gauge("trader_drawdown", "Fall of NAV from its high-water mark (0..1)",
                              registry=r)
        self.fills = Counter("trader_fills_total", "Fills received", registry=r)
        self.order_status = Counter("trader_order_updates_total",
                                    "Order status changes reported by gateways", ["status"],
                                    registry=r)
        self.risk_rejections = Counter("trader_risk_rejections_total",
                                       "Orders rejected by the risk engine", ["reason"],
                                       registry=r)
        self.bar_age = Gauge("trader_bar_age_seconds",
                             "Seconds since each instrument's last bar arrived", ["instrument"],
                             registry=r)
        self.submit_ack = Histogram(
            "trader_submit_ack_seconds", "Order handed to a gateway -> the venue's first answer",
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r)
        self.bar_delivery = Histogram(
            "trader_bar_delivery_seconds", "A bar's close -> its dispatch in the kernel "
            "(live market data only)", buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120),
            registry=r)
        self._events_seen = 0
        self._orders_seen = 0
        self._server: Any = None
        self._submitted: dict[str, float] = {}
        self._bar_seen: dict[str, float] = {}
        self._live_bars = False

    def attach(self, engine: Any, *, live_bars: bool = False) -> None:
        """Follow the kernel's orders, fills, risk rejections and bars.

        ``live_bars``: bars come from a live gateway, so their close time is comparable
        with the wall clock (a replay feed's bars carry historical times).
        """
        self._live_bars = live_bars
        engine.router.order_listeners.append(self.on_order)
        engine.router.fill_listeners.append(self.on_fill)
        bus = engine.kernel.bus
        bus.subscribe(OrderUpdate, self.on_update)
        bus.subscribe(OrderRiskEvent, self.on_risk)
        bus.subscribe(Bar, self.on_bar)

    def on_order(self, order: Any) -> None:
        if len(self._submitted) < _MAX_PENDING:
            self._submitted[order.request.client_order_id] = time.monotonic()

    def on_update(self, update: OrderUpdate) -> None:
        self.order_status.labels(str(update.status)).inc()
        if update.status in _ACK:
            self._acked(update.client_order_id)

    def on_fill(self, fill: Any) -> None:
        self.fills.inc()
        self._acked(fill.client_order_id)  # a venue may answer a market order with its fill

    def _acked(self, client_order_id: str) -> None:
        sent = self._submitted.pop(client_order_id, None)
        if sent is not None:
            self.submit_ack.observe(time.monotonic() - sent)

    def on_risk(self, event: OrderRiskEvent) -> None:
        if event.action == "reject":
            self.risk_rejections.labels(event.reason).inc()

    def on_bar(self, bar: Bar) -> None:
        self._bar_seen[bar.instrument_id] = time.monotonic()
        if self._live_bars:
            self.bar_delivery.observe(max(time.time_ns() - bar.ts, 0) / 1e9)

    def serve(self, port: int) -> int:
        """Start the HTTP endpoint on 127.0.0.1 (port 0 picks a free one); return the port."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        return server.server_address[1]

    def update(self, *, nav: float, trading: bool, kill_switch: bool, events: int, orders: int,
               queue_depth: int, queue_dropped: int, open_orders: int, stale_feeds: int,
               market_data_failed: bool = False,
               health: Mapping[str, Mapping[str, Any]] | None = None,
               pnl: float | None = None, drawdown: float | None = None) -> None:
        """The heartbeat's gauges (counters of events arrive through :meth:`attach`)."""
        self.nav.set(nav)
        if pnl is not None:
            self.pnl.set(pnl)
        if drawdown is not None:
            self.drawdown.set(drawdown)
        now = time.monotonic()
        for inst, seen in self._bar_seen.items():
            self.bar_age.labels(inst).set(now - seen)
        self.trading.set(1 if trading else 0)
        self.kill_switch.set(1 if kill_switch else 0)
        self.events.inc(max(events - self._events_seen, 0))
        self._events_seen = events
        self.orders.inc(max(orders - self._orders_seen, 0))
        self._orders_seen = orders
        self.queue_depth.set(queue_depth)
        self.queue_dropped.set(queue_dropped)
        self.open_orders.set(open_orders)
        self.stale_feeds.set(stale_feeds)
        self.market_data_failed.set(1 if market_data_failed else 0)
        for key, h in (health or {}).items():
            gateway, _, stream = key.partition("/")
            self.gateway_health.labels(gateway, stream).set(_HEALTH_LEVEL.get(h["state"], 2))

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server = None
