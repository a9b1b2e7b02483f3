"""A scripted stand-in for the Windows ``MetaTrader5`` package and the terminal behind it.

``gateways.testing.mt5_server`` installs this module as ``MetaTrader5`` inside an
rpyc classic server on loopback, so the real ``mt5linux`` client reaches it
exactly as it reaches a terminal under Wine: source strings evaluated server
side, netrefs and pickled numpy rates coming back.  The public names, the
constants, the result types (namedtuples named and ordered like the real
structs, living in a module called ``MetaTrader5`` so they cannot be unpickled
on the client, as with the real package) and the rates dtype match the real
package.  Functions prefixed with ``_`` are the test controls (reached over a
second rpyc connection): the clock, bars, ticks, fills, SL/TP hits, broker
habits (requotes, a closed market, altered comments, IPC timeouts, stalls)
and dropping the terminal's client connections.

Time: the terminal's clock (``_T.now``) is UTC seconds; every time it shows
(rates, ticks, orders, deals) is in the trade server's zone, ``server_offset_s``
ahead of UTC, as real brokers do (commonly UTC+2/+3).
"""

from __future__ import annotations

import collections
import datetime
import secrets
import threading
import time as _time
from dataclasses import dataclass, field
from typing import Any

import numpy as np

# -- constants (the values of the real package; tests compare them with mt5linux's copy) ---
TIMEFRAME_M1, TIMEFRAME_M5, TIMEFRAME_M15, TIMEFRAME_M30 = 1, 5, 15, 30
TIMEFRAME_H1, TIMEFRAME_H4, TIMEFRAME_D1 = 16385, 16388, 16408
ACCOUNT_MARGIN_MODE_RETAIL_NETTING, ACCOUNT_MARGIN_MODE_RETAIL_HEDGING = 0, 2
ACCOUNT_TRADE_MODE_DEMO = 0
ORDER_TYPE_BUY, ORDER_TYPE_SELL = 0, 1
ORDER_TYPE_BUY_LIMIT, ORDER_TYPE_SELL_LIMIT = 2, 3
ORDER_TYPE_BUY_STOP, ORDER_TYPE_SELL_STOP = 4, 5
ORDER_TYPE_BUY_STOP_LIMIT, ORDER_TYPE_SELL_STOP_LIMIT = 6, 7
ORDER_STATE_STARTED, ORDER_STATE_PLACED, ORDER_STATE_CANCELED = 0, 1, 2
ORDER_STATE_PARTIAL, ORDER_STATE_FILLED, ORDER_STATE_REJECTED, ORDER_STATE_EXPIRED = 3, 4, 5, 6
ORDER_FILLING_FOK, ORDER_FILLING_IOC, ORDER_FILLING_RETURN = 0, 1, 2
ORDER_TIME_GTC = 0
ORDER_REASON_CLIENT, ORDER_REASON_EXPERT, ORDER_REASON_SL, ORDER_REASON_TP = 0, 3, 4, 5
TRADE_ACTION_DEAL, TRADE_ACTION_PENDING, TRADE_ACTION_SLTP = 1, 5, 6
TRADE_ACTION_MODIFY, TRADE_ACTION_REMOVE = 7, 8
DEAL_TYPE_BUY, DEAL_TYPE_SELL = 0, 1
DEAL_ENTRY_IN, DEAL_ENTRY_OUT, DEAL_ENTRY_INOUT = 0, 1, 2
DEAL_REASON_CLIENT, DEAL_REASON_EXPERT, DEAL_REASON_SL, DEAL_REASON_TP = 0, 3, 4, 5
POSITION_TYPE_BUY, POSITION_TYPE_SELL = 0, 1
SYMBOL_TRADE_MODE_DISABLED, SYMBOL_TRADE_MODE_FULL = 0, 4
TRADE_RETCODE_REQUOTE, TRADE_RETCODE_REJECT = 10004, 10006
TRADE_RETCODE_PLACED, TRADE_RETCODE_DONE = 10008, 10009
TRADE_RETCODE_INVALID, TRADE_RETCODE_INVALID_VOLUME = 10013, 10014
TRADE_RETCODE_INVALID_PRICE, TRADE_RETCODE_INVALID_STOPS = 10015, 10016
TRADE_RETCODE_MARKET_CLOSED, TRADE_RETCODE_NO_MONEY = 10018, 10019
TRADE_RETCODE_PRICE_OFF, TRADE_RETCODE_TOO_MANY_REQUESTS = 10021, 10024
TRADE_RETCODE_CLIENT_DISABLES_AT, TRADE_RETCODE_INVALID_FILL = 10027, 10030
TRADE_RETCODE_INVALID_ORDER = 10035
RES_S_OK, RES_E_FAIL, RES_E_INVALID_PARAMS, RES_E_NOT_FOUND = 1, -1, -2, -4
RES_E_AUTH_FAILED, RES_E_INTERNAL_FAIL_INIT = -6, -10003
RES_E_INTERNAL_FAIL_CONNECT, RES_E_INTERNAL_FAIL_TIMEOUT = -10004, -10005
SYMBOL_FILLING_FOK, SYMBOL_FILLING_IOC = 1, 2  # bits of symbol_info().filling_mode


