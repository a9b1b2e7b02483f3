"""The Prometheus endpoint: gateway stream health and a failed market data source."""

from __future__ import annotations

import urllib.request

from trader.live.metrics_http import DaemonMetrics


def test_gateway_health_and_market_data_failure_are_exported() -> None:
    m = DaemonMetrics()
    port = m.serve(0)
    try:
        m.update(nav=1.0, trading=True, kill_switch=False, events=1, orders=0, queue_depth=0,
                 queue_dropped=0, open_orders=0, stale_feeds=0, market_data_failed=True,
                 health={"binance/venue": {"state": "degraded"},
                         "binance/bars:BTC/USDT": {"state": "disconnected"},
                         "binance/orders": {"state": "resynced"}})
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
        text = body.decode()
    finally:
        m.close()
    assert "trader_market_data_failed 1.0" in text
    assert 'trader_gateway_health{gateway="binance",stream="venue"} 1.0' in text
    assert 'trader_gateway_health{gateway="binance",stream="bars:BTC/USDT"} 2.0' in text
    assert 'trader_gateway_health{gateway="binance",stream="orders"} 0.0' in text
