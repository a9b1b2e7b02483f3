"""The MT5 venue for the conformance suite: the stand-in terminal plus the real gateway.

``Mt5Harness`` implements ``gateways.testing.venue.VenueHarness``: a child
process serves ``gateways.testing.mt5_terminal`` as ``MetaTrader5`` over rpyc
(``gateways.testing.mt5_server``), the gateway reaches it through the real
mt5linux 1.0.11 client, and the suite's venue-neutral scripts become terminal
controls.  The trade server runs two hours ahead of UTC, so every bar and deal
time crosses the zone conversion.  "Streams" are the gateway's polling over
its rpyc connection: dropping them cuts that connection at the server.
"""

from __future__ import annotations

import asyncio
import secrets
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gateways.mt5 import Mt5Gateway, Mt5GatewayConfig, Mt5Timing
from gateways.mt5.config import Account
from gateways.mt5.convert import comment_for
from gateways.testing.harness import wait_until
from gateways.testing.mt5_server import Mt5Server
from gateways.testing.mt5_terminal import fresh_login
from gateways.testing.venue import Row

NS = 1_000_000_000
SERVER_OFFSET_S = 2 * 3600
SERVER_TZ = "Etc/GMT-2"  # POSIX sign: two hours *ahead* of UTC

FAST_TIMING = Mt5Timing(request_timeout_s=0.4, poll_interval_s=0.05, reconnect_initial_s=0.05,
                        reconnect_max_s=0.2, retry_delay_s=0.02, unknown_settle_s=0.3,
                        history_page_bars=7, stale_after_s=60.0)
_STATE_NAMES = {0: "started", 1: "placed", 2: "canceled", 3: "partial", 4: "filled",
                5: "rejected", 6: "expired"}
_FAULTS: dict[str, tuple[str, dict[str, Any]]] = {
    "timeout_placed": ("stall", {"delay": 1.0, "placed": True}),
    "timeout_lost": ("stall", {"delay": 0.8, "placed": False}),
    "error_placed": ("ipc_timeout", {"placed": True}),
    "error_lost": ("ipc_timeout", {"placed": False}),
    "rate_limited": ("retcode", {"retcode": 10024}),
}


