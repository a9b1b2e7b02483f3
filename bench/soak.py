"""A soak of the live daemon against an exchange stand-in with random faults.

``run_soak`` starts a stand-in venue on its own event loop (a thread), a live
``trader run`` child process trading a fast SmaCross on it through the real ccxt
gateway over loopback, and pushes ``minutes`` one-minute candles (time
compressed: forming updates a few tens of ms apart, the final one with Binance's
closed flag).  Between candles a seeded RNG injects faults: websocket drops,
torn frames on the market and order streams, a half-open (muted) venue, 429
with ``Retry-After`` on order POSTs and lookups, a short 418 ban, stalled POSTs
(executed or not), -1006 with the order not placed, truncated 200 bodies.

Then it waits until no stored order is still in flight, stops the daemon with
SIGTERM and checks the kernel against the venue's own record (``check``):
orders, fills, positions, no order placed twice, one journal bar per minute.
The counts are returned (and printed by the callers).
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from gateways.testing.harness import (
    ANCHOR_MS,
    FAST_TIMING,
    HARNESSES,
    MINUTE_MS,
    VenueThread,
    wait_for,
)
from gateways.testing.standin import Fault, MarketSpec

WARMUP_BARS = 8
IN_FLIGHT = ("PENDING_SUBMIT", "SUBMITTED", "OUTCOME_UNKNOWN")
# gateway log events counted in the report
HEALTH_EVENTS = ("bar_stream_error", "bar_stream_stalled", "order_stream_error",
                 "order_stream_stalled", "submit_outcome_unknown", "submit_rate_limited",
                 "order_lost", "bad_candle_skipped", "bad_candle_update", "stream_loop_crashed",
                 "submit_task_error", "gateway_task_failed")


@dataclass
class SoakReport:
    venue: str
    seed: int
    minutes: int
    counts: dict[str, int] = field(default_factory=dict)
    faults: Counter[str] = field(default_factory=Counter)
    health: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"soak {self.venue}: seed={self.seed} minutes={self.minutes} "
               f"wall={self.seconds:.1f}s"]
        out.append("  " + " ".join(f"{k}={v}" for k, v in self.counts.items()))
        out.append("  faults injected: " + (" ".join(
            f"{k}={v}" for k, v in sorted(self.faults.items())) or "none"))
        out.append("  gateway events: " + (" ".join(
            f"{k}={v}" for k, v in sorted(self.health.items())) or "none"))
        return out


def log_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text()
    lines = text.split("\n")
    if not text.endswith("\n"):
        lines = lines[:-1]
    out = []
    for x in lines:
        if x.strip():
            try:
                out.append(json.loads(x))
            except json.JSONDecodeError:
                continue  # a plain-text line (an error on stderr)
    return out


def register_stages(config: Path) -> None:
    """Promote each model to its YAML stage (live needs it), as an operator does: forced and
    on record, through ``trader models promote``."""
    from models.lifecycle import STAGES
    from trader.engine.config import load_config, resolve_data_dir

    cfg = load_config(config)
    resolve_data_dir(cfg).mkdir(parents=True, exist_ok=True)  # the deployment starts here
    for m in cfg.models:
        for _ in range(STAGES.index(m.stage)):
            subprocess.run([sys.executable, "-m", "trader.cli", "models", "promote", m.name,
                            "--config", str(config), "--reason", "soak set-up", "--operator",
                            "soak", "--confirm", "--force"], check=True,
                           stdout=subprocess.DEVNULL)


def prices(minutes: int, rng: random.Random) -> list[float]:
    """Closes that make SmaCross(2, 5) cross often: a 5-minute wave plus noise."""
    return [round(100.0 + 12.0 * math.sin(2 * math.pi * k / 5) + rng.uniform(-3, 3), 1)
            for k in range(minutes)]


def write_config(tmp: Path, venue: VenueThread) -> Path:
    h = venue.h
    timing = FAST_TIMING.model_copy(update={"request_timeout_ms": 500}).model_dump()
    section = {
        "exchange": h.venue, "symbols": {h.symbol: h.instrument_id}, "timeframe": "1m",
        "urls": venue.standin.urls(), "rate_limit": False, "timing": timing,
        "bar_band": 5.0,
        "credentials": {"api_key_env": "TEST_VENUE_KEY", "secret_env": "TEST_VENUE_SECRET"},
    }
    if h.venue == "kraken":
        # Kraken's lockout names no end, so the gateway pauses ``ban_pause_s`` (60 s by
        # default); time compressed like the stand-in's 1-2 s lockouts
        section["limits"] = {"ban_pause_s": 2.5}
    cfg = {
        "name": f"soak-{h.venue}",
        "portfolio": {"initial_cash": 100000},
        "execution": {"slippage_bps": 2, "commission_bps": 1, "fee_per_order": 1.0},
        "instruments": [
            {"id": h.instrument_id, "symbol": h.symbol, "venue": h.venue.upper(),
             "tick_size": 0.1, "lot_step": 0.001, "min_quantity": 0.001,
             "asset_class": "crypto"},
        ],
        "models": [
            {"name": "fast", "model": "SmaCross", "stage": "live", "budget": 0.3,
             "instruments": [h.instrument_id], "timeframe": "1m",
             "params": {"fast": 2, "slow": 5}, "gateway": h.venue},
        ],
        "gateways": {h.venue: section},
        "daemon": {"data_dir": str(tmp / "data"), "market_data": h.venue,
                   "warmup_bars": WARMUP_BARS, "status_interval": 0.2,
                   "shutdown_timeout": 15},
    }
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    register_stages(path)
    return path


def forming(t_ms: int, open_: float, close: float, n: int) -> list[list[float]]:
    """``n`` updates of one candle walking from ``open_`` to ``close``."""
    out: list[list[float]] = []
    hi = lo = open_
    for i in range(1, n + 1):
        p = round(open_ + (close - open_) * i / n, 1)
        hi, lo = max(hi, p), min(lo, p)
        out.append([float(t_ms), open_, hi, lo, p, float(i)])
    return out


class Injector:
    """Random faults, one draw per minute, from a seeded RNG."""

    ORDER_FAULTS = ("rate_limit", "ban", "stall_after", "stall_before", "error_before",
                    "error_after", "truncated_after", "truncated_before")
    STREAM_FAULTS = ("drop", "torn_market", "torn_order", "mute")

    def __init__(self, venue: VenueThread, rng: random.Random) -> None:
        self.v = venue
        self.rng = rng
        self.queued: Counter[str] = Counter()
        self.applied: Counter[str] = Counter()
        self.h = venue.h

    def order_fault(self, kind: str) -> Fault:
        if kind == "rate_limit":
            return Fault("rate_limit", retry_after=round(self.rng.uniform(0.2, 1.0), 1))
        if kind == "ban":
            return Fault("ban", delay=round(self.rng.uniform(1.0, 2.0), 1))
        if kind in ("stall_after", "stall_before"):
            return Fault(kind, delay=1.0)
        if kind == "error_before":
            return Fault("error_before", code=self.rng.choice([-1006, -1000]))
        return Fault(kind)

    async def draw(self, minute_open_ms: int, price: float) -> None:
        s = self.v.standin
        rng = self.rng
        # an order fault waits for the next order POST (or lookup), one at a time
        pending = sum(len(q) for q in s.faults.values())
        if pending == 0 and rng.random() < 0.6:
            kind = rng.choice(self.ORDER_FAULTS)
            if kind == "rate_limit" and rng.random() < 0.5:
                # on the follow-up lookup too: the POST times out, the lookup is throttled
                s.script(self.h.create_endpoint, Fault("stall_after", delay=1.0))
                s.script(self.h.lookup_endpoints[0], self.order_fault("rate_limit"))
                self.queued["stall_after"] += 1
                self.queued["rate_limit_lookup"] += 1
            else:
                s.script(self.h.create_endpoint, self.order_fault(kind))
                self.queued[kind] += 1
        if rng.random() < 0.5:
            kind = rng.choice(self.STREAM_FAULTS)
            self.applied[kind] += 1
            if kind == "drop":
                await s.drop_connections()
            elif kind == "torn_market":
                candle = [float(minute_open_ms), price, price, price, price, 1.0]
                if self.h.venue == "kraken":
                    text = json.dumps(s.ohlc_message(self.h.venue_id,  # type: ignore[attr-defined]
                                                     candle))
                else:
                    text = s.kline_message(self.h.venue_id,  # type: ignore[attr-defined]
                                           candle, False)
                await s.push_raw(text[: len(text) // 2], private=False)
            elif kind == "torn_order":
                await s.push_truncated(self.torn_order_event(), private=True)
            elif kind == "mute":
                s.muted = True
                await asyncio.sleep(rng.uniform(1.0, 2.5))
                s.muted = False

    def torn_order_event(self) -> dict[str, Any]:
        """An order-stream frame (to be cut short) in the venue's shape."""
        s = self.v.standin
        if self.h.venue == "kraken":
            return {"channel": "executions", "type": "update", "sequence": s.next_id(),
                    "data": [{"order_id": "OTORN-TORN0-TORNKRK", "cl_ord_id": "torn",
                              "exec_type": "trade", "order_status": "filled",
                              "symbol": self.h.symbol, "side": "buy"}]}
        return {"subscriptionId": 0, "event": {
            "e": "executionReport", "E": s.now_ms(), "s": self.h.venue_id,
            "c": "torn", "x": "TRADE", "X": "FILLED"}}

    def injected(self) -> Counter[str]:
        """Order faults actually consumed by a request, plus the stream faults."""
        s = self.v.standin
        left: Counter[str] = Counter()
        for q in s.faults.values():
            for f in q:
                left[f.kind] += 1
        out = Counter(self.applied)
        for kind, n in self.queued.items():
            base = "rate_limit" if kind == "rate_limit_lookup" else kind
            # lookups left unconsumed count against the lookup kind first
            used = n - min(n, left[base])
            left[base] -= n - used
            if used:
                out[kind] += used
        return out


