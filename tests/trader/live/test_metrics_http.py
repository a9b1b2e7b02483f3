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


def _scrape(port: int) -> str:
    return urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()


def test_orders_fills_rejections_latency_and_bar_age_are_exported() -> None:
    from types import SimpleNamespace

    from risk.events import OrderRiskEvent
    from trader.core.bus import EventBus
    from trader.core.events import Bar, Fill, OrderStatus, OrderUpdate, Side

    bus = EventBus()
    router = SimpleNamespace(order_listeners=[], fill_listeners=[])
    m = DaemonMetrics()
    m.attach(SimpleNamespace(router=router, kernel=SimpleNamespace(bus=bus)), live_bars=True)
    port = m.serve(0)
    try:
        for cid in ("o1", "o2"):
            order = SimpleNamespace(request=SimpleNamespace(client_order_id=cid))
            for listener in router.order_listeners:
                listener(order)
        bus.publish(OrderUpdate(1, "o1", OrderStatus.ACCEPTED))
        bus.publish(OrderUpdate(2, "o1", OrderStatus.FILLED))  # answered already: one sample
        for listener in router.fill_listeners:
            listener(Fill(3, "o2", "t1", "SPY", Side.BUY, 1.0, 10.0))
        bus.publish(OrderRiskEvent(4, "o3", "SPY", "BUY", 1.0, "reject", 0.0, "gross_leverage"))
        bus.publish(OrderRiskEvent(4, "o4", "SPY", "BUY", 1.0, "scale", 0.5, "gross_leverage"))
        bar = Bar(60 * 10**9, "SPY", 60, 0, 10.0, 10.0, 10.0, 10.0, 1.0)
        bus.publish(bar)
        m.update(nav=101_000.0, trading=True, kill_switch=False, events=5, orders=2,
                 queue_depth=0, queue_dropped=0, open_orders=0, stale_feeds=0,
                 pnl=1_000.0, drawdown=0.05)
        text = _scrape(port)
    finally:
        m.close()
    assert "trader_fills_total 1.0" in text
    assert 'trader_order_updates_total{status="ACCEPTED"} 1.0' in text
    assert 'trader_order_updates_total{status="FILLED"} 1.0' in text
    assert 'trader_risk_rejections_total{reason="gross_leverage"} 1.0' in text  # not the scale
    assert "trader_submit_ack_seconds_count 2.0" in text  # o1 by its update, o2 by its fill
    assert "trader_bar_delivery_seconds_count 1.0" in text
    assert 'trader_bar_age_seconds{instrument="SPY"}' in text
    assert "trader_pnl 1000.0" in text and "trader_drawdown 0.05" in text


def test_the_grafana_dashboard_charts_only_exported_series() -> None:
    import json
    import re
    from pathlib import Path

    dash = json.loads((Path(__file__).resolve().parents[3] / "docs" /
                       "grafana-dashboard.json").read_text())
    exprs = [t["expr"] for p in dash["panels"] for t in p["targets"]]
    used = {re.sub(r"_(bucket|count|sum)$", "", n) for e in exprs
            for n in re.findall(r"\btrader_[a-z_]+", e)}
    exported = set()
    for family in DaemonMetrics().registry.collect():
        exported.add(family.name)
        exported.add(family.name + "_total")  # counters are exposed with the suffix
    assert used and used <= exported, used - exported
    # every series the daemon exports is on the dashboard
    names = {f.name for f in DaemonMetrics().registry.collect()}
    assert {n for n in names if not any(n in u for u in used)} == set()
    assert len({p["id"] for p in dash["panels"]}) == len(dash["panels"])