class Mt5Harness:
    """One stand-in terminal (EURUSD and the US30 index CFD) and gateways against it."""

    venue = "mt5"
    instrument_id = "EURUSD.MT5"
    second_instrument = "US30.MT5"
    unlisted_instrument = "EURNOK.MT5"
    symbols = {"EURUSD.MT5": "EURUSD", "US30.MT5": "US30", "EURNOK.MT5": "EURNOK"}
    timeframe_s = 60
    order_qty = 0.1  # lots
    resting_limit = 1.0
    unaffordable_qty = 100.0  # 10M EUR of notional against 100k USD at 1:100
    insufficient_text = "no money"
    fills_lookback_ns: int | None = None
    unsupported_faults: frozenset[str] = frozenset()
    magic = 246_810

    def __init__(self, *, hedging: bool = False, comment_mode: str = "",
                 shared: bool = True) -> None:
        self.shared = shared  # reuse the process's stand-in server (its terminal is reset)
        self.hedging = hedging
        self.comment_mode = comment_mode
        self.server: Mt5Server | None = None
        self.gateways: list[Mt5Gateway] = []
        self._tmp = tempfile.TemporaryDirectory(prefix="mt5-harness-")
        self.state_file = Path(self._tmp.name) / "mt5-book.sqlite"
        self._rows: dict[str, dict[int, tuple[Any, ...]]] = {}
        self.password = secrets.token_urlsafe(12)  # the terminal's, fresh per harness
        self.login = fresh_login()

    # -- lifecycle -----------------------------------------------------------------------------
    async def start(self) -> Mt5Harness:
        self.server = await asyncio.to_thread(Mt5Server.shared if self.shared else Mt5Server)
        self.control("_reset", hedging=self.hedging, comment_mode=self.comment_mode,
                     server_offset_s=SERVER_OFFSET_S, login=self.login,
                     password=self.password)
        self.control("_add_symbol", "EURUSD", 1.1, 0.0002)
        self.control("_add_symbol", "US30", 37_000.0, 2.0, contract_size=1.0, digits=1,
                     volume_min=0.1, volume_step=0.1)
        return self

    async def stop(self) -> None:
        for gw in self.gateways:
            await gw.close()
        if self.server is not None:
            self.control("_drop_clients")  # nothing of this test stays connected
            if not self.shared:
                await asyncio.to_thread(self.server.close)
        self._tmp.cleanup()

    def control(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        assert self.server is not None
        return self.server.control(fn, *args, **kwargs)

    def config(self, **overrides: Any) -> Mt5GatewayConfig:
        assert self.server is not None
        data: dict[str, Any] = {
            "name": self.venue, "backend": "mt5linux", "host": self.server.host,
            "port": self.server.port, "symbols": {"EURUSD": self.instrument_id},
            "timeframe": "1m", "server_timezone": SERVER_TZ, "magic": self.magic,
            "account_mode": "hedging" if self.hedging else "netting",
            "state_file": self.state_file, "timing": FAST_TIMING, "bar_band": 5.0,
        }
        data.update(overrides)
        return Mt5GatewayConfig(**data)

    def account(self, bad: bool = False) -> Account:
        return Account(self.login, "not-" + self.password if bad else self.password,
                       "StandIn-Demo")

    def gateway(self, sink: Callable[[Any], None], *, trading: bool = True,
                instruments: tuple[str, ...] | None = None, bad_credentials: bool = False,
                **overrides: Any) -> Mt5Gateway:
        insts = instruments or (self.instrument_id,)
        overrides.setdefault("symbols", {self.symbols[i]: i for i in insts})
        cfg = self.config(trading=trading, **overrides)
        gw = Mt5Gateway(cfg, account=self.account(bad_credentials))
        gw.bind(sink)
        self.gateways.append(gw)
        return gw

    async def connect(self, gw: Mt5Gateway, *, stream: bool = True) -> None:
        await gw.connect(stream=stream)
        if stream:  # the first poll sets where the bar stream starts
            seen = gw.poll_cycles
            await wait_until(lambda: gw.poll_cycles > seen, 5.0, "the gateway's first poll")

    # -- clock and bars ------------------------------------------------------------------------
    def now_ns(self) -> int:
        return int(self.control("_get", "now") * NS)

    def bar_open(self, k: int = 0) -> int:
        now = int(self.control("_get", "now"))
        return (now // 60 * 60 + 60 * k) * NS

    def set_now(self, ts_ns: int) -> None:
        self.control("_set", now=max(ts_ns / NS, self.control("_get", "now")))

    def _symbol(self, instrument_id: str) -> str:
        return self.symbols[instrument_id]

    def _push_rows(self, symbol: str) -> None:
        rows = [self._rows[symbol][k] for k in sorted(self._rows[symbol])]
        self.control("_set_rates", symbol, rows)

    @staticmethod
    def _server_row(r: Row | tuple[Any, ...]) -> tuple[Any, ...]:
        return (r[0] // NS + SERVER_OFFSET_S, *r[1:])

    def install_history(self, instrument_id: str, rows: list[Row]) -> None:
        symbol = self._symbol(instrument_id)
        self._rows[symbol] = {self._server_row(r)[0]: self._server_row(r) for r in rows}
        self._push_rows(symbol)

    async def publish_bar(self, instrument_id: str, bar: Row) -> None:
        """The bar forms first (the gateway polls it as index 0), then the clock passes its end."""
        symbol = self._symbol(instrument_id)
        rows = self._rows.setdefault(symbol, {})
        t, o, v = bar[0], bar[1], bar[5]
        key = self._server_row(bar)[0]
        if self.now_ns() < t + 60 * NS:
            if self.now_ns() < t:
                self.set_now(t + NS)
            rows[key] = self._server_row((t, o, o, o, o, v / 4))
            self._push_rows(symbol)
            await self._polled()
        rows[key] = self._server_row(bar)
        self._push_rows(symbol)
        self.set_now(t + 65 * NS)

    async def _polled(self) -> None:
        """Every streaming gateway has polled the terminal once more."""
        for gw in self.gateways:
            if gw._streaming:
                seen = gw.poll_cycles
                await wait_until(lambda g=gw, s=seen: g.poll_cycles > s + 1, 10.0,
                                 "a poll of the forming bar")

    async def drop_streams(self) -> None:
        self.control("_drop_clients")

    # -- orders --------------------------------------------------------------------------------
    def ticket_of(self, client_order_id: str) -> int:
        return int(self.control("_order_by_comment", comment_for(client_order_id)))

    async def venue_fill(self, client_order_id: str, qty: float | None = None,
                         price: float | None = None, *, notify: bool = True) -> str:
        # MT5 notifies nobody either way: the gateway polls history_deals_get
        return str(self.control("_fill", self.ticket_of(client_order_id), qty, price))

    def script_submit(self, fault: str) -> None:
        kind, opts = _FAULTS[fault]
        self.control("_script", kind, **opts)

    def state(self) -> dict[str, Any]:
        return self.control("_state")

    def submissions(self) -> int:
        return sum(1 for s in self.state()["sends"] if s.get("action") in (1, 5))

    def venue_orders(self) -> dict[str, str]:
        st = self.state()
        out = {}
        for orders in (st["history_orders"], st["orders"]):
            for _ticket, (comment, state) in orders.items():
                if not comment.startswith("["):  # not a server-made SL/TP close
                    out[comment] = _STATE_NAMES.get(state, str(state))
        return out

    def execution_ids(self) -> list[str]:
        return [str(d[0]) for d in self.state()["deals"]]
