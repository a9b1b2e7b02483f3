"""Synchronous publish/subscribe bus: the spine of the kernel."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

Handler = Callable[[Any], None]


class EventBus:
    """Fans an event out to the subscribers of its exact type, in subscription order.

    Handlers run synchronously and must not await: this keeps replay
    deterministic and makes live behaviour identical to replay.  A handler may
    publish further events; they are delivered depth-first before ``publish``
    returns.
    """

    __slots__ = ("_handlers",)

    def __init__(self) -> None:
        self._handlers: dict[type, list[Handler]] = {}

    def subscribe(self, event_type: type, handler: Handler) -> None:
        self._handlers.setdefault(event_type, []).append(handler)

    def unsubscribe(self, event_type: type, handler: Handler) -> None:
        handlers = self._handlers.get(event_type, [])
        if handler in handlers:
            handlers.remove(handler)

    def handlers(self, event_type: type) -> list[Handler]:
        """The live handler list for a type (the kernel caches it on its hot path)."""
        return self._handlers.setdefault(event_type, [])

    def publish(self, event: Any) -> None:
        for handler in self._handlers.get(type(event), ()):
            handler(event)
