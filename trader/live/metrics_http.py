"""Optional Prometheus ``/metrics`` endpoint, bound to 127.0.0.1 only."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, start_http_server

_HEALTH_LEVEL = {"connected": 0, "resynced": 0, "degraded": 1, "disconnected": 2}


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
        self._events_seen = 0
        self._orders_seen = 0
        self._server: Any = None

    def serve(self, port: int) -> int:
        """Start the HTTP endpoint on 127.0.0.1 (port 0 picks a free one); return the port."""
        server, _thread = start_http_server(port, addr="127.0.0.1", registry=self.registry)
        self._server = server
        return server.server_address[1]

    def update(self, *, nav: float, trading: bool, kill_switch: bool, events: int, orders: int,
               queue_depth: int, queue_dropped: int, open_orders: int, stale_feeds: int,
               market_data_failed: bool = False,
               health: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.nav.set(nav)
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
