"""A stand-in TWS / IB Gateway speaking the real TWS socket protocol on loopback.

Wire format (what ib_async 2.1.0 sends and decodes): after the ``API\\0`` prefix
every message is a 4-byte big-endian length followed by NUL-terminated fields.
The handshake negotiates the server version (at most 178, the highest ib_async
asks for and the layouts below follow), ``startApi`` names the clientId, and the
server answers ``nextValidId`` and ``managedAccounts``; ``IB.connectAsync`` then
syncs positions, open and completed orders, account updates and executions.

The venue is as unkind as the real one, on script:

* orders: market orders fill at once at the last close, limits rest until
  ``fill``; partial fills; the commission report can be held back
  (``hold_commissions``) and sent later; a submit can stall, be swallowed or
  cut the socket (``script_submit``);
* connectivity: ``connectivity_lost`` (1100: the socket stays up, nothing flows),
  ``connectivity_restored`` (1102 data kept / 1101 data lost); fills executed
  meanwhile are told to nobody; data-farm messages 2103/2104/2105/2106;
* ``restart``: every client socket closes and the order id sequence rolls back
  to 1, while orders, executions and positions persist (they live at IB);
* pacing: the next N historical-data requests get error 162.

Message ids and field orders are those of ib_async's ``client.py``/``decoder.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import itertools
import secrets
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

NS = 1_000_000_000
SERVER_VERSION = 178

Row = tuple[int, float, float, float, float, float]


def paper_account_id() -> str:
    """A fresh IB paper account id (``DU`` and seven digits) for one stand-in run: an
    account id is a credential, so none is written into the code."""
    return f"DU{secrets.randbelow(9_000_000) + 1_000_000}"


@dataclass(slots=True)
class Listing:
    """One contract the stand-in knows."""

    con_id: int
    symbol: str
    sec_type: str = "STK"
    exchange: str = "SMART"
    primary: str = "NASDAQ"
    currency: str = "USD"
    expiry: str = ""
    multiplier: str = ""
    min_tick: float = 0.01

    def fields11(self) -> list[Any]:
        """The contract as openOrder/execDetails/position carry it (no primaryExchange)."""
        return [self.con_id, self.symbol, self.sec_type, self.expiry, 0.0, "", self.multiplier,
                self.exchange, self.currency, self.symbol, self.symbol]


@dataclass(slots=True)
class VOrder:
    """An order as the venue keeps it."""

    order_id: int
    client_id: int
    perm_id: int
    order_ref: str
    listing: Listing
    action: str
    quantity: float
    order_type: str
    lmt: float | None
    aux: float | None
    tif: str
    oca_group: str = ""
    parent_id: int = 0
    status: str = "Submitted"
    filled: float = 0.0
    avg_price: float = 0.0
    last_price: float = 0.0

    @property
    def remaining(self) -> float:
        return self.quantity - self.filled

    @property
    def is_open(self) -> bool:
        return self.status in ("Submitted", "PreSubmitted")


@dataclass(slots=True)
class VExec:
    """One execution."""

    exec_id: str
    order: VOrder
    ts_ns: int
    shares: float
    price: float
    cum_qty: float
    avg_price: float
    commission: float = 1.0


@dataclass(slots=True)
class Conn:
    """One API client connection."""

    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    client_id: int = -1
    version: int = SERVER_VERSION
    bar_subs: dict[int, int] = field(default_factory=dict)  # reqId -> conId (keepUpToDate)
    rt_subs: dict[int, int] = field(default_factory=dict)  # reqId -> conId (5 s bars)


@dataclass(slots=True)
class SubmitFault:
    """What happens to the next placeOrder: ``stall`` (placed, answer after ``delay``),
    ``swallow`` (never placed, no answer), ``cut_after`` / ``cut_before`` (the socket
    breaks after / before the order is placed)."""

    kind: str
    delay: float = 0.0


def frame(fields: list[Any]) -> bytes:
    """One length-prefixed message of NUL-terminated fields."""
    body = "".join(f"{_text(f)}\0" for f in fields).encode()
    return struct.pack(">I", len(body)) + body


def _text(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "1" if v else "0"
    if isinstance(v, float):
        return repr(v) if v == v else "nan"
    return str(v)


def _ib_time(ts_ns: int) -> str:
    return dt.datetime.fromtimestamp(ts_ns / NS, dt.UTC).strftime("%Y%m%d %H:%M:%S") + " UTC"


def _duration_s(text: str) -> int:
    n, unit = text.split()
    return int(n) * {"S": 1, "D": 86_400, "W": 7 * 86_400, "M": 31 * 86_400,
                     "Y": 366 * 86_400}[unit]


def _bar_seconds(text: str) -> int:
    n, unit = text.split()[:2]
    return int(n) * {"sec": 1, "secs": 1, "min": 60, "mins": 60, "hour": 3600,
                     "hours": 3600, "day": 86_400}[unit]


class TwsStandin:
    """The stand-in TWS: one asyncio server on 127.0.0.1, state shared by all clients."""

    def __init__(self, listings: list[Listing] | None = None, *,
                 accounts: tuple[str, ...] | None = None, cash: float = 100_000.0) -> None:
        self.listings = {x.symbol + (x.expiry if x.sec_type == "FUT" else ""): x
                         for x in (listings or [Listing(265598, "AAPL"),
                                                Listing(272093, "MSFT")])}
        self.accounts = accounts or (paper_account_id(),)
        self.cash = cash
        self.now_ns = 1_704_068_430 * NS
        self.series: dict[int, list[Row]] = {}
        self.orders: list[VOrder] = []
        self.execs: list[VExec] = []
        self.positions: dict[int, tuple[float, float]] = {}  # conId -> (qty, avg cost)
        self.conns: list[Conn] = []
        self.placed: list[list[str]] = []  # every placeOrder received (raw fields)
        self.requests: list[list[str]] = []  # every message received
        self.next_order_id = 1
        self.connected_ever = 0
        self.pacing_violations = 0
        self.hold_commissions = False
        self.commission_delay_s = 0.0  # commission reports follow their execution this late
        self.connectivity_ok = True
        self._held: list[VExec] = []
        self._faults: list[SubmitFault] = []
        self._perm = itertools.count(1_000_001)
        self._exec_seq = itertools.count(1)
        self._server: asyncio.AbstractServer | None = None
        self.port = 0
        self.on_request: Callable[[list[str]], None] | None = None

    # -- lifecycle ------------------------------------------------------------------------
    async def start(self) -> TwsStandin:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        await self.drop_connections()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()

    async def drop_connections(self) -> None:
        """Close every client socket from the server side."""
        for c in list(self.conns):
            c.writer.close()
        self.conns.clear()
        await asyncio.sleep(0)

    async def restart(self, next_order_id: int = 1) -> None:
        """The nightly restart: sockets close and the order id sequence rolls back."""
        await self.drop_connections()
        self.next_order_id = next_order_id

    # -- scripting ------------------------------------------------------------------------
    def listing(self, symbol: str) -> Listing:
        return self.listings[symbol]

    def set_series(self, symbol: str, rows: list[Row]) -> None:
        self.series[self.listings[symbol].con_id] = sorted(rows)

    def script_submit(self, fault: SubmitFault) -> None:
        self._faults.append(fault)

    def order_by_ref(self, ref: str) -> VOrder:
        return next(o for o in self.orders if o.order_ref == ref)

    async def push_update(self, symbol: str, row: Row, bar_count: int = 1) -> None:
        """A keepUpToDate update of the bar opening at ``row[0]`` to every subscriber."""
        con = self.listings[symbol].con_id
        t, o, h, lo, c, v = row
        for conn in list(self.conns):
            for req, cid in list(conn.bar_subs.items()):
                if cid == con and self.connectivity_ok:
                    self._send(conn, [90, req, bar_count, t // NS, o, c, h, lo, (h + lo) / 2, v])
        await asyncio.sleep(0)

    async def push_realtime_bar(self, symbol: str, row: Row) -> None:
        """A 5-second real-time bar to every reqRealTimeBars subscriber."""
        con = self.listings[symbol].con_id
        t, o, h, lo, c, v = row
        for conn in list(self.conns):
            for req, cid in list(conn.rt_subs.items()):
                if cid == con and self.connectivity_ok:
                    self._send(conn, [50, 3, req, t // NS, o, h, lo, c, v, c, 1])
        await asyncio.sleep(0)

    async def broadcast_error(self, code: int, text: str, req_id: int = -1) -> None:
        for conn in list(self.conns):
            self._error(conn, req_id, code, text)
        await asyncio.sleep(0)

    async def connectivity_lost(self) -> None:
        """1100: TWS lost its link to IB; the API socket stays up, nothing flows."""
        await self.broadcast_error(1100, "Connectivity between IB and Trader Workstation "
                                         "has been lost.")
        self.connectivity_ok = False

    async def connectivity_restored(self, data_lost: bool = False) -> None:
        """1102 (subscriptions kept) or 1101 (data lost: subscriptions must be renewed)."""
        self.connectivity_ok = True
        if data_lost:
            for c in self.conns:
                c.bar_subs.clear()
                c.rt_subs.clear()
            await self.broadcast_error(1101, "Connectivity between IB and TWS has been "
                                             "restored- data lost.")
        else:
            await self.broadcast_error(1102, "Connectivity between IB and TWS has been "
                                             "restored- data maintained.")

    async def fill(self, ref: str, qty: float | None = None, price: float | None = None, *,
                   notify: bool = True) -> str:
        """Execute ``qty`` (default: the rest) of the order with orderRef ``ref``."""
        o = self.order_by_ref(ref)
        px = price if price is not None else (o.lmt or self._last(o.listing))
        return self._execute(o, qty if qty is not None else o.remaining, px,
                             notify and self.connectivity_ok).exec_id

    async def release_commissions(self) -> None:
        """Send the commission reports held back so far."""
        held, self._held = self._held, []
        for ex in held:
            for c in self._conns_for(ex.order):
                self._send(c, self._commission(ex))
        await asyncio.sleep(0)

    async def correct_execution(self, exec_id: str, price: float) -> str:
        """An execution correction: the same execution under a revised id (``.01`` suffix)."""
        ex = next(e for e in self.execs if e.exec_id == exec_id)
        base, _, rev = exec_id.rpartition(".")
        new_id = f"{base}.{int(rev) + 1:02d}"
        fixed = VExec(new_id, ex.order, ex.ts_ns, ex.shares, price, ex.cum_qty, price,
                      ex.commission)
        self.execs.append(fixed)
        for c in self._conns_for(ex.order):
            self._send(c, self._exec_details(c, -1, fixed))
        await asyncio.sleep(0)
        return new_id

    # -- the server ------------------------------------------------------------------------
    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = Conn(reader, writer)
        try:
            if await reader.readexactly(4) != b"API\0":
                writer.close()
                return
            size = struct.unpack(">I", await reader.readexactly(4))[0]
            versions = (await reader.readexactly(size)).decode()  # "v157..178 +PACEAPI"
            top = int(versions.split("..")[1].split()[0])
            conn.version = min(top, SERVER_VERSION)
            writer.write(frame([conn.version, _ib_time(self.now_ns)]))
            start = await self._read(reader)  # 71, 2, clientId, optCapab
            conn.client_id = int(start[2])
            if any(c.client_id == conn.client_id for c in self.conns):
                self._error(conn, -1, 326, "Unable to connect as the client id is already "
                                           "in use. Retry with a unique client id.")
                await writer.drain()
                writer.close()
                return
            self.conns.append(conn)
            self.connected_ever += 1
            self._send(conn, [9, 1, self.next_order_id])
            self._send(conn, [15, 1, ",".join(self.accounts)])
            self._error(conn, -1, 2104, "Market data farm connection is OK:usfarm")
            self._error(conn, -1, 2106, "HMDS data farm connection is OK:ushmds")
            while True:
                msg = await self._read(reader)
                self.requests.append(msg)
                if self.on_request is not None:
                    self.on_request(msg)
                await self._handle(conn, msg)
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            pass
        finally:
            if conn in self.conns:
                self.conns.remove(conn)
            writer.close()

    @staticmethod
    async def _read(reader: asyncio.StreamReader) -> list[str]:
        size = struct.unpack(">I", await reader.readexactly(4))[0]
        return (await reader.readexactly(size)).decode().split("\0")[:-1]

    def _send(self, conn: Conn, fields: list[Any]) -> None:
        if not conn.writer.is_closing():
            conn.writer.write(frame(fields))

    def _error(self, conn: Conn, req_id: int, code: int, text: str) -> None:
        self._send(conn, [4, 2, req_id, code, text, ""])

    def _conns_for(self, o: VOrder) -> list[Conn]:
        """Who hears about an order: its own client, and the master client 0."""
        return [c for c in self.conns if c.client_id in (o.client_id, 0)]

    async def _handle(self, conn: Conn, m: list[str]) -> None:
        mid = int(m[0])
        handler = {
            61: self._positions, 5: self._open_orders, 16: self._open_orders,
            99: self._completed, 6: self._account_updates, 76: self._account_multi,
            7: self._executions, 9: self._contract_details, 20: self._historical,
            25: self._cancel_historical, 50: self._realtime, 51: self._cancel_realtime,
            49: self._current_time, 3: self._place, 4: self._cancel, 8: self._req_ids,
            59: lambda c, m: None, 15: lambda c, m: None,
            17: lambda c, m: self._send(c, [15, 1, ",".join(self.accounts)]),
        }.get(mid)
        if handler is None:  # fail fast and loud instead of leaving a client waiting
            self._error(conn, -1, 321, f"Error validating request: message id {mid} is not "
                                       "supported by this stand-in")
            return
        result = handler(conn, m)
        if asyncio.iscoroutine(result):
            await result

    # -- account and reconciliation ----------------------------------------------------
    def _listing_by_con(self, con_id: int) -> Listing:
        return next(x for x in self.listings.values() if x.con_id == con_id)

    def _positions(self, conn: Conn, _m: list[str]) -> None:
        for con, (qty, avg) in self.positions.items():
            x = self._listing_by_con(con)
            self._send(conn, [61, 3, self.accounts[0], *x.fields11(), qty, avg])
        self._send(conn, [62, 1])

    def _open_orders(self, conn: Conn, m: list[str]) -> None:
        mine = int(m[0]) == 5 and conn.client_id != 0
        for o in self.orders:
            if o.is_open and (not mine or o.client_id == conn.client_id):
                self._send(conn, self._open_order(o))
                self._send(conn, self._order_status(o))
        self._send(conn, [53, 1])

    def _completed(self, conn: Conn, _m: list[str]) -> None:
        self._send(conn, [102])

    def _account_updates(self, conn: Conn, m: list[str]) -> None:
        if m[2] != "1":
            return
        acct = m[3] or self.accounts[0]
        for key, val in self._account_values():
            self._send(conn, [6, 2, key, val, "USD", acct])
        for con, (qty, avg) in self.positions.items():
            x = self._listing_by_con(con)
            px = self._last(x)
            self._send(conn, [7, 8, x.con_id, x.symbol, x.sec_type, x.expiry, 0.0, "",
                              x.multiplier, x.primary, x.currency, x.symbol, x.symbol, qty, px,
                              qty * px, avg, (px - avg) * qty, 0.0, acct])
        self._send(conn, [8, 1, "00:20"])
        self._send(conn, [54, 1, acct])

    def _account_values(self) -> list[tuple[str, str]]:
        value = sum(q * self._last(self._listing_by_con(c)) for c, (q, _a) in
                    self.positions.items())
        return [("TotalCashValue", f"{self.cash:.2f}"), ("CashBalance", f"{self.cash:.2f}"),
                ("NetLiquidation", f"{self.cash + value:.2f}"),
                ("BuyingPower", f"{4 * self.cash:.2f}"),
                ("InitMarginReq", f"{0.25 * value:.2f}"),
                ("AvailableFunds", f"{self.cash:.2f}")]

    def _account_multi(self, conn: Conn, m: list[str]) -> None:
        self._send(conn, [74, 1, m[2]])

    def _executions(self, conn: Conn, m: list[str]) -> None:
        req_id, client = int(m[2]), m[3]
        since = m[5]
        cutoff = 0
        if since:
            when = dt.datetime.strptime(since[:17], "%Y%m%d-%H:%M:%S").replace(tzinfo=dt.UTC)
            cutoff = int(when.timestamp()) * NS
        for ex in self.execs:
            if ex.ts_ns < cutoff or (client not in ("", "0") and
                                     ex.order.client_id != int(client)):
                continue
            self._send(conn, self._exec_details(conn, req_id, ex))
            if ex not in self._held:  # TWS follows each execution with its commission
                self._send(conn, self._commission(ex))
        self._send(conn, [55, 1, req_id])

    def _current_time(self, conn: Conn, _m: list[str]) -> None:
        self._send(conn, [49, 1, self.now_ns // NS])

    def _req_ids(self, conn: Conn, _m: list[str]) -> None:
        self._send(conn, [9, 1, self.next_order_id])

    # -- contracts and market data ---------------------------------------------------------
    def _contract_details(self, conn: Conn, m: list[str]) -> None:
        req_id, symbol, sec_type, expiry, currency = int(m[2]), m[4], m[5], m[6], m[12]
        found = [x for x in self.listings.values() if x.symbol == symbol
                 and (not sec_type or sec_type == x.sec_type)
                 and (not currency or currency == x.currency)
                 and x.expiry.startswith(expiry)]  # a futures request may name no expiry
        if not found:
            self._error(conn, req_id, 200, "No security definition has been found for the "
                                           "request")
            return
        for x in found:
            self._send(conn, [
                10, req_id, x.symbol, x.sec_type, x.expiry, 0.0, "", x.exchange, x.currency,
                x.symbol, x.symbol, x.symbol, x.con_id, x.min_tick, x.multiplier,
                "ACTIVETIM,LMT,MKT,STP,STPLMT", "SMART,NASDAQ", 1, 0, f"{x.symbol} INC",
                x.primary, "", "Technology", "", "", "US/Eastern", "", "", "", "", 0, "1",
                "", "", "26,26", "", "COMMON", "1", "1", "1"])
        self._send(conn, [52, 1, req_id])

    def _historical(self, conn: Conn, m: list[str]) -> None:
        req_id, con_id = int(m[1]), int(m[2] or 0)
        symbol = m[3]
        end_text, bar_size, duration, what = m[15], m[16], m[17], m[19]
        keep = m[21] == "1"
        if self.pacing_violations > 0:
            self.pacing_violations -= 1
            self._error(conn, req_id, 162, "Historical Market Data Service error message:"
                                           "API historical data query cancelled: pacing "
                                           f"violation ({what})")
            return
        if not self.connectivity_ok:
            self._error(conn, req_id, 162, "Historical Market Data Service error message:"
                                           "HMDS connection lost")
            return
        x = self.listings.get(symbol) if not con_id else self._listing_by_con(con_id)
        if x is None:
            self._error(conn, req_id, 200, "No security definition has been found")
            return
        tf = _bar_seconds(bar_size) * NS
        if end_text:
            stamp = end_text.replace("-", " ").split()  # "yyyymmdd-hh:mm:ss" is UTC
            when = dt.datetime.strptime(stamp[0] + stamp[1], "%Y%m%d%H:%M:%S").replace(
                tzinfo=dt.UTC)
            end = int(when.timestamp()) * NS
        else:
            end = self.now_ns + 1  # up to now: the forming bar included, as TWS does
        start = end - _duration_s(duration) * NS
        rows = [r for r in self.series.get(x.con_id, []) if start <= r[0] < end
                and r[0] <= self.now_ns]
        out: list[Any] = [17, req_id, _ib_time(start), _ib_time(end), len(rows)]
        for t, o, h, lo, c, v in rows:
            out += [t // NS, o, h, lo, c, v, (h + lo) / 2, 1]
        self._send(conn, out)
        if keep:
            conn.bar_subs[req_id] = x.con_id
        _ = tf

    def _cancel_historical(self, conn: Conn, m: list[str]) -> None:
        conn.bar_subs.pop(int(m[2]), None)

    def _realtime(self, conn: Conn, m: list[str]) -> None:
        conn.rt_subs[int(m[2])] = int(m[3] or 0) or self.listings[m[4]].con_id

    def _cancel_realtime(self, conn: Conn, m: list[str]) -> None:
        conn.rt_subs.pop(int(m[2]), None)

    def _last(self, x: Listing) -> float:
        rows = self.series.get(x.con_id)
        return rows[-1][4] if rows else 100.0

    # -- orders ------------------------------------------------------------------------
    async def _place(self, conn: Conn, m: list[str]) -> None:
        self.placed.append(m)
        fault = self._faults.pop(0) if self._faults else None
        if fault is not None and fault.kind == "swallow":
            return
        if fault is not None and fault.kind == "cut_before":
            conn.writer.close()
            return
        order_id = int(m[1])
        symbol = m[3]
        action, qty, otype = m[16], float(m[17]), m[18]
        lmt = float(m[19]) if m[19] else None
        aux = float(m[20]) if m[20] else None
        tif, oca, ref, transmit, parent = m[21], m[22], m[26], m[27], int(m[28] or 0)
        x = self.listings.get(symbol) or self._listing_by_con(int(m[2]))
        live = next((o for o in self.orders if o.client_id == conn.client_id
                     and o.order_id == order_id), None)
        if live is not None and not live.is_open:
            self._error(conn, order_id, 103, "Duplicate order id")
            return
        if live is not None:  # same id again: a modification of the working order
            live.quantity, live.lmt, live.aux, live.tif = qty, lmt, aux, tif
            self._tell_order(live)
            return
        o = VOrder(order_id, conn.client_id, next(self._perm), ref, x, action, qty, otype, lmt,
                   aux, tif, oca, parent)
        self.next_order_id = max(self.next_order_id, order_id + 1)
        px = lmt or self._last(x)
        if action == "BUY" and qty * px > 4 * self.cash:
            o.status = "Cancelled"
            self.orders.append(o)
            self._error(conn, order_id, 201,
                        "Order rejected - reason:YOUR ORDER IS NOT ACCEPTED. IN ORDER TO "
                        f"OBTAIN THE DESIRED POSITION YOUR EQUITY WITH LOAN VALUE "
                        f"[{self.cash:.2f} USD] MUST EXCEED THE INITIAL MARGIN "
                        f"[{qty * px / 4:.2f} USD]")
            self._send(conn, self._order_status(o))
            return
        if transmit == "0":
            o.status = "PreSubmitted"  # held until a child with transmit=1 arrives
        self.orders.append(o)
        if fault is not None and fault.kind == "stall":
            asyncio.get_running_loop().call_later(fault.delay, self._ack_and_match, o)
            return
        if fault is not None and fault.kind == "cut_after":
            self._match(o, notify=False)
            conn.writer.close()
            return
        self._ack_and_match(o)

    def _ack_and_match(self, o: VOrder) -> None:
        if o.parent_id:  # a child transmits its parent too
            parent = next((p for p in self.orders if p.order_id == o.parent_id
                           and p.client_id == o.client_id), None)
            if parent is not None and parent.status == "PreSubmitted":
                parent.status = "Submitted"
                self._tell_order(parent)
                self._match(parent, notify=True)
            o.status = "PreSubmitted"  # children wait for the parent to fill
        self._tell_order(o)
        self._match(o, notify=True)

    def _match(self, o: VOrder, *, notify: bool) -> None:
        if o.order_type == "MKT" and o.status == "Submitted" and o.remaining > 0:
            self._execute(o, o.remaining, self._last(o.listing), notify and self.connectivity_ok)

    def _tell_order(self, o: VOrder) -> None:
        if not self.connectivity_ok:
            return  # TWS is cut off from IB: it hears nothing of the order
        for c in self._conns_for(o):
            self._send(c, self._open_order(o))
            self._send(c, self._order_status(o))

    def _execute(self, o: VOrder, qty: float, price: float, notify: bool) -> VExec:
        qty = min(qty, o.remaining)
        o.avg_price = (o.avg_price * o.filled + price * qty) / (o.filled + qty)
        o.filled += qty
        o.last_price = price
        if o.remaining <= 1e-9:
            o.status = "Filled"
        sign = 1 if o.action == "BUY" else -1
        q0, a0 = self.positions.get(o.listing.con_id, (0.0, 0.0))
        q1 = q0 + sign * qty
        a1 = (a0 * q0 + price * sign * qty) / q1 if abs(q1) > 1e-12 and q0 * sign >= 0 else a0
        self.positions[o.listing.con_id] = (q1, a1 if abs(q1) > 1e-12 else 0.0)
        ex = VExec(f"0000e0d5.{next(self._exec_seq):08x}.01.01", o, self.now_ns, qty, price,
                   o.filled, o.avg_price)
        self.cash -= sign * qty * price + ex.commission
        self.execs.append(ex)
        if self.hold_commissions:
            self._held.append(ex)
        if notify:
            for c in self._conns_for(o):
                self._send(c, self._exec_details(c, -1, ex))
                self._send(c, self._order_status(o))
                if ex in self._held:
                    continue
                if self.commission_delay_s > 0:
                    asyncio.get_running_loop().call_later(
                        self.commission_delay_s, self._send, c, self._commission(ex))
                else:
                    self._send(c, self._commission(ex))
        if o.status == "Filled":
            self._after_fill(o, notify)
        return ex

    def _after_fill(self, o: VOrder, notify: bool) -> None:
        """Children of a filled parent go live; an OCA group cancels its other members."""
        for child in self.orders:
            if child.parent_id == o.order_id and child.client_id == o.client_id \
                    and child.status == "PreSubmitted":
                child.status = "Submitted"
                if notify:
                    self._tell_order(child)
        if o.oca_group:
            for other in self.orders:
                if other is not o and other.oca_group == o.oca_group and other.is_open:
                    other.status = "Cancelled"
                    if notify:
                        self._tell_order(other)

    def _cancel(self, conn: Conn, m: list[str]) -> None:
        order_id = int(m[2])
        o = next((x for x in self.orders if x.client_id == conn.client_id
                  and x.order_id == order_id and x.is_open), None)
        if o is None:
            self._error(conn, order_id, 10147, f"OrderId {order_id} that needs to be "
                                               "cancelled is not found.")
            return
        o.status = "Cancelled"
        for c in self._conns_for(o):
            self._send(c, self._order_status(o))
            self._error(c, order_id, 202, "Order Canceled - reason:")

    # -- message bodies ------------------------------------------------------------------
    def _order_status(self, o: VOrder) -> list[Any]:
        return [3, o.order_id, o.status, o.filled, o.remaining, o.avg_price, o.perm_id,
                o.parent_id, o.last_price, o.client_id, "", 0.0]

    def _exec_details(self, conn: Conn, req_id: int, ex: VExec) -> list[Any]:
        o = ex.order
        out = [11, req_id, o.order_id, *o.listing.fields11(), ex.exec_id, _ib_time(ex.ts_ns),
               self.accounts[0], "ISLAND", "BOT" if o.action == "BUY" else "SLD", ex.shares,
               ex.price, o.perm_id, o.client_id, 0, ex.cum_qty, ex.avg_price, o.order_ref,
               "", "", "", 1]
        if conn.version >= 178:
            out.append(0)
        return out

    def _commission(self, ex: VExec) -> list[Any]:
        return [59, 1, ex.exec_id, ex.commission, "USD", "", "", ""]

    def _open_order(self, o: VOrder) -> list[Any]:
        """openOrder as decoded by ib_async at server version 177/178 (no faProfile)."""
        return [
            5, o.order_id, *o.listing.fields11(), o.action, o.quantity, o.order_type,
            o.lmt, o.aux, o.tif, o.oca_group, self.accounts[0], "O", 0, o.order_ref,
            o.client_id, o.perm_id, 0, 0, 0, "", "", "", "", "",
            # modelCode .. deltaNeutralAuxPrice (29)
            "", "", "", "", "", 0, "", "", "", "", "", "", "", "", 0, 0, 0, 0, "", 3, 0, 0, 0,
            o.parent_id, 0, "", 0, "", "",
            # continuousUpdate .. comboLegsDescrip (7), legs, order legs, smart params
            0, 0, "", "", "", "", "", 0, 0, 0,
            "", "", "",  # scale init/subs/increment
            "",  # hedgeType
            0, "", "", 0, 0,  # optOutSmartRouting .. dncPresent
            "",  # algoStrategy
            0, 0, o.status, *([""] * 9), "", "", "", "", "", 0, 0,
            0,  # conditions
            "", "", "", "", "", "", "", "", "", "", "", "", 0, 0, "", 0,
            "", "", 0,  # duration, postToAts, autoCancelParent
            "", "", "", "", "",  # minTradeQty .. midOffsetAtHalf
        ]
