"""Tick-to-trade latency on the live path, and the daemon's start-to-READY time.

Latency: a steady stream of one-minute bars on many instruments is handed by a
gateway task to ``Kernel.post``; each bar makes a model flip its target, so each
bar ends in an order.  Measured from the moment the gateway task hands the bar
over to the moment the order reaches the execution gateway's ``submit`` (through
the inbox, ``run_async``, journal, portfolio, aggregator, model, allocator,
planner, risk and router — the daemon's wiring, journal included).  The baseline
is the same bars and orders through the replay path (``Kernel.run``, no loop,
no journal) in the same process; the ratio says what the live path costs on top.

Start-to-READY: ``trader run --config config/paper.yaml --mode paper`` as a child
process with a NOTIFY_SOCKET; from spawn to the ``READY=1`` datagram.

    .venv/bin/python bench/tick_to_trade.py                  # 100 instruments, 2000 bars/s
    .venv/bin/python bench/tick_to_trade.py --instruments 50 --rate 5000 --seconds 3
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateways.sim import SimulatedGateway  # noqa: E402
from models.base import Model  # noqa: E402
from models.registry import MODEL_CLASSES  # noqa: E402
from trader.core.clock import LiveClock, ReplayClock  # noqa: E402
from trader.core.events import Bar  # noqa: E402
from trader.engine.build import make_sim  # noqa: E402
from trader.engine.config import AppConfig  # noqa: E402
from trader.live.journal import JournalHeader, JournalWriter  # noqa: E402
from trader.live.session import build_session  # noqa: E402

MINUTE_NS = 60_000_000_000


class Flip(Model):
    """Alternates long and short on every bar: one order per bar, the worst case."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._sign = {i: 1.0 for i in self.instruments}

    def on_bar(self, bar: Bar) -> dict[str, float]:
        s = self._sign[bar.instrument_id] = -self._sign[bar.instrument_id]
        return {bar.instrument_id: s}


MODEL_CLASSES["BenchFlip"] = Flip


def config(n_inst: int) -> AppConfig:
    insts = [{"id": f"I{i:04d}", "symbol": f"I{i:04d}", "venue": "SIM", "asset_class": "equity",
              "tick_size": 0.01, "lot_step": 1, "min_quantity": 1,
              "data": {"path": "unused.parquet", "timeframe": "1m"}} for i in range(n_inst)]
    return AppConfig.model_validate({
        "name": "bench", "portfolio": {"initial_cash": 1e9},
        "instruments": insts,
        "models": [{"name": "flip", "model": "BenchFlip", "stage": "paper", "budget": 0.5,
                    "instruments": [i["id"] for i in insts], "timeframe": "1m"}],
        # Every instrument decides on the same bar time: event-time order-rate and duplicate
        # limits would reject most of the stream, leaving nothing to measure.
        "risk": {"order_rate": {"per_second": None, "per_minute": None},
                 "duplicate": {"window_seconds": None}},
    })


def bars(n_inst: int, rounds: int) -> list[Bar]:
    out = []
    t0 = 1_600_000_000 * 1_000_000_000
    for r in range(rounds):
        for i in range(n_inst):
            p = 100.0 + (r % 7) + i * 0.01
            ts_open = t0 + r * MINUTE_NS
            out.append(Bar(ts_open + MINUTE_NS, f"I{i:04d}", 60, ts_open, p, p + 1, p - 1, p, 1e3))
    return out