def _struct(name: str, fields: str) -> Any:
    # module "MetaTrader5": like the real structs, these cannot be unpickled on the client
    return collections.namedtuple(name, fields.split(), module="MetaTrader5")


AccountInfo = _struct("AccountInfo", "login trade_mode leverage limit_orders margin_so_mode "
                      "trade_allowed trade_expert margin_mode currency_digits fifo_close balance "
                      "credit profit equity margin margin_free margin_level margin_so_call "
                      "margin_so_so margin_initial margin_maintenance assets liabilities "
                      "commission_blocked name server currency company")
TerminalInfo = _struct("TerminalInfo", "community_account community_connection connected "
                       "dlls_allowed trade_allowed tradeapi_disabled email_enabled ftp_enabled "
                       "notifications_enabled mqid build maxbars codepage ping_last "
                       "community_balance retransmission company name language path data_path "
                       "commondata_path")
SymbolInfo = _struct("SymbolInfo", "custom chart_mode select visible digits spread "
                     "trade_calc_mode trade_mode trade_stops_level trade_exemode filling_mode "
                     "order_mode bid ask last point trade_tick_value trade_tick_size "
                     "trade_contract_size volume_min volume_max volume_step currency_base "
                     "currency_profit currency_margin description path name")
Tick = _struct("Tick", "time bid ask last volume time_msc flags volume_real")
TradeRequest = _struct("TradeRequest", "action magic order symbol volume price stoplimit sl tp "
                       "deviation type type_filling type_time expiration comment position "
                       "position_by")
OrderSendResult = _struct("OrderSendResult", "retcode deal order volume price bid ask comment "
                          "request_id retcode_external request")
TradePosition = _struct("TradePosition", "ticket time time_msc time_update time_update_msc "
                        "type magic identifier reason volume price_open sl tp price_current "
                        "swap profit symbol comment external_id")
TradeOrder = _struct("TradeOrder", "ticket time_setup time_setup_msc time_done time_done_msc "
                     "time_expiration type type_time type_filling state magic position_id "
                     "position_by_id reason volume_initial volume_current price_open sl tp "
                     "price_current price_stoplimit symbol comment external_id")
TradeDeal = _struct("TradeDeal", "ticket order time time_msc type entry magic position_id "
                    "reason volume price commission swap profit fee symbol comment external_id")

RATES_DTYPE = np.dtype([("time", "<i8"), ("open", "<f8"), ("high", "<f8"), ("low", "<f8"),
                        ("close", "<f8"), ("tick_volume", "<u8"), ("spread", "<i4"),
                        ("real_volume", "<u8")])
_TF_SECONDS = {TIMEFRAME_M1: 60, TIMEFRAME_M5: 300, TIMEFRAME_M15: 900, TIMEFRAME_M30: 1800,
               TIMEFRAME_H1: 3600, TIMEFRAME_H4: 14400, TIMEFRAME_D1: 86400}
_RETCODE_TEXT = {10004: "Requote", 10006: "Request rejected", 10008: "Order placed",
                 10009: "Request completed", 10013: "Invalid request",
                 10014: "Invalid volume in the request", 10015: "Invalid price in the request",
                 10016: "Invalid stops in the request", 10018: "Market is closed",
                 10019: "There is not enough money to complete the request",
                 10021: "There are no quotes to process the request",
                 10024: "Too frequent requests",
                 10027: "Autotrading disabled by client terminal",
                 10030: "Invalid order filling type", 10035: "Invalid or prohibited order type"}


@dataclass
class Spec:
    """One symbol of the stand-in's broker."""

    name: str
    bid: float
    spread: float
    contract_size: float = 100_000.0
    digits: int = 5
    volume_min: float = 0.01
    volume_step: float = 0.01
    volume_max: float = 100.0
    filling_mode: int = SYMBOL_FILLING_FOK | SYMBOL_FILLING_IOC
    currency_profit: str = "USD"
    trade_mode: int = SYMBOL_TRADE_MODE_FULL
    selected: bool = False


