"""Per-stream health of one gateway: a change becomes a ``GatewayHealth`` event."""

from __future__ import annotations

import structlog

from gateways.base import EventSink
from trader.core.events import GatewayHealth, HealthState

log = structlog.get_logger(__name__)

# the states after which a stream that works again is reported RESYNCED
UNHEALTHY = (HealthState.DISCONNECTED, HealthState.DEGRADED)


class StreamHealth(dict[str, HealthState]):
    """The last reported state of each of a gateway's streams (bars, orders, time...).

    A gateway reports every state it observes; only a change is logged and turned
    into an event, so a reconnect loop that sees DISCONNECTED a hundred times
    raises one alert, not a hundred.
    """

    def __init__(self, gateway: str) -> None:
        super().__init__()
        self.gateway = gateway

    def change(self, stream: str, state: HealthState, reason: str, ts: int
               ) -> GatewayHealth | None:
        """Record ``state`` for ``stream``; the event to publish, or None for a repeat."""
        if self.get(stream) is state:
            return None
        self[stream] = state
        log.info("gateway_health", gateway=self.gateway, stream=stream, state=str(state),
                 reason=reason)
        return GatewayHealth(ts, self.gateway, state, reason, stream)

    def report(self, sink: EventSink, stream: str, state: HealthState, reason: str,
               ts: int) -> None:
        """Record ``state`` for ``stream`` and send the event to ``sink`` if it is a change."""
        event = self.change(stream, state, reason, ts)
        if event is not None:
            sink(event)