class TimedSim(SimulatedGateway):
    """The simulated exchange, noting when each order reaches ``submit``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.arrivals: dict[tuple[str, int], int] = {}

    def submit(self, order) -> None:  # noqa: ANN001
        self.arrivals[(order.instrument_id, order.ts)] = time.perf_counter_ns()
        super().submit(order)


def timed_sim(cfg: AppConfig) -> TimedSim:
    base = make_sim(cfg)
    return TimedSim(base.instruments, base.costs, base_timeframes=base._base,
                    initial_cash=cfg.portfolio.initial_cash)


def pct(values: list[int], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(q * len(s)))] / 1000.0


async def live_run(cfg: AppConfig, stream: list[Bar], rate: float, journal_dir: Path,
                   with_journal: bool = True, with_store: bool = False,
                   store_sync: str = "FULL") -> list[int]:
    sim = timed_sim(cfg)
    session = build_session(cfg, LiveClock(), mode="paper", id_prefix="B",
                            gateways={"sim": sim})
    engine = session.engine
    store = None
    if with_store:  # the store's write-ahead: each order committed before it is sent
        from trader.store import Store  # type: ignore[import-not-found]

        store = Store.open(None, str(journal_dir / f"db-{time.monotonic_ns()}"),
                           sqlite_synchronous=store_sync)
        info = store.begin_session("paper", "bench", time.time_ns())
        engine.router.journal = store.journal(info, marks=engine.portfolio.marks)
    kernel = engine.kernel
    kernel.bind_loop(asyncio.get_running_loop())
    journal = JournalWriter(journal_dir / f"bench-{time.monotonic_ns()}.journal",
                            JournalHeader(1, "bench", "paper", "bench", 0, "B"))
    if with_journal:  # as the daemon does: every event, and write-ahead before each order
        kernel.consumers.append(journal.append)
        engine.router.order_listeners.insert(0, lambda o: (journal.append(o.request),
                                                           journal.flush()))
    engine.pipeline.trading = True
    sent: dict[tuple[str, int], int] = {}
    stop = asyncio.Event()

    async def gateway_task() -> None:
        post = kernel.post
        clock = time.perf_counter
        interval = 1.0 / rate
        start = clock()
        for k, bar in enumerate(stream):
            due = start + k * interval
            delay = due - clock()
            if delay > 0:
                await asyncio.sleep(delay)
            sent[(bar.instrument_id, bar.ts)] = time.perf_counter_ns()
            post(bar)
        while kernel.pending():
            await asyncio.sleep(0.001)
        stop.set()

    await asyncio.gather(kernel.run_async(stop), gateway_task())
    journal.close()
    if store is not None:
        store.close()
    return [sim.arrivals[k] - t for k, t in sent.items() if k in sim.arrivals]


def replay_run(cfg: AppConfig, stream: list[Bar]) -> list[int]:
    """Baseline: the same bars through Kernel.run; latency from dispatch to submit."""
    sim = timed_sim(cfg)
    session = build_session(cfg, ReplayClock(), mode="paper", id_prefix="B",
                            gateways={"sim": sim})
    engine = session.engine
    engine.pipeline.trading = True
    sent: dict[tuple[str, int], int] = {}

    def stamped():
        for bar in stream:
            sent[(bar.instrument_id, bar.ts)] = time.perf_counter_ns()
            yield bar

    engine.kernel.run(stamped())
    return [sim.arrivals[k] - t for k, t in sent.items() if k in sim.arrivals]


def start_to_ready(runs: int) -> list[float]:
    out = []
    for _ in range(runs):
        tmp = tempfile.mkdtemp(prefix="ttr", dir="/tmp")
        addr = os.path.join(tmp, "n")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(addr)
        sock.settimeout(30)
        env = dict(os.environ, NOTIFY_SOCKET=addr)
        config = str(ROOT / "config" / "paper.yaml")
        for model in ("btc_sma", "spy_sma"):  # sessions run registered models only
            subprocess.run([sys.executable, "-m", "trader.cli", "models", "promote", model,
                            "--config", config, "--data-dir", tmp, "--reason", "bench",
                            "--operator", "bench", "--force"], check=True,
                           stdout=subprocess.DEVNULL, cwd=str(ROOT))
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "trader.cli", "run", "--config",
             str(ROOT / "config" / "paper.yaml"), "--mode", "paper", "--data-dir", tmp],
            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=str(ROOT))
        try:
            while True:
                msg = sock.recv(4096).decode()
                if "READY=1" in msg.split("\n"):
                    out.append(time.perf_counter() - t0)
                    break
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=30)
            sock.close()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--instruments", type=int, default=100)
    ap.add_argument("--rate", type=float, default=2_000, help="bars per second")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--ready-runs", type=int, default=3)
    ap.add_argument("--store", action="store_true",
                    help="also measure with the store's write-ahead journal (SQLite)")
    ap.add_argument("--store-rate", type=float, default=50, help="bars per second with --store")
    args = ap.parse_args()
    try:
        import uvloop
        loop_name = f"uvloop {uvloop.__version__}"
        runner = uvloop.run
    except ImportError:
        loop_name, runner = "asyncio", asyncio.run

    # As in the daemon: JSON log lines (here to /dev/null, so the terminal is not measured).
    from trader.core.logging import configure_logging

    configure_logging("info", stream=open(os.devnull, "w"))  # noqa: SIM115 - process lifetime
    cfg = config(args.instruments)
    rounds = max(20, int(args.rate * args.seconds / args.instruments))
    stream = bars(args.instruments, rounds)
    with tempfile.TemporaryDirectory() as tmp:
        runner(live_run(cfg, stream[: args.instruments * 10], args.rate, Path(tmp)))  # warm up
        live = runner(live_run(cfg, stream, args.rate, Path(tmp)))
        nojournal = runner(live_run(cfg, stream, args.rate, Path(tmp), with_journal=False))
        # The store commits per write: measured at a rate it sustains, else the queue
        # (not the store) dominates the figures.
        slow = stream[: max(args.instruments, int(args.store_rate * args.seconds))]
        stored = {sync: runner(live_run(cfg, slow, args.store_rate, Path(tmp), with_store=True,
                                        store_sync=sync))
                  for sync in (("FULL", "NORMAL") if args.store else ())}
    base = replay_run(cfg, stream)
    print(f"tick-to-trade, {args.instruments} instruments, {len(stream):,} bars at "
          f"{args.rate:,.0f} bars/s ({loop_name}); one order per bar")
    print(f"  live path   (post -> inbox -> run_async -> ... -> submit, journal on): "
          f"n={len(live):,}  p50 {pct(live, .5):8.1f} us  p99 {pct(live, .99):8.1f} us  "
          f"max {max(live) / 1000:8.1f} us")
    print(f"  live path without the journal:                                       "
          f"n={len(nojournal):,}  p50 {pct(nojournal, .5):8.1f} us  "
          f"p99 {pct(nojournal, .99):8.1f} us")
    for sync, lat in stored.items():
        print(f"  live path + store write-ahead (SQLite, synchronous={sync:6}) "
              f"at {args.store_rate:g} bars/s: "
              f"n={len(lat):,}  p50 {pct(lat, .5):8.1f} us  p99 {pct(lat, .99):8.1f} us")
    print(f"  replay path (Kernel.run dispatch -> ... -> submit, baseline):        "
          f"n={len(base):,}  p50 {pct(base, .5):8.1f} us  p99 {pct(base, .99):8.1f} us")
    print(f"  ratio live/replay: p50 {pct(live, .5) / pct(base, .5):.2f}x  "
          f"p99 {pct(live, .99) / pct(base, .99):.2f}x   (target: live p99 < 1000 us)")
    if args.ready_runs:
        ready = start_to_ready(args.ready_runs)
        print(f"start-to-READY with config/paper.yaml ({args.ready_runs} runs): "
              f"min {min(ready):.3f} s  median {statistics.median(ready):.3f} s  "
              f"max {max(ready):.3f} s   (target < 2 s)")


if __name__ == "__main__":
    main()