@dataclass
class _Order:
    ticket: int
    symbol: str
    type: int
    volume_initial: float
    volume_current: float
    price_open: float
    magic: int
    comment: str
    time_setup: float
    sl: float = 0.0
    tp: float = 0.0
    price_stoplimit: float = 0.0
    state: int = ORDER_STATE_PLACED
    time_done: float = 0.0
    position_id: int = 0


@dataclass
class _Position:
    ticket: int
    symbol: str
    type: int
    volume: float
    price_open: float
    magic: int
    comment: str
    time: float
    sl: float = 0.0
    tp: float = 0.0


@dataclass
class _Deal:
    ticket: int
    order: int
    time: float
    type: int
    entry: int
    magic: int
    position_id: int
    reason: int
    volume: float
    price: float
    profit: float
    symbol: str
    comment: str


def fresh_login() -> int:
    """A demo account number of the usual seven digits, new for each terminal."""
    return 5_000_000 + secrets.randbelow(4_000_000)


@dataclass
class Terminal:
    """The whole scripted terminal: account, symbols, bars, orders, positions, deals."""

    # a fresh login and password per terminal, as the other stand-ins make fresh keys
    # and account ids: no credential-like literal is committed, and a test that logs
    # one is caught
    login: int = field(default_factory=lambda: fresh_login())
    password: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    server: str = "StandIn-Demo"
    currency: str = "USD"
    balance: float = 100_000.0
    leverage: int = 100
    hedging: bool = False
    server_offset_s: int = 2 * 3600
    now: float = 1_704_068_430.0  # UTC seconds; the harness moves it
    wall_clock: bool = False  # True: the clock is the host's (daemon sessions)
    comment_mode: str = ""  # "" keep, "truncate" to 16 chars, "replace" with the broker's own
    autotrading: bool = True
    down: bool = False  # the terminal lost its trade server / IPC: calls fail with -10004
    symbols: dict[str, Spec] = field(default_factory=dict)
    rates: dict[str, list[tuple[int, float, float, float, float, float]]] = field(
        default_factory=dict)  # symbol -> rows (server-time open s, o, h, l, c, volume)
    orders: dict[int, _Order] = field(default_factory=dict)  # working pending orders
    history_orders: dict[int, _Order] = field(default_factory=dict)
    positions: dict[int, _Position] = field(default_factory=dict)
    deals: list[_Deal] = field(default_factory=list)
    scripts: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    sends: list[dict[str, Any]] = field(default_factory=list)  # every order_send request
    calls: collections.Counter[str] = field(default_factory=collections.Counter)
    last_error: tuple[int, str] = (RES_S_OK, "Success")
    initialized: set[int] = field(default_factory=set)  # thread ids of logged-in clients
    next_ticket: int = 70_000_000
    lock: threading.RLock = field(default_factory=threading.RLock)

    # -- helpers --------------------------------------------------------------------------
    def ticket(self) -> int:
        self.next_ticket += 1
        return self.next_ticket

    def server_now(self) -> float:
        now = _time.time() if self.wall_clock else self.now
        return now + self.server_offset_s

    def tick_of(self, symbol: str) -> tuple[float, float]:
        s = self.symbols[symbol]
        return s.bid, round(s.bid + s.spread, s.digits)

    def fail(self, code: int, text: str) -> None:
        self.last_error = (code, text)

    def ok(self) -> None:
        self.last_error = (RES_S_OK, "Success")

    def alive(self) -> bool:
        if self.down:
            self.fail(RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
            return False
        if threading.get_ident() not in self.initialized:
            self.fail(RES_E_INTERNAL_FAIL_INIT, "IPC initialize failed")
            return False
        return True

    def broker_comment(self, comment: str, ticket: int) -> str:
        comment = comment[:31]  # the terminal's own limit
        if self.comment_mode == "truncate":
            return comment[:16]
        if self.comment_mode == "replace":
            return f"#{ticket} by broker"
        return comment

    def equity(self) -> float:
        return self.balance + sum(self.profit_of(p) for p in self.positions.values())

    def profit_of(self, p: _Position) -> float:
        bid, ask = self.tick_of(p.symbol)
        spec = self.symbols[p.symbol]
        if p.type == POSITION_TYPE_BUY:
            return (bid - p.price_open) * p.volume * spec.contract_size
        return (p.price_open - ask) * p.volume * spec.contract_size

    def margin(self) -> float:
        return sum(self.margin_for(p.symbol, p.volume, p.price_open)
                   for p in self.positions.values())

    def margin_for(self, symbol: str, volume: float, price: float) -> float:
        return volume * self.symbols[symbol].contract_size * price / self.leverage

    # -- executions -----------------------------------------------------------------------
    def execute(self, symbol: str, side: int, volume: float, price: float, *, order: int,
                magic: int, comment: str, reason: int, position: int = 0) -> _Deal:
        """One deal: opens, adds to, reduces or reverses a position (netting or hedging)."""
        t = self.server_now()
        target = self.positions.get(position) if position else None
        if target is None and not self.hedging:
            target = next((p for p in self.positions.values() if p.symbol == symbol), None)
        entry = DEAL_ENTRY_IN
        profit = 0.0
        size = self.symbols[symbol].contract_size
        if target is None or target.type == side:
            if target is None:
                pid = order or self.ticket()
                target = _Position(pid, symbol, side, 0.0, price, magic, comment, t)
                self.positions[pid] = target
            total = target.volume + volume
            target.price_open = (target.price_open * target.volume + price * volume) / total
            target.volume = round(total, 8)
        else:
            entry = DEAL_ENTRY_OUT
            closed = min(volume, target.volume)
            sign = 1 if target.type == POSITION_TYPE_BUY else -1
            profit = (price - target.price_open) * closed * size * sign
            self.balance += profit
            target.volume = round(target.volume - volume, 8)
            if target.volume < -1e-9:  # a netting reversal: the rest opens the other way
                entry = DEAL_ENTRY_INOUT
                target.type, target.volume, target.price_open = side, -target.volume, price
            if abs(target.volume) <= 1e-9:
                del self.positions[target.ticket]
        deal = _Deal(self.ticket(), order, t, side, entry, magic, target.ticket, reason,
                     volume, price, profit, symbol, comment)
        self.deals.append(deal)
        return deal

    def fill_pending(self, o: _Order, volume: float, price: float) -> _Deal:
        side = ORDER_TYPE_BUY if o.type in (2, 4, 6) else ORDER_TYPE_SELL
        deal = self.execute(o.symbol, side, volume, price, order=o.ticket, magic=o.magic,
                            comment=o.comment, reason=DEAL_REASON_EXPERT)
        o.position_id = deal.position_id
        o.volume_current = round(o.volume_current - volume, 8)
        if o.volume_current <= 1e-9:
            o.state, o.time_done = ORDER_STATE_FILLED, self.server_now()
            self.history_orders[o.ticket] = self.orders.pop(o.ticket)
        else:
            o.state = ORDER_STATE_PARTIAL
        return deal


_T = Terminal()
_SERVER_CONNECTIONS: dict[int, Any] = {}  # serving thread id -> rpyc connection (mt5_server)


def _ts(x: Any) -> float:
    """A date argument (datetime or seconds) as the epoch seconds the terminal compares."""
    if isinstance(x, datetime.datetime):
        return x.timestamp()
    return float(x)


def _result(retcode: int, req: dict[str, Any], *, deal: int = 0, order: int = 0,
            volume: float = 0.0, price: float = 0.0, comment: str = "") -> Any:
    bid, ask = _T.tick_of(req["symbol"]) if req.get("symbol") in _T.symbols else (0.0, 0.0)
    fields = {f: req.get(f, 0) for f in TradeRequest._fields}
    fields["symbol"], fields["comment"] = req.get("symbol", ""), req.get("comment", "")
    return OrderSendResult(retcode, deal, order, volume, price, bid, ask,
                           comment or _RETCODE_TEXT.get(retcode, ""), len(_T.sends), 0,
                           TradeRequest(**fields))


# -- the package's functions ---------------------------------------------------------------
def initialize(path: str | None = None, *, login: int | None = None, password: str = "",
               server: str = "", timeout: int = 60_000, portable: bool = False) -> bool:
    with _T.lock:
        _T.calls["initialize"] += 1
        if _T.down:
            _T.fail(RES_E_INTERNAL_FAIL_CONNECT, "No IPC connection")
            return False
        if login is not None and (int(login) != _T.login or password != _T.password
                                  or (server and server != _T.server)):
            _T.fail(RES_E_AUTH_FAILED, "Authorization failed")
            return False
        _T.initialized.add(threading.get_ident())
        _T.ok()
        return True


def login(login: int, password: str = "", server: str = "", timeout: int = 60_000) -> bool:
    return initialize(login=login, password=password, server=server, timeout=timeout)


def shutdown() -> None:
    with _T.lock:
        _T.initialized.discard(threading.get_ident())


def version() -> tuple[int, int, str]:
    return (500, 4755, "1 Dec 2024")


def last_error() -> tuple[int, str]:
    return _T.last_error


def account_info() -> Any:
    with _T.lock:
        _T.calls["account_info"] += 1
        if not _T.alive():
            return None
        eq, margin = _T.equity(), _T.margin()
        mode = ACCOUNT_MARGIN_MODE_RETAIL_HEDGING if _T.hedging else \
            ACCOUNT_MARGIN_MODE_RETAIL_NETTING
        return AccountInfo(_T.login, ACCOUNT_TRADE_MODE_DEMO, _T.leverage, 200, 0, True,
                           _T.autotrading, mode, 2, False, round(_T.balance, 2), 0.0,
                           round(eq - _T.balance, 2), round(eq, 2), round(margin, 2),
                           round(eq - margin, 2), (eq / margin * 100) if margin else 0.0,
                           50.0, 30.0, 0.0, 0.0, 0.0, 0.0, 0.0, "Stand-in Demo", _T.server,
                           _T.currency, "Stand-in Markets Ltd")


def terminal_info() -> Any:
    with _T.lock:
        if not _T.alive():
            return None
        return TerminalInfo(False, False, True, False, _T.autotrading, False, False, False,
                            False, False, 4755, 100_000, 0, 1200, 0.0, 0.0,
                            "Stand-in Markets Ltd", "MetaTrader 5", "English",
                            "C:\\MT5", "C:\\MT5", "C:\\MT5\\Common")


def symbol_select(symbol: str, enable: bool = True) -> bool:
    with _T.lock:
        if not _T.alive():
            return False
        spec = _T.symbols.get(symbol)
        if spec is None:
            _T.fail(RES_E_NOT_FOUND, "Terminal: Not found")
            return False
        spec.selected = bool(enable)
        _T.ok()
        return True


def symbol_info(symbol: str) -> Any:
    with _T.lock:
        _T.calls["symbol_info"] += 1
        if not _T.alive():
            return None
        s = _T.symbols.get(symbol)
        if s is None:
            _T.fail(RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        bid, ask = _T.tick_of(symbol)
        point = 10.0 ** -s.digits
        return SymbolInfo(False, 0, s.selected, s.selected, s.digits,
                          round((ask - bid) / point), 0, s.trade_mode, 0, 2, s.filling_mode,
                          127, bid, ask, 0.0, point, s.contract_size * point, point,
                          s.contract_size, s.volume_min, s.volume_max, s.volume_step,
                          s.name[:3], s.currency_profit, s.name[:3], f"{s.name} stand-in",
                          f"Stand-in\\{s.name}", s.name)


def symbol_info_tick(symbol: str) -> Any:
    with _T.lock:
        _T.calls["symbol_info_tick"] += 1
        if not _T.alive():
            return None
        if symbol not in _T.symbols:
            _T.fail(RES_E_NOT_FOUND, "Terminal: Not found")
            return None
        bid, ask = _T.tick_of(symbol)
        t = _T.server_now()
        return Tick(int(t), bid, ask, 0.0, 0, int(t * 1000), 6, 0.0)


def _rates(rows: list[tuple[int, float, float, float, float, float]]) -> Any:
    out = np.zeros(len(rows), dtype=RATES_DTYPE)
    for i, (t, o, h, lo, c, v) in enumerate(rows):
        out[i] = (t, o, h, lo, c, int(v), 1, 0)
    return out


def _series(symbol: str, timeframe: int) -> list[Any] | None:
    if not _T.alive():
        return None
    if symbol not in _T.symbols or timeframe not in _TF_SECONDS:
        _T.fail(RES_E_INVALID_PARAMS, "Terminal: Invalid params")
        return None
    # only bars whose interval has begun by the terminal's clock exist
    now = _T.server_now()
    return [r for r in _T.rates.get(symbol, []) if r[0] <= now]


def copy_rates_from_pos(symbol: str, timeframe: int, start_pos: int, count: int) -> Any:
    with _T.lock:
        _T.calls["copy_rates_from_pos"] += 1
        rows = _series(symbol, timeframe)
        if rows is None:
            return None
        end = len(rows) - int(start_pos)
        return _rates(rows[max(end - int(count), 0):max(end, 0)])


def copy_rates_from(symbol: str, timeframe: int, date_from: Any, count: int) -> Any:
    with _T.lock:
        rows = _series(symbol, timeframe)
        if rows is None:
            return None
        older = [r for r in rows if r[0] <= _ts(date_from)]
        return _rates(older[-int(count):])


def copy_rates_range(symbol: str, timeframe: int, date_from: Any, date_to: Any) -> Any:
    with _T.lock:
        _T.calls["copy_rates_range"] += 1
        rows = _series(symbol, timeframe)
        if rows is None:
            return None
        lo, hi = _ts(date_from), _ts(date_to)
        return _rates([r for r in rows if lo <= r[0] <= hi])


def _order_struct(o: _Order) -> Any:
    bid, ask = _T.tick_of(o.symbol)
    return TradeOrder(o.ticket, int(o.time_setup), int(o.time_setup * 1000), int(o.time_done),
                      int(o.time_done * 1000), 0, o.type, ORDER_TIME_GTC, ORDER_FILLING_RETURN,
                      o.state, o.magic, o.position_id, 0, ORDER_REASON_EXPERT, o.volume_initial,
                      o.volume_current, o.price_open, o.sl, o.tp,
                      bid if o.type % 2 else ask, o.price_stoplimit, o.symbol, o.comment, "")


def _position_struct(p: _Position) -> Any:
    bid, ask = _T.tick_of(p.symbol)
    return TradePosition(p.ticket, int(p.time), int(p.time * 1000), int(p.time),
                         int(p.time * 1000), p.type, p.magic, p.ticket, 3, p.volume,
                         p.price_open, p.sl, p.tp, bid if p.type == 0 else ask, 0.0,
                         round(_T.profit_of(p), 2), p.symbol, p.comment, "")


def _deal_struct(d: _Deal) -> Any:
    return TradeDeal(d.ticket, d.order, int(d.time), int(d.time * 1000), d.type, d.entry,
                     d.magic, d.position_id, d.reason, d.volume, d.price, 0.0, 0.0,
                     round(d.profit, 2), 0.0, d.symbol, d.comment, "")


def orders_total() -> int:
    return len(_T.orders)


def orders_get(symbol: str | None = None, group: str | None = None,
               ticket: int | None = None) -> Any:
    with _T.lock:
        _T.calls["orders_get"] += 1
        if not _T.alive():
            return None
        out = [o for o in _T.orders.values()
               if (symbol is None or o.symbol == symbol) and (ticket is None or o.ticket == ticket)]
        return tuple(_order_struct(o) for o in out)


def positions_total() -> int:
    return len(_T.positions)


def positions_get(symbol: str | None = None, group: str | None = None,
                  ticket: int | None = None) -> Any:
    with _T.lock:
        _T.calls["positions_get"] += 1
        if not _T.alive():
            return None
        out = [p for p in _T.positions.values()
               if (symbol is None or p.symbol == symbol) and (ticket is None or p.ticket == ticket)]
        return tuple(_position_struct(p) for p in out)


def history_orders_get(date_from: Any = None, date_to: Any = None, *, group: str | None = None,
                       ticket: int | None = None, position: int | None = None) -> Any:
    with _T.lock:
        _T.calls["history_orders_get"] += 1
        if not _T.alive():
            return None
        out = list(_T.history_orders.values())
        if ticket is not None:
            out = [o for o in out if o.ticket == ticket]
        elif position is not None:
            out = [o for o in out if o.position_id == position]
        else:
            lo, hi = _ts(date_from), _ts(date_to)
            out = [o for o in out if lo <= o.time_setup <= hi]
        return tuple(_order_struct(o) for o in out)


def history_deals_get(date_from: Any = None, date_to: Any = None, *, group: str | None = None,
                      ticket: int | None = None, position: int | None = None) -> Any:
    with _T.lock:
        _T.calls["history_deals_get"] += 1
        if not _T.alive():
            return None
        if ticket is not None:  # the ticket of the order the deals executed
            out = [d for d in _T.deals if d.order == ticket]
        elif position is not None:
            out = [d for d in _T.deals if d.position_id == position]
        else:
            lo, hi = _ts(date_from), _ts(date_to)
            out = [d for d in _T.deals if lo <= d.time <= hi]
        return tuple(_deal_struct(d) for d in out)


def order_check(request: dict[str, Any]) -> Any:
    return None


def order_send(request: dict[str, Any]) -> Any:
    with _T.lock:
        _T.calls["order_send"] += 1
        _T.sends.append(dict(request))
        if not _T.alive():
            return None
        script = _T.scripts.pop(0) if _T.scripts else ("", {})
    kind, opts = script
    if kind == "stall":  # the answer comes after the client gave up; placed or never acted on
        with _T.lock:
            result = _send(request) if opts.get("placed") else None
        _time.sleep(opts.get("delay", 1.0))
        return result
    with _T.lock:
        if kind == "retcode":
            return _result(opts["retcode"], request)
        if kind == "ipc_timeout":
            if opts.get("placed"):
                _send(request)
            _T.fail(RES_E_INTERNAL_FAIL_TIMEOUT, "IPC timeout")
            return None
        return _send(request)


def _send(req: dict[str, Any]) -> Any:
    action = req.get("action")
    if not _T.autotrading:
        return _result(TRADE_RETCODE_CLIENT_DISABLES_AT, req)
    if action == TRADE_ACTION_REMOVE:
        o = _T.orders.pop(int(req.get("order", 0)), None)
        if o is None:
            return _result(TRADE_RETCODE_INVALID_ORDER, req)
        o.state, o.time_done = ORDER_STATE_CANCELED, _T.server_now()
        _T.history_orders[o.ticket] = o
        return _result(TRADE_RETCODE_DONE, req, order=o.ticket)
    if action == TRADE_ACTION_MODIFY:
        o = _T.orders.get(int(req.get("order", 0)))
        if o is None:
            return _result(TRADE_RETCODE_INVALID_ORDER, req)
        o.price_open = float(req.get("price", o.price_open))
        o.sl, o.tp = float(req.get("sl", o.sl)), float(req.get("tp", o.tp))
        return _result(TRADE_RETCODE_DONE, req, order=o.ticket)
    if action == TRADE_ACTION_SLTP:
        p = _T.positions.get(int(req.get("position", 0)))
        if p is None:
            return _result(TRADE_RETCODE_INVALID, req)
        p.sl, p.tp = float(req.get("sl", 0.0)), float(req.get("tp", 0.0))
        return _result(TRADE_RETCODE_DONE, req)
    symbol = req.get("symbol")
    spec = _T.symbols.get(symbol)  # type: ignore[arg-type]
    if spec is None:
        _T.fail(RES_E_INVALID_PARAMS, "Invalid params")
        return None
    volume = float(req.get("volume", 0.0))
    steps = volume / spec.volume_step
    off_step = abs(steps - round(steps)) > 1e-6
    if volume < spec.volume_min - 1e-9 or volume > spec.volume_max or off_step:
        return _result(TRADE_RETCODE_INVALID_VOLUME, req)
    if spec.trade_mode == SYMBOL_TRADE_MODE_DISABLED:
        return _result(TRADE_RETCODE_MARKET_CLOSED, req)
    otype = int(req.get("type", -1))
    bid, ask = _T.tick_of(symbol)  # type: ignore[arg-type]
    ticket = _T.ticket()
    comment = _T.broker_comment(str(req.get("comment", "")), ticket)
    magic = int(req.get("magic", 0))
    if action == TRADE_ACTION_DEAL:
        if otype not in (ORDER_TYPE_BUY, ORDER_TYPE_SELL):
            return _result(TRADE_RETCODE_INVALID_ORDER, req)
        if int(req.get("type_filling", ORDER_FILLING_FOK)) + 1 not in (1, 2) or not (
                spec.filling_mode & (1 << int(req.get("type_filling", 0)))):
            return _result(TRADE_RETCODE_INVALID_FILL, req)
        price = ask if otype == ORDER_TYPE_BUY else bid
        asked = float(req.get("price", 0.0) or 0.0)
        deviation = int(req.get("deviation", 0)) * 10.0 ** -spec.digits
        if asked and abs(asked - price) > deviation + 1e-12:
            return _result(TRADE_RETCODE_REQUOTE, req)
        position = int(req.get("position", 0) or 0)
        if not position and _T.margin_for(symbol, volume, price) > _T.equity() - _T.margin():
            return _result(TRADE_RETCODE_NO_MONEY, req, comment="No money")
        order = _Order(ticket, symbol, otype, volume, 0.0, price, magic, comment,
                       _T.server_now(), state=ORDER_STATE_FILLED, time_done=_T.server_now())
        deal = _T.execute(symbol, otype, volume, price, order=ticket, magic=magic,
                          comment=comment, reason=DEAL_REASON_EXPERT, position=position)
        order.position_id = deal.position_id
        _T.history_orders[ticket] = order
        pos = _T.positions.get(deal.position_id)
        if pos is not None and deal.entry == DEAL_ENTRY_IN:
            pos.sl, pos.tp = float(req.get("sl", 0.0)), float(req.get("tp", 0.0))
        return _result(TRADE_RETCODE_DONE, req, deal=deal.ticket, order=ticket, volume=volume,
                       price=price)
    if action == TRADE_ACTION_PENDING:
        if otype not in range(2, 8):
            return _result(TRADE_RETCODE_INVALID_ORDER, req)
        price = float(req.get("price", 0.0))
        if price <= 0:
            return _result(TRADE_RETCODE_INVALID_PRICE, req)
        if _T.margin_for(symbol, volume, price) > _T.equity() - _T.margin():
            return _result(TRADE_RETCODE_NO_MONEY, req, comment="No money")
        _T.orders[ticket] = _Order(ticket, symbol, otype, volume, volume, price, magic, comment,
                                   _T.server_now(), float(req.get("sl", 0.0)),
                                   float(req.get("tp", 0.0)), float(req.get("stoplimit", 0.0)))
        return _result(TRADE_RETCODE_PLACED, req, order=ticket, volume=volume, price=price)
    return _result(TRADE_RETCODE_INVALID, req)


# -- test controls (reached over a second connection; plain values in and out) ------------
def _reset(**settings: Any) -> None:
    """A fresh terminal; ``settings`` override ``Terminal`` fields (hedging, balance, ...)."""
    global _T
    _T = Terminal(**settings)


def _add_symbol(name: str, bid: float, spread: float, **spec: Any) -> None:
    with _T.lock:
        _T.symbols[name] = Spec(name, bid, spread, **spec)


def _set(**fields: Any) -> None:
    """Change terminal fields (now, comment_mode, autotrading, down, balance, ...)."""
    with _T.lock:
        for k, v in fields.items():
            setattr(_T, k, v)


def _get(name: str) -> Any:
    with _T.lock:
        return getattr(_T, name)


def _set_tick(symbol: str, bid: float, spread: float | None = None) -> None:
    with _T.lock:
        spec = _T.symbols[symbol]
        spec.bid = bid
        if spread is not None:
            spec.spread = spread


def _set_symbol(symbol: str, **fields: Any) -> None:
    with _T.lock:
        for k, v in fields.items():
            setattr(_T.symbols[symbol], k, v)


def _set_rates(symbol: str, rows: list[tuple[Any, ...]]) -> None:
    """The symbol's whole bar history: rows of (server-time open s, o, h, l, c, volume)."""
    with _T.lock:
        _T.rates[symbol] = sorted((int(r[0]), *map(float, r[1:])) for r in rows)


def _script(kind: str, **opts: Any) -> None:
    """The next ``order_send`` meets ``kind``: retcode, ipc_timeout, stall (see order_send)."""
    with _T.lock:
        _T.scripts.append((kind, opts))


def _fill(ticket: int, volume: float | None = None, price: float | None = None) -> int:
    """Execute a working pending order (all or part); returns the deal ticket."""
    with _T.lock:
        o = _T.orders[ticket]
        return _T.fill_pending(o, volume or o.volume_current, price or o.price_open).ticket


def _order_by_comment(comment: str) -> int:
    with _T.lock:
        for o in [*_T.orders.values(), *_T.history_orders.values()]:
            if o.comment == comment:
                return o.ticket
        raise KeyError(comment)


def _set_stops(position: int, sl: float = 0.0, tp: float = 0.0) -> None:
    """Give a position a stop loss / take profit (as a TRADE_ACTION_SLTP would)."""
    with _T.lock:
        p = _T.positions[position]
        p.sl, p.tp = sl, tp


def _hit(position: int, which: str) -> int:
    """The position's SL or TP is hit: the server closes it; returns the deal ticket."""
    with _T.lock:
        p = _T.positions[position]
        price = p.sl if which == "sl" else p.tp
        side = ORDER_TYPE_SELL if p.type == POSITION_TYPE_BUY else ORDER_TYPE_BUY
        reason = DEAL_REASON_SL if which == "sl" else DEAL_REASON_TP
        ticket = _T.ticket()
        order = _Order(ticket, p.symbol, side, p.volume, 0.0, price, p.magic,
                       f"[{which} {price}]", _T.server_now(), state=ORDER_STATE_FILLED,
                       time_done=_T.server_now(), position_id=p.ticket)
        _T.history_orders[ticket] = order
        return _T.execute(p.symbol, side, p.volume, price, order=ticket, magic=p.magic,
                          comment=f"[{which} {price}]", reason=reason, position=p.ticket).ticket


def _state() -> dict[str, Any]:
    """A plain snapshot for assertions."""
    with _T.lock:
        return {
            "orders": {o.ticket: (o.comment, o.state) for o in _T.orders.values()},
            "history_orders": {o.ticket: (o.comment, o.state)
                               for o in _T.history_orders.values()},
            "positions": {p.ticket: (p.symbol, p.type, p.volume)
                          for p in _T.positions.values()},
            "deals": [(d.ticket, d.order, d.symbol, d.volume, d.price) for d in _T.deals],
            "sends": [dict(s) for s in _T.sends],
            "calls": dict(_T.calls),
            "balance": _T.balance,
        }


def _drop_clients() -> int:
    """Cut every connection that logged in to the terminal (a terminal restart)."""
    import socket

    with _T.lock:
        victims = [c for tid, c in _SERVER_CONNECTIONS.items() if tid in _T.initialized]
        _T.initialized.clear()
    for conn in victims:
        try:
            conn._channel.stream.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    return len(victims)
