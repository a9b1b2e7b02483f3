"""The paper/live daemon: ``trader run``.

Start-up order: validate the config and mode -> open the data dir and store ->
connect gateways -> reconcile with the brokers -> warm the models up on history
(``runner.trading = False``) -> ``READY=1`` -> trade.  The kernel is the same as
in replay; only the clock (``LiveClock``), the source of bars (a market data
gateway posting to ``Kernel.post``) and the execution gateways differ.  The
source is ``daemon.market_data``: the replay-as-live gateway over the data files,
or a broker gateway that warms the models up from its history and then streams
its closed bars (connected without streams until the warm-up is done, so no bar
is both history and live).

Signals: SIGTERM/SIGINT stop new orders, optionally cancel open orders, drain
and flush, close the gateways and exit 0 (or 1 if that takes longer than
``daemon.shutdown_timeout``); a second SIGINT exits at once.  SIGHUP reloads
model parameters and stages without touching positions.
"""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import structlog

from gateways import registry
from gateways.base import GatewayConfigError, MarketData, check_horizon
from gateways.replay_live import ReplayLiveGateway
from gateways.sim import SimulatedGateway
from trader.core.clock import LiveClock
from trader.core.events import Bar, ns_to_iso
from trader.data.feed import feed_from_config, parse_time
from trader.engine.config import AppConfig, ConfigError, load_config, market_data_gateway
from trader.live.journal import JournalControl, JournalHeader, JournalWriter
from trader.live.kill_watch import FLAG_FILE, KillState, KillSwitchWatch
from trader.live.notify import Notifier, watchdog_interval
from trader.live.session import (
    MODE_STAGES,
    Session,
    apply_control,
    build_session,
    execution_gateways,
    gateway_context,
    header_models,
    make_sim,
    restore_state,
)
from trader.live.status import Snapshot, write_snapshot

log = structlog.get_logger("trader.live.daemon")

SIMULATED = {"sim"}


class Refused(ConfigError):
    """The daemon refuses to start in this mode with this config (message says why)."""


def check_start(cfg: AppConfig, mode: str, confirm: bool) -> None:
    """Refuse unsafe starts before anything is opened or connected."""
    if mode not in ("paper", "live"):
        raise Refused(f"--mode must be 'paper' or 'live', got {mode!r}")
    if mode == "live" and not confirm:
        raise Refused("live mode sends real orders with real money: "
                      "re-run with --confirm if that is what you want")
    allowed = MODE_STAGES[mode]
    wrong = [f"{m.name} (stage {m.stage})" for m in cfg.models if m.stage not in allowed]
    if wrong:
        raise Refused(
            f"--mode {mode} runs only models at stage {' or '.join(sorted(allowed))}; "
            f"refusing: {', '.join(wrong)} (promote them, or remove them from the config)"
        )
    if not cfg.models:
        raise Refused("the config has no models: nothing to run")
    names = execution_gateways(cfg)
    if mode == "live":
        sim = sorted(names & SIMULATED)
        if sim:
            raise Refused(f"live mode needs a broker execution gateway, but models route to "
                          f"{sim} (the simulator); use --mode paper for simulated execution")
    unknown = sorted(n for n in names - SIMULATED
                     if not registry.can_build(n, cfg.gateways.get(n)))
    if unknown:
        # Never simulate silently what the config names as a broker.
        raise Refused(f"models route orders to gateway(s) {unknown}, which this installation "
                      f"cannot build (brokers: {sorted(registry.brokers())}; set "
                      f"gateways.<name>.broker)")
    for name in sorted(names - SIMULATED):
        hint = registry.missing_extra(registry.broker_for(name, cfg.gateways.get(name)) or "")
        if hint:
            raise Refused(f"gateways.{name}: {hint}")
    check_market_data(cfg, names)


