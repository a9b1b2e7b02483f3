"""A broker stand-in for the crash tests: the SimulatedGateway in its own process, over HTTP.

It keeps the broker's record (orders, fills, cash, positions, every submit it
received), which survives the daemon being killed.  Loopback only; the port is
printed on the first line of stdout.  Run: ``python crash_broker.py``.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import msgspec
from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))

from gateways.sim import SimulatedGateway
from trader.core.events import Bar, OrderRequest
from trader.core.instruments import Instrument

MIN = 60 * 1_000_000_000
INSTRUMENTS = {"AAA": Instrument(id="AAA", symbol="AAA", venue="X", asset_class="equity")}
CASH = 100_000.0


def build_app() -> web.Application:
    gw = SimulatedGateway(INSTRUMENTS, initial_cash=CASH, history_limit=None)
    events: list[object] = []
    gw.bind(events.append)
    state = {"bar": 0}

    def reply(obj: object) -> web.Response:
        return web.Response(body=msgspec.json.encode(obj), content_type="application/json")

    async def now(_r: web.Request) -> web.Response:
        return reply({"now": state["bar"] * MIN, "events": len(events)})

    async def submit(r: web.Request) -> web.Response:
        gw.submit(msgspec.json.decode(await r.read(), type=OrderRequest))
        return reply({"ok": True})

    async def cancel(r: web.Request) -> web.Response:
        gw.cancel(r.match_info["coid"])
        return reply({"ok": True})

    async def tick(_r: web.Request) -> web.Response:
        i = state["bar"]
        px = 100.0 + (i % 7)
        gw.on_bar(Bar((i + 1) * MIN, "AAA", 60, i * MIN, px, px + 1, px - 1, px, 1000.0))
        state["bar"] = i + 1
        return reply({"now": state["bar"] * MIN})

    async def get_events(r: web.Request) -> web.Response:
        return reply(events[int(r.query.get("after", "0")):])

    async def open_orders(_r: web.Request) -> web.Response:
        return reply(await gw.open_orders())

    async def order_status(r: web.Request) -> web.Response:
        return reply(await gw.order_status(r.match_info["coid"]))

    async def fills(r: web.Request) -> web.Response:
        return reply(await gw.fills_since(int(r.query.get("since", "0"))))

    async def account(_r: web.Request) -> web.Response:
        return reply(await gw.account())

    async def submitted(_r: web.Request) -> web.Response:
        return reply(list(gw.submitted))

    app = web.Application()
    app.add_routes([
        web.get("/now", now), web.post("/orders", submit), web.delete("/orders/{coid}", cancel),
        web.post("/tick", tick), web.get("/events", get_events),
        web.get("/open_orders", open_orders), web.get("/orders/{coid}", order_status),
        web.get("/fills", fills), web.get("/account", account), web.get("/submitted", submitted),
    ])
    return app


async def main() -> None:
    runner = web.AppRunner(build_app())
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    print(port, flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
