"""The live kernel and the arrival clocks that the gateway benches share.

Every gateway bench times the same thing: a gateway call (a submit, a bar
closing at the stand-in) until its event is on a live ``Kernel``'s bus.  This
module holds that one measurement so the four benches (``bench/ccxt_gateway.py``,
``alpaca_gateway.py``, ``ib_gateway.py``, ``mt5_gateway.py``) differ only in their
venue and their baselines.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import time
from collections.abc import AsyncIterator, Callable, Hashable
from typing import Any

from trader.core.clock import LiveClock
from trader.core.events import Bar, OrderRequest, OrderStatus, OrderType, OrderUpdate, Side
from trader.core.kernel import Kernel


@contextlib.asynccontextmanager
async def live_kernel() -> AsyncIterator[Kernel]:
    """A ``Kernel`` on a live clock, running on this loop until the block ends."""
    kernel = Kernel(LiveClock())
    kernel.bind_loop()
    stop = asyncio.Event()
    runner = asyncio.ensure_future(kernel.run_async(stop))
    try:
        yield kernel
    finally:
        stop.set()
        await runner


class Arrivals:
    """When each key's first matching event reached the bus (``time.perf_counter``).

    The time is taken in the bus subscriber, so how the bench waits for it does not
    enter the figure.
    """

    def __init__(self, kernel: Kernel, event_type: type, key: Callable[[Any], Hashable],
                 when: Callable[[Any], bool] = lambda _e: True) -> None:
        self.at: dict[Hashable, float] = {}
        self._key = key
        self._when = when
        self._waiters: dict[Hashable, asyncio.Event] = {}
        kernel.bus.subscribe(event_type, self._on_event)

    def _on_event(self, event: Any) -> None:
        if not self._when(event):
            return
        k = self._key(event)
        if k not in self.at:
            self.at[k] = time.perf_counter()
            self._waiter(k).set()

    def _waiter(self, k: Hashable) -> asyncio.Event:
        return self._waiters.setdefault(k, asyncio.Event())

    async def since(self, k: Hashable, t0: float) -> float:
        """Milliseconds from ``t0`` until ``k`` arrived (waits for it)."""
        await self._waiter(k).wait()
        return (self.at[k] - t0) * 1e3


def acks(kernel: Kernel) -> Arrivals:
    """Arrivals of each order's first ACCEPTED ``OrderUpdate``."""
    return Arrivals(kernel, OrderUpdate, lambda u: u.client_order_id,
                    lambda u: u.status is OrderStatus.ACCEPTED)


def limit_buy(instrument_id: str, quantity: float, price: float) -> Callable[[str], OrderRequest]:
    """Builds a resting limit buy for a client order id, stamped when it is built."""
    def order(coid: str) -> OrderRequest:
        return OrderRequest(time.time_ns(), coid, instrument_id, Side.BUY, quantity,
                            OrderType.LIMIT, price)
    return order


async def submit_to_ack(kernel: Kernel, gw: Any, m: int,
                        order: Callable[[str], OrderRequest]) -> list[float]:
    """Milliseconds from ``gw.submit`` until ACCEPTED is on the bus, for ``m`` orders
    ``B-0`` ... sent one at a time (each waits for the previous one's ack)."""
    seen = acks(kernel)
    out: list[float] = []
    for i in range(m):
        coid = f"B-{i}"
        t0 = time.perf_counter()
        gw.submit(order(coid))
        out.append(await seen.since(coid, t0))
    return out


class BarCount:
    """Counts the bars on the bus; ``done`` is set once ``n`` have arrived."""

    def __init__(self, kernel: Kernel, n: int) -> None:
        self.count = 0
        self.n = n
        self.done = asyncio.Event()
        kernel.bus.subscribe(Bar, self._on_bar)

    def _on_bar(self, _bar: Bar) -> None:
        self.count += 1
        if self.count >= self.n:
            self.done.set()


def pct(xs: list[float], q: float) -> float:
    """The ``q`` quantile of ``xs`` (nearest rank)."""
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))]


def line(label: str, xs: list[float], *, pad: int = 36, width: int = 6) -> str:
    """One latency row: p50, p99 and mean in milliseconds."""
    return (f"  {label:<{pad}}: p50 {pct(xs, .5):{width}.2f}  p99 {pct(xs, .99):{width}.2f}  "
            f"mean {statistics.fmean(xs):{width}.2f}")