def check_market_data(cfg: AppConfig, execution: set[str]) -> None:
    """One source of bars: the market data gateway is buildable and no other gateway streams."""
    source = market_data_gateway(cfg)
    if source is not None and not registry.can_build(source, cfg.gateways.get(source)):
        raise Refused(f"daemon.market_data: gateway {source!r} cannot be built by this "
                      f"installation (brokers: {sorted(registry.brokers())})")
    for name in sorted(execution - SIMULATED - {source}):
        section = cfg.gateways.get(name) or {}
        if section.get("market_data", True) is not False:
            # Its bars would arrive next to the configured source's: every bar twice.
            raise Refused(f"gateways.{name}.market_data: {name!r} would stream bars although "
                          f"daemon.market_data is {cfg.daemon.market_data!r}; set "
                          f"gateways.{name}.market_data: false, or daemon.market_data: {name}")


def build_gateways(cfg: AppConfig) -> dict[str, Any]:
    """The execution gateways the models route to: the simulator or registered brokers."""
    out: dict[str, Any] = {}
    for name in sorted(execution_gateways(cfg) or SIMULATED):
        out[name] = make_sim(cfg, name) if name in SIMULATED else _build(cfg, name, True)
    return out


def build_market_data_gateway(cfg: AppConfig, name: str) -> Any:
    """A gateway that only streams bars: no model routes to it, so it trades nothing
    (``trading: false`` whatever its section says: no credentials, no order stream)."""
    return _build(cfg, name, False)


def _build(cfg: AppConfig, name: str, trading: bool) -> Any:
    """A broker gateway from the registry; its config errors become the daemon's."""
    try:
        return registry.build(name, cfg.gateways.get(name),
                              gateway_context(cfg, trading=trading))
    except GatewayConfigError as exc:
        raise ConfigError(str(exc)) from None


