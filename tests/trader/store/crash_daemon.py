"""The daemon side of the crash tests: router + store + reconciliation against the HTTP broker.

Each life: open the store, reconcile, then place orders until ``--orders`` are
stored.  With ``--crash POINT:K`` the K-th time POINT is reached it prints
``AT POINT`` and waits to be killed (SIGKILL, by the test).  Points:

* ``write_ahead``: the order is stored, the broker has not been called;
* ``submitted``: the broker accepted it, its ACCEPTED event is not applied yet;
* ``fill``: a fill came back, nothing of it is stored yet;
* ``fill_stored``: the fill is stored, the order status and portfolio are not updated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from gateways.base import AccountReport, OrderReport
from trader.core.clock import ReplayClock
from trader.core.events import Fill, OrderRequest, OrderUpdate, Side
from trader.core.instruments import Instrument
from trader.engine.portfolio import Portfolio
from trader.engine.router import Router
from trader.live.reconcile import ReconcilePolicy, reconcile
from trader.store import Store

INSTRUMENTS = {"AAA": Instrument(id="AAA", symbol="AAA", venue="X", asset_class="equity")}
CASH = 100_000.0


class Crash:
    def __init__(self, spec: str | None) -> None:
        self.point, _, k = (spec or "").partition(":")
        self.left = int(k or 0)

    def at(self, point: str) -> None:
        if point != self.point:
            return
        if self.left == 0:
            print(f"AT {point}", flush=True)
            while True:  # the test sends SIGKILL now
                time.sleep(60)
        self.left -= 1


class HttpBroker:
    """A ``Gateway`` talking to crash_broker.py over loopback HTTP."""

    name = "sim"

    def __init__(self, base: str, crash: Crash) -> None:
        self.base = base
        self.crash = crash

    def _call(self, method: str, path: str, body: bytes | None = None) -> bytes:
        req = urllib.request.Request(self.base + path, data=body, method=method)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.read()

    def bind(self, sink: Any) -> None:
        self.sink = sink

    def submit(self, order: OrderRequest) -> None:
        self.crash.at("write_ahead")
        self._call("POST", "/orders", msgspec.json.encode(order))
        self.crash.at("submitted")

    def cancel(self, client_order_id: str) -> None:
        self._call("DELETE", f"/orders/{client_order_id}")

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def open_orders(self) -> list[OrderReport]:
        return msgspec.json.decode(self._call("GET", "/open_orders"), type=list[OrderReport])

    async def order_status(self, client_order_id: str) -> OrderReport | None:
        raw = self._call("GET", f"/orders/{client_order_id}")
        return msgspec.json.decode(raw, type=OrderReport | None)

    async def fills_since(self, ts: int) -> list[Fill]:
        return msgspec.json.decode(self._call("GET", f"/fills?since={ts}"), type=list[Fill])

    async def account(self) -> AccountReport:
        return msgspec.json.decode(self._call("GET", "/account"), type=AccountReport)

    def now(self) -> dict[str, int]:
        return json.loads(self._call("GET", "/now"))

    def tick(self) -> None:
        self._call("POST", "/tick")

    def events(self, after: int) -> list[Fill | OrderUpdate]:
        raw = self._call("GET", f"/events?after={after}")
        return msgspec.json.decode(raw, type=list[Fill | OrderUpdate])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--db", required=True)
    ap.add_argument("--broker", required=True)
    ap.add_argument("--orders", type=int, required=True)
    ap.add_argument("--crash", default=None)
    args = ap.parse_args()
    crash = Crash(args.crash)
    broker = HttpBroker(args.broker, crash)

    store = Store.open(args.db)
    state = broker.now()
    clock = ReplayClock(state["now"])
    session = store.begin_session("paper", "crash-test", clock.now())
    journal = store.journal(session, clock=clock)
    received = journal.fill_received

    def fill_received(order: Any, fill: Fill) -> bool:
        fresh = received(order, fill)
        crash.at("fill_stored")
        return fresh

    journal.fill_received = fill_received  # type: ignore[method-assign]
    router = Router({"sim": broker}, clock, id_prefix=session.prefix, journal=journal)
    portfolio = Portfolio(INSTRUMENTS, CASH)
    router.fill_listeners.append(portfolio.on_fill)
    for fill in store.fills(gateway="sim"):
        portfolio.on_fill(fill)
    report = asyncio.run(reconcile(store, broker, router, portfolio, ReconcilePolicy("refuse")))
    print("RECONCILED " + json.dumps(report.summary()), flush=True)

    cursor = broker.now()["events"]

    def drain() -> None:
        nonlocal cursor
        for ev in broker.events(cursor):
            cursor += 1
            if isinstance(ev, Fill):
                crash.at("fill")
                router.on_fill(ev)
            else:
                router.on_update(ev)

    while store.count_orders() < args.orders:
        k = store.count_orders()
        clock.advance(broker.now()["now"])
        side = Side.SELL if k % 4 == 3 else Side.BUY
        req = OrderRequest(clock.now(), router.next_client_order_id(), "AAA", side,
                           float(1 + k % 3))
        router.submit(req)
        drain()
        broker.tick()
        drain()
    positions = {i: p.quantity for i, p in portfolio.account.positions.items() if p.quantity}
    print("DONE " + json.dumps({"positions": positions, "cash": portfolio.account.cash}),
          flush=True)
    store.close()


if __name__ == "__main__":
    main()
