"""The feed monitor: stale and recovered instruments, a failed and a finished source."""

from __future__ import annotations

from trader.core.events import Bar, GatewayHealth, HealthState
from trader.live.feeds import FeedMonitor

H = 3600


def bar(inst: str, ts: int) -> Bar:
    return Bar(ts, inst, H, ts - H * 10**9, 1.0, 1.0, 1.0, 1.0, 1.0)


def test_an_instrument_silent_for_its_limit_is_stale_once_and_recovers_with_a_bar() -> None:
    m = FeedMonitor({"A": H, "B": 86_400}, stale_after_intervals=3)
    assert m.on_bar(bar("A", 10**18), now=0.0) is False
    m.on_bar(bar("B", 10**18), now=0.0)
    # At 1,000x feed speed three hourly bars last 10.8 s of wall time; a daily bar 259 s.
    assert m.newly_stale(1000.0, now=10.0) == []
    stale = m.newly_stale(1000.0, now=11.0)
    assert [s.instrument_id for s in stale] == ["A"] and stale[0].limit_s == 10.8
    assert m.newly_stale(1000.0, now=12.0) == []  # reported once
    assert m.on_bar(bar("A", 10**18 + H * 10**9), now=12.0) is True
    assert m.stale == set()


def test_the_source_failing_or_ending_and_other_gateways() -> None:
    m = FeedMonitor({}, 3, source="replay", normal_end="feed ended")
    other = GatewayHealth(1, "binance", HealthState.DISCONNECTED, "stream dropped")
    assert m.on_health(other) is False and m.failed == ""
    assert m.health["binance"]["state"] == str(HealthState.DISCONNECTED)
    end = GatewayHealth(2, "replay", HealthState.DISCONNECTED, "feed ended")
    assert m.on_health(end) is False and m.failed == ""  # its data simply ended
    bad = GatewayHealth(3, "replay", HealthState.DISCONNECTED, "bad bar: high < low")
    assert m.on_health(bad) is True and m.failed == "replay: bad bar: high < low"
    back = GatewayHealth(4, "replay", HealthState.RESYNCED, "")
    assert m.on_health(back) is True and m.failed == ""


def test_only_the_sources_bar_streams_decide_a_failure() -> None:
    m = FeedMonitor({}, 3, source="binance")
    orders = GatewayHealth(1, "binance", HealthState.DISCONNECTED, "order stream dropped",
                           "orders")
    assert m.on_health(orders) is False and m.failed == ""
    bars = GatewayHealth(2, "binance", HealthState.DISCONNECTED, "stalled", "bars:BTC/USDT")
    assert m.on_health(bars) is True and m.failed == "binance: stalled"
    # A rate-limit pause ending on another stream does not clear the bar stream's failure.
    venue = GatewayHealth(3, "binance", HealthState.RESYNCED, "pause over", "venue")
    assert m.on_health(venue) is False and m.failed == "binance: stalled"
    assert set(m.health) == {"binance/orders", "binance/bars:BTC/USDT", "binance/venue"}
    back = GatewayHealth(4, "binance", HealthState.RESYNCED, "backfilled", "bars:BTC/USDT")
    assert m.on_health(back) is True and m.failed == ""


def test_a_closed_equity_market_is_quiet_not_stale() -> None:
    m = FeedMonitor({"SPY": 60, "BTC": 60}, stale_after_intervals=3,
                    markets={"SPY": "equity"})
    saturday = 1_704_499_200 * 10**9  # 2024-01-06 00:00 UTC: NYSE closed, crypto trades
    monday_open = 1_704_724_200 * 10**9  # 2024-01-08 14:30 UTC: the NYSE open
    m.on_bar(bar("SPY", saturday), now=0.0)
    m.on_bar(bar("BTC", saturday), now=0.0)
    stale = m.newly_stale(1.0, now=1000.0, wall_ns=saturday + 1000 * 10**9)
    assert [s.instrument_id for s in stale] == ["BTC"]  # silent crypto is stale, SPY is not
    # once the market opens, SPY's silence counts from then on
    assert m.newly_stale(1.0, now=2000.0, wall_ns=monday_open) == []
    assert m.newly_stale(1.0, now=2100.0, wall_ns=monday_open + 100 * 10**9) == []
    later = m.newly_stale(1.0, now=2200.0, wall_ns=monday_open + 200 * 10**9)
    assert [s.instrument_id for s in later] == ["SPY"]
    # without the wall clock (a replay), the calendar is not consulted
    m2 = FeedMonitor({"SPY": 60}, stale_after_intervals=3, markets={"SPY": "equity"})
    m2.on_bar(bar("SPY", saturday), now=0.0)
    assert [s.instrument_id for s in m2.newly_stale(1.0, now=1000.0)] == ["SPY"]