def new_session_id(mode: str) -> tuple[str, str]:
    """A session id and the client-order-id prefix derived from it (short, unique)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    tag = secrets.token_hex(2)
    return f"{mode}-{stamp}-{tag}", f"{mode[0].upper()}{stamp[2:8]}{stamp[9:]}{tag}"


def split_history(bars: Iterable[Bar], start_ns: int | None) -> tuple[list[Bar], Iterator[Bar]]:
    """Bars before ``start_ns`` (warm-up history) and an iterator over the rest (live)."""
    it = iter(bars)
    if start_ns is None:
        return [], it
    history: list[Bar] = []
    for bar in it:
        if bar.ts_open >= start_ns:
            def rest(first: Bar = bar) -> Iterator[Bar]:
                yield first
                yield from it
            return history, rest()
        history.append(bar)
    return history, iter(())


class Daemon:
    """One paper or live session, from start-up to a clean exit."""

    def __init__(self, cfg: AppConfig, mode: str, *, config_path: Path | None = None,
                 data_dir: Path | None = None, notifier: Notifier | None = None) -> None:
        self.cfg = cfg
        self.mode = mode
        self.dcfg = cfg.daemon
        self.config_path = config_path
        self.data_dir = Path(data_dir or self.dcfg.data_dir)
        self.notifier = notifier or Notifier()
        self.clock = LiveClock()
        self.state = "starting"
        self.session_id, self.id_prefix = new_session_id(mode)
        self.session: Session | None = None
        self.store: Any = None
        self.store_session: Any = None
        self.journal: JournalWriter | None = None
        self.feed: ReplayLiveGateway | None = None
        self.source: Any = None  # a market data gateway (daemon.market_data), if not replay
        self.kill = KillSwitchWatch(self._kill_switch_path())
        self.kill_engaged = False
        self.stop = asyncio.Event()
        self.exit_code = 0
        self._shutting_down = False
        self._exit_timer: threading.Timer | None = None
        self._sigint_count = 0
        self._tasks: list[asyncio.Task] = []
        self._last_bar: dict[str, tuple[int, float]] = {}  # inst -> (bar ts, monotonic arrival)
        self._stale: set[str] = set()
        self._bases: dict[str, int] = {}
        self._fills = 0
        self._orders = 0
        self.metrics: Any = None
        self.metrics_port: int | None = None

    def _kill_switch_path(self) -> Path:
        """The risk config's flag file when it names one, else ``<data_dir>/kill_switch.json``."""
        ks = getattr(getattr(self.cfg, "risk", None), "kill_switch", None)
        path = getattr(ks, "path", None)
        return Path(path) if path else self.data_dir / FLAG_FILE

    # -- control records: applied here and journaled, applied identically on replay --
    def control(self, kind: str, value: Any = None) -> None:
        rec = JournalControl(self.clock.now(), kind, value)
        if self.journal is not None:
            self.journal.append(rec)
        assert self.session is not None
        apply_control(self.session, rec)

    # -- life cycle -----------------------------------------------------------------------
    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        t0 = time.monotonic()
        self._install_signals(loop)
        self.notifier.status(f"mode={self.mode} state=starting")
        log.info("daemon_starting", mode=self.mode, config=self.cfg.name, session=self.session_id,
                 data_dir=str(self.data_dir), pid=os.getpid())
        try:
            self.data_dir.mkdir(parents=True, exist_ok=True)
            await self._start(loop)
        except Exception as exc:
            self.state = "failed"
            log.exception("daemon_start_failed", error=str(exc))
            self._write_status()
            await self._close_everything()
            # 2: a refusal or bad config, which a restart cannot fix (the units set
            # RestartPreventExitStatus=2); 1: anything else, worth a restart.
            return 2 if isinstance(exc, ConfigError) else 1
        log.info("daemon_ready", mode=self.mode, startup_s=round(time.monotonic() - t0, 3),
                 nav=self.session.engine.portfolio.nav if self.session else None)
        try:
            await self.session.engine.kernel.run_async(self.stop)  # type: ignore[union-attr]
        except Exception:
            log.exception("kernel_loop_failed")
            self.exit_code = 1
        await self._shutdown()
        return self.exit_code

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        cfg = self.cfg
        self._write_status()
        # 1. store: stages, a session row (unique client order ids), the fills so far
        start_seq = 0
        restored: list[Any] = []
        self.store = self._open_store()
        if self.store is not None:
            self._check_stored_stages()
            info = self.store_session = self.store.begin_session(self.mode, cfg.name,
                                                                 time.time_ns())
            self.id_prefix, start_seq = info.prefix, info.start_seq
            self.session_id = f"{self.mode}-{info.id}-{self.session_id.split('-', 1)[1]}"
            restored = list(self.store.fills())
            self._add_store_kill_switch()
        # 2. engine and gateways
        session = self.session = build_session(cfg, self.clock, mode=self.mode,
                                               id_prefix=self.id_prefix, start_seq=start_seq,
                                               gateways=build_gateways(cfg))
        engine = session.engine
        if self.store is not None:
            # Write-ahead: each order is stored (PENDING_SUBMIT) before a gateway sees it.
            engine.router.journal = self.store.journal(self.store_session,
                                                       marks=engine.portfolio.marks)
        if restored:
            restore_state(session, restored)
            log.info("state_restored", fills=len(restored),
                     positions={k: p.quantity for k, p in engine.portfolio.account.positions.items()
                                if p.quantity})
        kernel = engine.kernel
        kernel.queue_size = self.dcfg.queue_size
        kernel.bind_loop(loop)
        self._bases = {i: tf for i, tf in _bases(cfg).items()}
        history: list[Bar] = []
        source_name = market_data_gateway(cfg)
        if source_name is None:
            history, live = self._market_data()
            self.feed = ReplayLiveGateway(live, speed=_speed(self.dcfg.replay.speed),
                                          pending=kernel.pending)
            self.feed.bind(kernel.post)
        else:
            self.source = engine.gateways.get(source_name) or build_market_data_gateway(
                cfg, source_name)
            if not isinstance(self.source, MarketData):
                raise ConfigError(f"daemon.market_data: gateway {source_name!r} cannot stream "
                                  "bars (it has no history and bar stream)")
            self.source.bind(kernel.post)
        simulated = sorted(n for n, gw in engine.gateways.items()
                           if isinstance(gw, SimulatedGateway))
        for name, gw in engine.gateways.items():
            if name not in simulated:
                gw.bind(kernel.post)  # external brokers report through the live inbox
        # 3. connect; the market data gateway streams only after the warm-up (step 5)
        for gw in self._all_gateways():
            if gw is self.source:
                await gw.connect(stream=False)
            else:
                await gw.connect()
        # 4. reconcile; fills it adopts are part of the state the journal starts from
        adopted: list[Any] = []
        engine.router.fill_listeners.append(adopted.append)
        last = max((f.ts for f in restored), default=None)
        if self.store is not None and self.store_session is not None and last is not None:
            # the account was known until the previous session stopped (or last started)
            prev = self.store.session(self.store_session.id - 1) or {}
            last = max(last, prev.get("ended_ts") or prev.get("started_ts") or 0)
        for name, gw in engine.gateways.items():
            caps = getattr(gw, "capabilities", None)
            gap = check_horizon(caps, last, time.time_ns()) if caps is not None else None
            if gap:  # the venue cannot prove no fill was lost: say so loudly, keep going
                log.error("reconciliation_horizon_exceeded", gateway=name, problem=gap)
        await self._reconcile()
        engine.router.fill_listeners.remove(adopted.append)
        open_orders = list(engine.router.active.values())
        header = JournalHeader(
            1, self.session_id, self.mode, cfg.name, time.time_ns(), self.id_prefix,
            start_seq, tuple(simulated),
            cfg.portfolio.initial_cash, {}, header_models(cfg), cfg.model_dump(mode="json"),
            [*restored, *adopted], [o.request for o in open_orders],
            {o.client_order_id: o.filled_quantity for o in open_orders},
        )
        self.journal = JournalWriter(self.data_dir / "journal" / f"{self.session_id}.journal",
                                     header, fsync_interval=self.dcfg.journal_fsync_interval)
        kernel.consumers.append(self._on_event)
        kernel.consumers.append(self.journal.append)
        # Write-ahead: the events that led to an order reach the OS before the order leaves.
        engine.router.order_listeners.insert(0, self._on_order)
        engine.router.fill_listeners.append(self._on_fill)
        # 5. warm up on history: models learn, nothing is traded
        self.state = "warming_up"
        if self.dcfg.warmup and self.source is not None:
            history = await self.source.warm_up_bars(self.dcfg.warmup_bars)
        if self.dcfg.warmup and history:
            # Through the live dispatch (Kernel.run is reserved for ReplayClock sessions).
            dispatch = kernel.dispatch
            for bar in history:
                dispatch(bar)
            log.info("warmup_done", bars=len(history), until=ns_to_iso(history[-1].ts))
        state = self.kill.read()
        if state.engaged:
            self.kill_engaged = True
            self.control("halt", {"engaged": True, "reason": state.reason, "who": state.who})
            log.warning("kill_switch_engaged_at_start", reason=state.reason, who=state.who)
        self._mirror_internal_kill_switch()
        if self._shutting_down:
            return  # SIGTERM during start-up: never turn trading on
        # 6. trade
        self.control("trading", True)
        self.state = "trading"
        self.journal.flush(sync=True)
        self._write_status()
        if self.dcfg.metrics_port is not None:
            from trader.live.metrics_http import DaemonMetrics

            self.metrics = DaemonMetrics()
            self.metrics_port = self.metrics.serve(self.dcfg.metrics_port)
            log.info("metrics_listening", address=f"127.0.0.1:{self.metrics_port}")
        self.notifier.ready(self._status_line())
        log.info("ready_notified", systemd=self.notifier.enabled)
        spawn = loop.create_task
        if self.feed is not None:
            self._tasks.append(self.feed.start())
        else:
            self.source.start_streams()
            log.info("market_data_streaming", gateway=source_name,
                     instruments=sorted(self._bases))
        self._tasks += [
            spawn(self._every(self.dcfg.status_interval, self._heartbeat), name="status"),
            spawn(self._journal_task(), name="journal"),
            spawn(self._every(self.dcfg.kill_switch_poll, self._poll_kill_switch), name="kill"),
            spawn(self._every(0.25, self._check_staleness), name="staleness"),
        ]
        interval = watchdog_interval()
        if interval:
            self.notifier.watchdog()
            self._tasks.append(spawn(self._every(interval, self.notifier.watchdog),
                                     name="watchdog"))
        if self.feed is not None and self.dcfg.replay.exit_at_end:
            self._tasks.append(spawn(self._stop_at_feed_end(), name="feed_end"))

    def _all_gateways(self) -> list[Any]:
        """Execution gateways, then the market data feed or gateway (once each)."""
        gateways = list(self.session.engine.gateways.values()) if self.session else []
        for extra in (self.feed, self.source):
            if extra is not None and all(extra is not g for g in gateways):
                gateways.append(extra)
        return gateways

    def _market_data(self) -> tuple[list[Bar], Iterator[Bar]]:
        """Warm-up history and the live stream (the replay-as-live gateway's bars)."""
        bars = feed_from_config(self.cfg)
        start = parse_time(self.dcfg.replay.start)
        return split_history(bars, start)

    def _open_store(self) -> Any:
        """The store (SQLite in the data dir unless ``store`` names a database), if installed."""
        try:
            from trader.store import open_store  # type: ignore[import-not-found]
        except ImportError:
            return None
        scfg = getattr(self.cfg, "store", None)
        if scfg is not None and "data_dir" not in scfg.model_fields_set:
            scfg = scfg.model_copy(update={"data_dir": self.data_dir})
        return open_store(scfg)

    def _check_stored_stages(self) -> None:
        """The lifecycle registry's stage wins over the config's for registered models."""
        try:
            from models.lifecycle import Lifecycle  # type: ignore[import-not-found]
        except ImportError:
            return
        stored = Lifecycle(self.store).stages()
        allowed = MODE_STAGES[self.mode]
        wrong = [f"{m.name} (stage {stored[m.name]} in the lifecycle registry)"
                 for m in self.cfg.models if m.name in stored and stored[m.name] not in allowed]
        if wrong:
            raise Refused(f"--mode {self.mode} runs only models at stage "
                          f"{' or '.join(sorted(allowed))}; refusing: {', '.join(wrong)}")

    def _add_store_kill_switch(self) -> None:
        try:
            from trader.store import DbKillSwitch  # type: ignore[import-not-found]
        except ImportError:
            return
        row = DbKillSwitch(self.store)
        self.kill.extra.append(row.engaged)

    async def _reconcile(self) -> None:
        """Compare what brokers report with what we believe before trading."""
        assert self.session is not None
        engine = self.session.engine
        if self.store is not None:
            try:
                from trader.live.reconcile import (  # type: ignore[import-not-found]
                    ReconcilePolicy,
                    reconcile,
                )
            except ImportError:
                reconcile = None
            if reconcile is not None:
                policy = ReconcilePolicy(self.cfg.store.reconcile_policy,
                                         currency=self.cfg.portfolio.currency)
                for name, gw in engine.gateways.items():
                    report = await reconcile(self.store, gw, engine.router, engine.portfolio,
                                             policy)
                    log.info("reconciled", gateway=name, consistent=report.consistent,
                             restored_orders=len(report.restored_orders),
                             adopted_fills=len(report.adopted_fills),
                             closed_orders=len(report.vanished_orders))
                return
        for name, gw in engine.gateways.items():
            orders = await gw.open_orders()
            account = await gw.account()
            unknown = [o.client_order_id for o in orders
                       if engine.router.order(o.client_order_id) is None]
            if unknown:
                log.warning("reconcile_unknown_open_orders", gateway=name, orders=unknown)
            log.info("reconciled", gateway=name, open_orders=len(orders),
                     positions=len(account.positions))

    async def _every(self, seconds: float, fn: Callable[[], Any]) -> None:
        while True:
            await asyncio.sleep(seconds)
            try:
                fn()
            except Exception:
                log.exception("periodic_task_failed", task=getattr(fn, "__name__", str(fn)))

    async def _journal_task(self) -> None:
        """Write buffered records every flush interval; fsync in a worker thread when due."""
        journal = self.journal
        assert journal is not None
        loop = asyncio.get_running_loop()
        while True:
            await asyncio.sleep(self.dcfg.journal_flush_interval)
            try:
                journal.flush()
                if journal.sync_due():
                    await loop.run_in_executor(None, journal.sync)
            except OSError:
                log.exception("journal_write_failed", path=str(journal.path))

    async def _stop_at_feed_end(self) -> None:
        assert self.feed is not None
        await self.feed.finished.wait()
        kernel = self.session.engine.kernel  # type: ignore[union-attr]
        while kernel.pending():
            await asyncio.sleep(0.005)
        log.info("replay_exhausted_stopping")
        self.begin_shutdown("feed_end")

    # -- per-event hooks (hot path: keep them cheap) -----------------------------------------
    def _on_event(self, event: Any) -> None:
        if type(event) is Bar:
            inst = event.instrument_id
            self._last_bar[inst] = (event.ts, time.monotonic())
            if inst in self._stale:
                self._stale.discard(inst)
                log.info("feed_recovered", instrument=inst)
                self.control("stale", [inst, False])

    def _on_order(self, order: Any) -> None:
        self._orders += 1
        if self.journal is not None:
            self.journal.append(order.request)  # the session's output, for parity checks
            self.journal.flush()
        r = order.request
        log.info("order_submitted", client_order_id=r.client_order_id, instrument=r.instrument_id,
                 side=str(r.side), quantity=r.quantity, order_type=str(r.order_type),
                 reduce_only=r.reduce_only, decided=ns_to_iso(r.ts), gateway=r.gateway)

    def _on_fill(self, fill: Any) -> None:
        self._fills += 1
        log.info("fill", client_order_id=fill.client_order_id, instrument=fill.instrument_id,
                 side=str(fill.side), quantity=fill.quantity, price=fill.price,
                 commission=round(fill.commission, 6), ts=ns_to_iso(fill.ts))

    # -- periodic tasks ------------------------------------------------------------------------
    def _poll_kill_switch(self) -> None:
        state = self.kill.read()
        if state.engaged != self.kill_engaged:
            self.kill_engaged = state.engaged
            self.control("halt", {"engaged": state.engaged, "reason": state.reason,
                                  "who": state.who})
            log.warning("kill_switch_engaged" if state.engaged else "kill_switch_released",
                        reason=state.reason, who=state.who,
                        action="new orders blocked" if state.engaged else "trading resumes")
            self._write_status()

    def _mirror_internal_kill_switch(self) -> None:
        """A halt decided inside the kernel (drawdown) is persisted for the next start."""
        assert self.session is not None
        internal = getattr(self.session.gate.inner, "kill_switch", None)
        if internal is None or not hasattr(internal, "listeners"):
            return

        def persist(record: Any) -> None:
            engaged = bool(record.engaged)
            if engaged != self.kill_engaged:
                self.kill_engaged = engaged
                self.kill.write(KillState(engaged, record.reason, record.who))

        internal.listeners.append(persist)

    def _feed_speed(self) -> float | None:
        """Feed time per wall time (1.0 = real time); None when no cadence is expected."""
        if self.source is not None:
            return 1.0  # a live gateway: bars arrive in real time
        if self.feed is None or self.feed.finished.is_set():
            return None
        return _speed(self.dcfg.replay.speed)  # None: as fast as possible

    def _check_staleness(self) -> None:
        speed = self._feed_speed()
        if speed is None:
            return
        now = time.monotonic()
        for inst, (ts, seen) in self._last_bar.items():
            tf = self._bases.get(inst)
            if tf is None or inst in self._stale:
                continue
            limit = self.dcfg.stale_after_intervals * tf / speed
            if now - seen > limit:
                self._stale.add(inst)
                log.warning("feed_stale", instrument=inst, last_bar=ns_to_iso(ts),
                            silent_s=round(now - seen, 3), limit_s=round(limit, 3))
                self.control("stale", [inst, True])

    def _heartbeat(self) -> None:
        self._write_status()
        self.notifier.status(self._status_line())
        if self.metrics is not None and self.session is not None:
            e = self.session.engine
            self.metrics.update(
                nav=e.portfolio.nav, trading=e.runner.trading, kill_switch=self.kill_engaged,
                events=e.kernel.events_dispatched, orders=self._orders,
                queue_depth=e.kernel.pending(), queue_dropped=e.kernel.dropped,
                open_orders=len(e.router.active), stale_feeds=len(self._stale),
            )

    def _status_line(self) -> str:
        nav = self.session.engine.portfolio.nav if self.session else None
        trading = self.session.engine.runner.trading if self.session else False
        kill = " KILL-SWITCH" if self.kill_engaged else ""
        nav_text = f"{nav:,.2f}" if nav is not None else "-"
        return (f"mode={self.mode} state={self.state} trading={'on' if trading else 'off'}{kill} "
                f"nav={nav_text} orders={self._orders} fills={self._fills}")

    def snapshot(self) -> Snapshot:
        snap = Snapshot(self.mode, self.state, os.getpid(), self.session_id, self.cfg.name,
                        time.time_ns(), self.dcfg.status_interval)
        snap.kill_switch = self.kill_engaged
        if self.journal is not None:
            snap.journal = str(self.journal.path)
        if self.session is None:
            snap.models = [{"name": m.name, "model": m.model, "stage": m.stage, "active": False}
                           for m in self.cfg.models]
            return snap
        e = self.session.engine
        snap.trading = e.runner.trading
        snap.risk_state = "HALTED" if self.session.gate.halted else (
            str(getattr(e.risk, "state", "ACTIVE")))
        snap.nav = e.portfolio.nav
        snap.cash = e.portfolio.account.cash
        snap.positions = {k: p.quantity for k, p in e.portfolio.account.positions.items()
                          if p.quantity}
        snap.open_orders = [
            {"client_order_id": o.client_order_id, "instrument": o.request.instrument_id,
             "side": str(o.request.side), "quantity": o.request.quantity,
             "filled": o.filled_quantity, "status": str(o.status)}
            for o in e.router.active.values()
        ]
        snap.last_bar = {inst: {"ts": ns_to_iso(ts), "age_s": round(time.monotonic() - seen, 3)}
                         for inst, (ts, seen) in sorted(self._last_bar.items())}
        snap.stale_feeds = sorted(self._stale)
        snap.models = [{"name": m.name, "model": m.model, "stage": m.stage,
                        "active": m.name not in self.session.paused_models}
                       for m in self.cfg.models]
        snap.orders_submitted = self._orders
        snap.fills = self._fills
        snap.events = e.kernel.events_dispatched
        snap.queue_dropped = e.kernel.dropped
        return snap

    def _write_status(self) -> None:
        try:
            write_snapshot(self.data_dir, self.snapshot())
        except OSError as exc:
            log.error("status_write_failed", error=str(exc))

    # -- signals and shutdown ----------------------------------------------------------------
    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        loop.add_signal_handler(signal.SIGTERM, self.begin_shutdown, "SIGTERM")
        loop.add_signal_handler(signal.SIGINT, self._on_sigint)
        loop.add_signal_handler(signal.SIGHUP, self.reload)

    def _on_sigint(self) -> None:
        self._sigint_count += 1
        if self._sigint_count >= 2:
            log.warning("second_sigint_exiting_now")
            if self.journal is not None:
                try:
                    self.journal.flush()
                except OSError:
                    pass
            os._exit(130)
        self.begin_shutdown("SIGINT")

    def begin_shutdown(self, reason: str) -> None:
        """Stop new orders and let the kernel drain; the rest happens in ``_shutdown``."""
        if self._shutting_down:
            return
        self._shutting_down = True
        log.info("shutdown_requested", reason=reason)
        self.state = "stopping"
        self.notifier.stopping(self._status_line())
        self._exit_timer = _arm_exit_timer(self.dcfg.shutdown_timeout)
        if self.feed is not None:
            self.feed.pause()
        if self.session is not None:
            self.control("trading", False)
            self.control("accepting", False)
            if self.dcfg.cancel_open_orders_on_shutdown:
                n = self.session.engine.router.cancel_all()
                log.info("open_orders_cancelled", count=n)
        self.stop.set()

    async def _shutdown(self) -> None:
        if not self._shutting_down:
            self.begin_shutdown("kernel_exit")
        await self._close_everything()
        self.state = "stopped" if self.exit_code == 0 else "failed"
        self._write_status()
        if self._exit_timer is not None:
            self._exit_timer.cancel()  # done in time
        log.info("daemon_stopped", exit_code=self.exit_code, orders=self._orders, fills=self._fills)

    async def _close_everything(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            try:
                await task
            except (asyncio.CancelledError, Exception):
                pass
        if self.journal is not None:
            self.journal.close()
        if self.store is not None:
            try:
                self._close_store()
            except Exception:
                log.exception("store_close_failed")
        for gw in self._all_gateways():
            try:
                await gw.close()
            except Exception:
                log.exception("gateway_close_failed", gateway=getattr(gw, "name", "?"))
        if self.metrics is not None:
            self.metrics.close()

    def _close_store(self) -> None:
        store, self.store = self.store, None
        now = time.time_ns()
        if self.session is not None and self.store_session is not None:
            pf = self.session.engine.portfolio
            store.snapshot_account(now, "portfolio", {self.cfg.portfolio.currency: pf.account.cash},
                                   {i: p.quantity for i, p in pf.account.positions.items()
                                    if p.quantity}, nav=pf.nav)
            store.end_session(self.store_session.id, now)
        store.close()

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply model params and stages."""
        if self.config_path is None or self.session is None or self._shutting_down:
            return
        try:
            new = load_config(self.config_path)
            from trader.replay.backtest import build_models

            build_models(new)  # validates every model's params before anything changes
        except Exception as exc:
            log.error("reload_rejected", error=str(exc), config=str(self.config_path))
            return
        models = [m.model_dump(mode="json") for m in new.models]
        self.control("reload", models)
        self.cfg = self.cfg.model_copy(update={"models": new.models})
        log.info("reloaded", models=[f"{m.name}:{m.stage}" for m in new.models],
                 paused=sorted(self.session.paused_models))
        self._write_status()


def _bases(cfg: AppConfig) -> dict[str, int]:
    from trader.replay.backtest import base_timeframes

    return base_timeframes(cfg)


def _speed(value: float | str) -> float | None:
    return None if value == "max" else float(value)


def _arm_exit_timer(timeout: float) -> threading.Timer:
    """If shutdown hangs, leave anyway (non-zero: systemd records the failure)."""
    def expire() -> None:
        log.error("shutdown_timeout_exceeded", timeout_s=timeout)
        os._exit(1)

    t = threading.Timer(timeout, expire)
    t.daemon = True
    t.start()
    return t


def run_daemon(cfg: AppConfig, mode: str, *, config_path: Path | None = None,
               data_dir: Path | None = None) -> int:
    """Run a session on uvloop when installed, else on asyncio's default loop."""
    daemon = Daemon(cfg, mode, config_path=config_path, data_dir=data_dir)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(daemon.run())
    return uvloop.run(daemon.run())
