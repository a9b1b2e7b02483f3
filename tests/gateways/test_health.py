"""Stream health: one event per change of state, none for repeats."""

from gateways.health import StreamHealth
from trader.core.events import GatewayHealth, HealthState


def test_a_change_makes_one_event_and_a_repeat_none() -> None:
    health = StreamHealth("binance")
    first = health.change("bars", HealthState.DISCONNECTED, "socket closed", 5)
    assert first == GatewayHealth(5, "binance", HealthState.DISCONNECTED, "socket closed", "bars")
    assert health.change("bars", HealthState.DISCONNECTED, "still closed", 6) is None
    back = health.change("bars", HealthState.RESYNCED, "backfilled", 7)
    assert back is not None and back.state is HealthState.RESYNCED
    assert health == {"bars": HealthState.RESYNCED}


def test_streams_are_independent() -> None:
    health = StreamHealth("kraken")
    assert health.change("bars", HealthState.DEGRADED, "gap", 1) is not None
    assert health.change("orders", HealthState.DEGRADED, "gap", 1) is not None
    assert health.get("time") is None