def run_soak(tmp: Path, *, venue: str = "binance", minutes: int = 12, seed: int = 1,
             updates: int = 4, every_s: float = 0.05,
             out: Callable[[str], None] | None = None) -> SoakReport:
    """Run the soak in ``tmp`` and check it; returns the counts (raises on a mismatch)."""
    rng = random.Random(seed)
    report = SoakReport(venue, seed, minutes)
    started = time.monotonic()
    tmp.mkdir(parents=True, exist_ok=True)
    spec = MarketSpec(HARNESSES[venue].venue_id, "BTC", "USDT" if venue == "binance" else "USD",
                      0.1, 0.001, 0.001, 5.0, 100.0)
    v = VenueThread(venue, [spec])
    s = v.standin
    quote = spec.quote
    # Kraken's quote is the kernel's cash currency (USD): it must match the portfolio's
    s.balances.update({quote: 10_000_000.0 if quote != "USD" else 100_000.0, "BTC": 0.0})
    if venue == "binance":
        s.fee_mode = "received"  # Binance without BNB: a buy's fee comes out of the base
    closes = prices(minutes, rng)
    history_px = [100.0 + 12.0 * math.sin(2 * math.pi * k / 5) for k in range(-WARMUP_BARS - 4, 0)]
    s.set_series(v.h.venue_id, [
        forming(ANCHOR_MS + k * MINUTE_MS, p, p, 1)[0]
        for k, p in zip(range(-len(history_px), 0), history_px, strict=True)])
    cfg = write_config(tmp, v)
    log_path = tmp / "daemon.log"
    env = {k: val for k, val in os.environ.items() if k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC")}
    env.update({"TEST_VENUE_KEY": s.api_key, "TEST_VENUE_SECRET": s.secret})
    inj = Injector(v, rng)
    # Kraken has no closed flag: its bars close at the next candle or on the venue's clock
    clocked = venue == "kraken"
    with open(log_path, "wb") as fh:
        proc = subprocess.Popen(
            [sys.executable, "-m", "trader.cli", "run", "--config", str(cfg), "--mode", "live",
             "--confirm"], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=str(tmp))
    try:
        try:
            wait_for(lambda: any(x.get("event") == "ready_notified"
                                 for x in log_lines(log_path)), 60, "the daemon's READY")
            wait_for(lambda: bool(s.market_ws) and bool(s.subscriptions), 20,
                     "the bar subscription")
        except AssertionError:
            raise AssertionError(log_path.read_text()[-4000:]) from None
        prev = history_px[-1]
        for k, close in enumerate(closes):
            t_ms = ANCHOR_MS + k * MINUTE_MS
            if clocked:
                # no closed flag: the venue's clock reaches the candle's open as it starts
                # (so the previous one is over by the clock too), and stays inside it
                s.set_clock(t_ms)
            v.call(s.stream_forming(v.h.venue_id, forming(t_ms, prev, close, updates),
                                    every_s=every_s))
            prev = close
            time.sleep(0.15)  # the bar closes, the model decides, the order goes out
            v.call(inj.draw(t_ms, close))
            if proc.poll() is not None:
                raise AssertionError("daemon exited during the soak:\n"
                                     + log_path.read_text()[-4000:])
        # the last candle stays forming: one more update opens the next minute, so the
        # stream (not only the x flag) has closed every pushed minute
        t_end = ANCHOR_MS + minutes * MINUTE_MS
        if clocked:
            s.set_clock(t_end)
        v.call(s.push_candle(v.h.venue_id, forming(t_end, prev, prev, 1)[0]))
        data_dir = tmp / "data"
        try:
            wait_for(lambda: _settled(data_dir, minutes, t_end, s), 60,
                     "every order to have the venue's outcome and every bar to arrive")
        except AssertionError:
            pass  # never settled: the check below names the order or bar that differs
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        v.close()
    text = log_path.read_text()
    assert code == 0, f"daemon exit {code}:\n{text[-4000:]}"
    report.faults = inj.injected()
    check(report, v, tmp, closes, log_path)
    report.seconds = time.monotonic() - started
    if out is not None:
        for line in report.lines():
            out(line)
    return report


def _store(data_dir: Path) -> Any:
    from trader.store import open_store

    return open_store(None, data_dir)


def _settled(data_dir: Path, minutes: int, t_end: int, standin: Any) -> bool:
    """No order in flight in the store, every order the venue has finished finished in the
    store too, and the journal has a bar for the last minute.

    An order the venue filled may still show ACCEPTED while its fill is on the way
    (a loaded machine delays the private stream); stopping the daemon then would leave
    the fill to the next start's reconciliation, and the check below would see a
    difference that is only a matter of waiting.
    """
    if not (data_dir / "trader.db").exists():
        return False
    store = _store(data_dir)
    try:
        rows = {r["client_order_id"]: r for r in store.order_rows()}
    finally:
        store.close()
    if any(r["status"] in IN_FLIGHT for r in rows.values()):
        return False
    finished = {"closed": "FILLED", "canceled": "CANCELED"}
    for o in list(standin.orders.values()):  # the venue thread's dict, copied
        want = finished.get(o.status)
        row = rows.get(o.client_order_id)
        if want is not None and (row is None or row["status"] != want):
            return False
    bars = _journal_bars(data_dir)
    return any(b.ts_open == (t_end - MINUTE_MS) * 1_000_000 for b in bars)


def _journal_bars(data_dir: Path) -> list[Any]:
    from trader.core.events import Bar
    from trader.live.journal import read_journal

    out = []
    for path in sorted((data_dir / "journal").glob("*.journal")):
        out.extend(r for r in read_journal(path).records if isinstance(r, Bar))
    return out


def check(report: SoakReport, v: VenueThread, tmp: Path, closes: list[float],
          log_path: Path) -> None:
    """The kernel's record equals the venue's; every order has an outcome; bars complete."""
    s = v.standin
    h = v.h
    data_dir = tmp / "data"
    store = _store(data_dir)
    try:
        rows = store.order_rows()
        fills = store.fills()
        positions = store.positions(mode="live")
    finally:
        store.close()
    lines = log_lines(log_path)
    by_coid = {r["client_order_id"]: r for r in rows}
    venue_orders = {o.client_order_id: o for o in s.orders.values()}

    # no order without an outcome
    stuck = [(r["client_order_id"], r["status"]) for r in rows if r["status"] in IN_FLIGHT]
    assert not stuck, f"orders without an outcome: {stuck}"
    # no order placed twice, and none the kernel does not know
    placed = Counter(o.client_order_id for o in s.orders.values())
    twice = [c for c, n in placed.items() if n > 1]
    assert not twice, f"placed more than once at the venue: {twice}"
    strangers = sorted(set(venue_orders) - set(by_coid))
    assert not strangers, f"orders at the venue the kernel does not know: {strangers}"
    # each order's status and filled quantity as the venue has it
    for coid, r in by_coid.items():
        o = venue_orders.get(coid)
        if o is None:
            assert r["status"] in ("REJECTED", "EXPIRED"), (coid, r["status"], "not at venue")
            assert r["filled_quantity"] == 0.0, (coid, r)
            continue
        want = {"closed": "FILLED", "canceled": "CANCELED",
                "open": "PARTIALLY_FILLED" if o.filled else "ACCEPTED"}[o.status]
        assert r["status"] == want, (coid, r["status"], o)
        assert math.isclose(r["filled_quantity"], o.filled, abs_tol=1e-9), (coid, r, o)
    # fills == the venue's trades of our orders (ids, quantities, prices, fees)
    coid_of = {o.order_id: o.client_order_id for o in s.orders.values()}
    venue_fills = sorted((t.trade_id, coid_of[t.order_id], round(t.qty, 9), round(t.price, 9),
                          t.side.upper()) for t in s.trades)
    kernel_fills = sorted((f.trade_id, f.client_order_id, round(f.quantity, 9),
                           round(f.price, 9), str(f.side).upper()) for f in fills)
    assert kernel_fills == venue_fills, (kernel_fills, venue_fills)
    # positions: the kernel's (store and final status.json) == the venue's base balance
    wallet = s.balances.get("BTC", 0.0)
    held = positions.get(h.instrument_id, 0.0)
    assert math.isclose(held, wallet, abs_tol=1e-6), (positions, wallet)
    status = json.loads((data_dir / "status.json").read_text())
    status_pos = status.get("positions") or {}
    assert math.isclose(float(status_pos.get(h.instrument_id, 0.0)), wallet, abs_tol=1e-6), (
        status_pos, wallet)
    # bars: one per pushed minute, in order, none missing or twice
    bars = [b for b in _journal_bars(data_dir) if b.instrument_id == h.instrument_id]
    live = [b for b in bars if b.ts_open >= ANCHOR_MS * 1_000_000]
    opens = [b.ts_open // 1_000_000 for b in live]
    want_opens = [ANCHOR_MS + k * MINUTE_MS for k in range(len(closes))]
    dup = [t for t, n in Counter(opens).items() if n > 1]
    assert not dup, f"bars journalled twice: {dup}"
    missing = sorted(set(want_opens) - set(opens))
    assert opens == want_opens, f"bars missing or out of order (missing {missing})"
    assert [b.close for b in live] == closes, "a journalled bar is not the venue's final candle"

    statuses = Counter(r["status"] for r in rows)
    report.counts = {
        "orders": len(rows), **{f"orders_{k.lower()}": n for k, n in sorted(statuses.items())},
        "venue_orders": len(venue_orders), "fills": len(fills), "venue_trades": len(s.trades),
        "position_btc": round(held, 6), "bars": len(live), "warmup_bars": len(bars) - len(live),
        "order_posts": len(h.creates()), "refused_in_ban": s.refused_in_ban,
        # Kraken refuses a private request whose nonce is not above the last one it saw
        "nonce_refusals": getattr(s, "nonce_refusals", 0),
        "private_subscriptions": s.private_subscriptions(),  # type: ignore[attr-defined]
    }
    report.health = Counter(x["event"] for x in lines if x.get("event") in HEALTH_EVENTS)
    for x in lines:
        if x.get("event") == "gateway_health":
            report.health[f"health:{x.get('state')}"] += 1
