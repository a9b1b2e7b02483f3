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
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import structlog

from gateways import registry
from gateways.base import GatewayConfigError, MarketData, check_horizon
from gateways.replay_live import FEED_ENDED, ReplayLiveGateway
from gateways.sim import SimulatedGateway
from models.lifecycle import StageRefused
from risk.killswitch import DatabaseBackend, KillSwitchError, KillSwitchRecord, KillSwitchWatch
from risk.killswitch import flag_path as kill_switch_flag_path
from risk.state import TradingState
from trader.core.clock import LiveClock
from trader.core.events import Bar, GatewayHealth, OverlayEvent, RegimeChanged, ns_to_iso
from trader.core.logging import redactor
from trader.core.redaction import redact_url
from trader.data.feed import DataError, feed_from_config, parse_time
from trader.engine.build import build_models, execution_gateways, gateway_context, make_sim
from trader.engine.config import (
    REPLAY,
    AppConfig,
    ConfigError,
    base_timeframes,
    load_config,
    market_data_gateway,
)
from trader.engine.overlays import STORE_SCOPE as OVERLAYS_SCOPE
from trader.live.feeds import FeedMonitor
from trader.live.journal import JournalControl, JournalWriter
from trader.live.lock import DataDirLock, DataDirLocked
from trader.live.notify import Notifier, watchdog_interval
from trader.live.reconcile import ReconcilePolicy, ReconciliationError, reconcile
from trader.live.resume import consumed_bars, save_consumed_bars, split_history
from trader.live.session import (
    Session,
    apply_control,
    build_session,
)
from trader.live.start_state import restorable_fills, restore_fills_quietly, start_header
from trader.live.status import Snapshot, write_snapshot
from trader.store import StoreError, open_store
from trader.store.db import db_error_text
from trader.store.lifecycle import Lifecycle, enforce_mode

log = structlog.get_logger("trader.live.daemon")

SIMULATED = {"sim"}


class Refused(ConfigError):
    """The daemon refuses to start in this mode with this config (message says why)."""


# Start-up failures an operator fixes (message only, no traceback): exit 2 for those a
# restart cannot fix (RestartPreventExitStatus=2 in the units), 1 for the rest.
OPERATOR_ERRORS = (ConfigError, DataError, KillSwitchError, DataDirLocked, StoreError,
                   ReconciliationError)


def exit_status(exc: BaseException) -> int:
    """2 for a refusal or bad config/data/state that a restart cannot fix, else 1."""
    if isinstance(exc, ConfigError | DataError | KillSwitchError | DataDirLocked
                  | ReconciliationError):
        return 2
    return 1


def check_start(cfg: AppConfig, mode: str, confirm: bool) -> None:
    """Refuse unsafe starts before anything is opened or connected."""
    if mode not in ("paper", "live"):
        raise Refused(f"--mode must be 'paper' or 'live', got {mode!r}")
    if mode == "live" and not confirm:
        raise Refused("live mode sends real orders with real money: "
                      "re-run with --confirm if that is what you want")
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


class Daemon:
    """One paper or live session, from start-up to a clean exit."""

    def __init__(self, cfg: AppConfig, mode: str, *, config_path: Path | None = None,
                 data_dir: Path | None = None, notifier: Notifier | None = None,
                 create_data_dir: bool = False) -> None:
        self.cfg = cfg
        self.mode = mode
        self.dcfg = cfg.daemon
        self.config_path = config_path
        self.data_dir = Path(data_dir or self.dcfg.data_dir)
        self.create_data_dir = create_data_dir
        self.lock = DataDirLock(self.data_dir)
        self._locked = False
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
        self.kill = KillSwitchWatch(kill_switch_flag_path(self.data_dir, cfg.risk.kill_switch.path))
        self.kill_engaged = False
        self.kill_record: KillSwitchRecord | None = None  # the persistent switch at start
        self._risk_saved: dict[str, Any] | None = None
        self._overlays_saved: dict[str, Any] | None = None
        self._stages: dict[str, str] = {}  # model -> stage in the lifecycle registry
        self._start_seq = 0
        self._last_fill_ts: int | None = None
        self._history: list[Bar] = []
        self.stop = asyncio.Event()
        self.exit_code = 0
        self._shutting_down = False
        self._exit_timer: threading.Timer | None = None
        self._sigint_count = 0
        self._tasks: list[asyncio.Task] = []
        self.feeds = FeedMonitor({}, self.dcfg.stale_after_intervals)
        self._fills = 0
        self._orders = 0
        self.metrics: Any = None
        self.metrics_port: int | None = None
        self.alerts: Any = None  # trader.live.alerts.AlertSender when channels are configured

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
            self._claim_data_dir()
            await self._start(loop)
        except Exception as raised:
            self.state = "failed"
            exc = self._store_failure(raised)
            code = exit_status(exc)
            if isinstance(exc, OPERATOR_ERRORS):
                # The operator needs the cause in one paragraph, not a traceback.
                log.error("daemon_start_failed", error=str(exc), exit_code=code)
                print(f"error: {redactor().text(str(exc))}", file=sys.stderr, flush=True)
            else:
                # A bug or an OS failure: the traceback goes to the log, the gist to stderr.
                log.exception("daemon_start_failed", error=str(exc), exit_code=code)
                text = redactor().text(f"{type(exc).__name__}: {exc}")
                print(f"error: start-up failed: {text} (the traceback is in the log)",
                      file=sys.stderr, flush=True)
            if self._locked:
                self._write_status()
            await self._close_everything()
            return code
        log.info("daemon_ready", mode=self.mode, startup_s=round(time.monotonic() - t0, 3),
                 nav=self.session.engine.portfolio.nav if self.session else None)
        try:
            await self.session.engine.kernel.run_async(self.stop)  # type: ignore[union-attr]
        except Exception:
            log.exception("kernel_loop_failed")
            self.exit_code = 1
        await self._shutdown()
        return self.exit_code

    def _store_failure(self, exc: Exception) -> Exception:
        """A database error raised by SQLAlchemy, as a ``StoreError`` naming the database."""
        from sqlalchemy.exc import SQLAlchemyError

        from trader.store.views import resolve_url

        if not isinstance(exc, SQLAlchemyError):
            return exc
        url = (self.store.url if self.store is not None
               else resolve_url(self.cfg.store.database_url, self.data_dir))
        return StoreError(f"database {redact_url(url)}: {db_error_text(exc)}")

    def _claim_data_dir(self) -> None:
        """The data dir must exist (unless told to create it) and no other daemon may hold it."""
        if not self.data_dir.is_dir():
            if not self.create_data_dir:
                rel = ("" if self.data_dir.is_absolute() else
                       f" (relative to the working directory: {self.data_dir.absolute()})")
                raise ConfigError(
                    f"data directory {self.data_dir} does not exist{rel}; check --data-dir / "
                    "daemon.data_dir, or pass --create-data-dir to start a new deployment there")
            self.data_dir.mkdir(parents=True)
            log.info("data_dir_created", path=str(self.data_dir))
        self.lock.acquire()
        self._locked = True

    async def _start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start-up, step by step; nothing trades before the last one."""
        self._write_status()
        restored = self._open_store()
        self._build_engine(loop)
        self._start_alerts()
        self._restore(restored)
        self._attach_market_data()
        await self._connect()
        await self._reconcile()
        self._open_journal()
        await self._warm_up()
        if self._shutting_down:
            return  # SIGTERM during start-up: never turn trading on
        self._go_ready()
        self._start_tasks(loop)

    def _open_store(self) -> list[Any]:
        """The deployment's store: stages, this session's row, the fills to restore."""
        cfg = self.cfg
        self.store = open_store(cfg.store, self.data_dir)
        self._check_stages()
        self.kill.database = DatabaseBackend(self.store)
        record = self.kill_record = self.kill.read_at_start()  # a corrupt flag file refuses
        self.kill_engaged = bool(record and record.engaged)
        info = self.store_session = self.store.begin_session(self.mode, cfg.name, time.time_ns())
        self.id_prefix, self._start_seq = info.prefix, info.start_seq
        self.session_id = f"{self.mode}-{info.id}-{self.session_id.split('-', 1)[1]}"
        fills = restorable_fills(self.store, cfg, self.mode, execution_gateways(cfg))
        self._last_fill_ts = max((f.ts for f in fills), default=None)
        return fills

    def _check_stages(self) -> None:
        """Stages come from the lifecycle registry only, never from the config file."""
        registry = Lifecycle(self.store)
        fix = f"--config {self.config_path}" if self.config_path else f"--data-dir {self.data_dir}"
        try:
            enforce_mode(self.mode, [m.name for m in self.cfg.models], registry, fix)
        except StageRefused as exc:
            raise Refused(str(exc)) from None
        stages = registry.stages()
        self._stages = {m.name: stages[m.name] for m in self.cfg.models}

    def _build_engine(self, loop: asyncio.AbstractEventLoop) -> None:
        session = self.session = build_session(
            self.cfg, self.clock, mode=self.mode, id_prefix=self.id_prefix,
            start_seq=self._start_seq, gateways=build_gateways(self.cfg))
        engine = session.engine
        # Write-ahead: each order is stored (PENDING_SUBMIT) before a gateway sees it.
        engine.router.journal = self.store.journal(self.store_session,
                                                   marks=engine.portfolio.marks)
        kernel = engine.kernel
        kernel.queue_size = self.dcfg.queue_size
        kernel.bind_loop(loop)
        source = market_data_gateway(self.cfg)
        # A live source's silence outside its market's session is not staleness.
        markets = {} if source is None else {
            i.id: str(i.asset_class) for i in self.cfg.instruments
            if str(i.asset_class) in ("equity", "fx")}
        self.feeds = FeedMonitor(base_timeframes(self.cfg), self.dcfg.stale_after_intervals,
                                 # The replay-as-live feed is named after its source key.
                                 source=source or REPLAY,
                                 normal_end=FEED_ENDED if source is None else "",
                                 markets=markets)
        # A halt the risk engine decides is persisted before its orders are planned:
        # the kill switch's listeners run before the halt's directive is published.
        engine.risk.kill_switch.listeners.append(self._persist_risk_halt)

    def _restore(self, fills: list[Any]) -> None:
        """Earlier sessions' fills and the risk state (drawdown high-water mark, halt)."""
        assert self.session is not None
        engine = self.session.engine
        if fills:
            restore_fills_quietly(self.session, fills)
            log.info("state_restored", fills=len(fills),
                     positions={k: p.quantity for k, p in engine.portfolio.account.positions.items()
                                if p.quantity})
        snapshot = self.store.load_risk_state()
        if snapshot:
            engine.risk.restore(snapshot)
            log.info("risk_state_restored", state=snapshot.get("state"),
                     drawdown_peak=snapshot.get("drawdown_peak"))
            record = self.kill_record
            if (engine.risk.state is TradingState.HALTED and record is not None
                    and not record.engaged):
                # A halt is persisted as the kill switch; `trader kill --release` while
                # the daemon was stopped released it: the session starts ACTIVE again.
                engine.risk.resume(f"kill switch released: {record.reason}")
        overlays = self.store.load_risk_state(OVERLAYS_SCOPE) if engine.overlays else None
        if overlays and engine.overlays is not None:
            cut = engine.overlays.restore(overlays)
            # 0: halted by its own drawdown, else the de-risk factor it stays at.
            log.info("overlay_state_restored",
                     drawdown_levels={m: engine.overlays.dd[m] for m in cut})

    def _attach_market_data(self) -> None:
        """The replay-as-live feed over the data files, or a broker gateway's bars."""
        assert self.session is not None
        engine = self.session.engine
        kernel = engine.kernel
        source_name = market_data_gateway(self.cfg)
        if source_name is None:
            self._history, live = self._market_data()
            self.feed = ReplayLiveGateway(live, speed=_speed(self.dcfg.replay.speed),
                                          pending=kernel.pending)
            self.feed.bind(kernel.post)
        else:
            self._history = []
            self.source = engine.gateways.get(source_name) or build_market_data_gateway(
                self.cfg, source_name)
            if not isinstance(self.source, MarketData):
                raise ConfigError(f"daemon.market_data: gateway {source_name!r} cannot stream "
                                  "bars (it has no history and bar stream)")
            self.source.bind(kernel.post)
        for gw in engine.gateways.values():
            if not isinstance(gw, SimulatedGateway):
                gw.bind(kernel.post)  # external brokers report through the live inbox

    async def _connect(self) -> None:
        """Connect every gateway; the market data gateway streams only after the warm-up."""
        for gw in self._all_gateways():
            if gw is self.source:
                await gw.connect(stream=False)
            else:
                await gw.connect()

    def _open_journal(self) -> None:
        """The session journal, headed by the state the session starts from (after
        reconciliation: what it adopted is part of it)."""
        assert self.session is not None
        engine = self.session.engine
        simulated = sorted(n for n, gw in engine.gateways.items()
                           if isinstance(gw, SimulatedGateway))
        header = start_header(
            self.session, self.cfg, session_id=self.session_id, mode=self.mode,
            started_wall_ns=time.time_ns(), id_prefix=self.id_prefix, start_seq=self._start_seq,
            simulated=simulated, store=self.store,
            store_session_id=self.store_session.id if self.store_session else None)
        self.journal = JournalWriter(self.data_dir / "journal" / f"{self.session_id}.journal",
                                     header, fsync_interval=self.dcfg.journal_fsync_interval)
        kernel = engine.kernel
        kernel.consumers.append(self._on_event)
        kernel.consumers.append(self.journal.append)
        # A budget decision (a regime change, an overlay's multiplier) is an output of the
        # session: journaled, and compared by the replay of the journal, like its orders.
        if engine.regimes is not None:
            kernel.bus.subscribe(RegimeChanged, self._on_regime)
        if engine.overlays is not None:
            kernel.bus.subscribe(OverlayEvent, self._on_overlay)
        # Write-ahead: the events that led to an order reach the OS before the order leaves.
        engine.router.order_listeners.insert(0, self._on_order)
        engine.router.fill_listeners.append(self._on_fill)
        engine.router.correction_listeners.append(self._on_fill_correction)

    async def _warm_up(self) -> None:
        """Models learn from history; nothing is traded and risk watches nothing."""
        assert self.session is not None
        self.state = "warming_up"
        history = self._history
        if self.dcfg.warmup and self.source is not None:
            history = await self.source.warm_up_bars(self.dcfg.warmup_bars)
        if self.dcfg.warmup and history:
            # Through the live dispatch (Kernel.run is reserved for ReplayClock sessions).
            dispatch = self.session.engine.kernel.dispatch
            for bar in history:
                dispatch(bar)
            log.info("warmup_done", bars=len(history), until=ns_to_iso(history[-1].ts))
        self._history = []

    def _start_alerts(self) -> None:
        """Alerts go out from their own thread; the kernel only queues them."""
        from trader.live.alerts import start_alerts

        assert self.session is not None
        self.alerts = start_alerts(self.cfg.alerts, name=f"{self.cfg.name} {self.mode}")
        if self.alerts is not None:
            self.alerts.attach(self.session.engine.kernel.bus)

    def _alert(self, alert: Any) -> None:
        if self.alerts is not None:
            self.alerts.submit(alert)

    def _go_ready(self) -> None:
        """The persistent kill switch reaches the kernel, then trading starts (READY)."""
        if self.kill_engaged:
            record = self.kill.read()
            assert record is not None
            self.control("halt", {"engaged": True, "reason": record.reason, "who": record.who})
            log.warning("kill_switch_engaged_at_start", reason=record.reason, who=record.who)
        if self.dcfg.metrics_port is not None:
            from trader.live.metrics_http import DaemonMetrics

            self.metrics = DaemonMetrics()
            assert self.session is not None
            self.metrics.attach(self.session.engine, live_bars=self.source is not None)
            self.metrics_port = self.metrics.serve(self.dcfg.metrics_port)
            log.info("metrics_listening", address=f"127.0.0.1:{self.metrics_port}")
        # READY=1, then trade: the first orders (targets formed in warm-up) follow READY.
        self.state = "trading"
        self.notifier.ready(self._status_line())
        log.info("ready_notified", systemd=self.notifier.enabled)
        self.control("trading", True)
        assert self.journal is not None
        self.journal.flush(sync=True)
        self._save_risk_state()
        self._write_status()
        self.notifier.status(self._status_line())  # trading=on from here
        from trader.live.alerts import daemon_alert

        self._alert(daemon_alert("started", self._status_line()))

    def _start_tasks(self, loop: asyncio.AbstractEventLoop) -> None:
        spawn = loop.create_task
        if self.feed is not None:
            self._tasks.append(self.feed.start())
        else:
            self.source.start_streams()
            log.info("market_data_streaming", gateway=market_data_gateway(self.cfg),
                     instruments=sorted(self.feeds.bases))
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
        return split_history(bars, start, consumed_bars(self.store, self.mode, self.store_session))

    async def _reconcile(self) -> None:
        """Compare what brokers report with what the store believes, before trading."""
        assert self.session is not None
        engine = self.session.engine
        self._check_horizons()
        policy = ReconcilePolicy(self.cfg.store.reconcile_policy,
                                 currency=self.cfg.portfolio.currency)
        for name, gw in engine.gateways.items():
            report = await reconcile(self.store, gw, engine.router, engine.portfolio, policy)
            log.info("reconciled", gateway=name, consistent=report.consistent,
                     restored_orders=len(report.restored_orders),
                     adopted_fills=len(report.adopted_fills),
                     closed_orders=len(report.vanished_orders))
            if not report.consistent:
                from trader.live.alerts import reconcile_alert

                self._alert(reconcile_alert(name, str(report.summary())))

    def _check_horizons(self) -> None:
        """Whether each venue's fill history still reaches back to when the account was known."""
        assert self.session is not None and self.store_session is not None
        last = self._last_fill_ts
        if last is None:
            return
        # The account was known until the previous session stopped (or last started).
        prev = self.store.previous_session(self.mode, self.store_session.id) or {}
        last = max(last, prev.get("ended_ts") or prev.get("started_ts") or 0)
        for name, gw in self.session.engine.gateways.items():
            gap = check_horizon(gw.capabilities, last, time.time_ns())
            if gap:  # the venue cannot prove no fill was lost: say so loudly, keep going
                log.error("reconciliation_horizon_exceeded", gateway=name, problem=gap)

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
        if self.feed.failed:
            # Bad data stops the file here: a restart would stop at the same bar.
            log.error("replay_failed_stopping", error=self.feed.failed, exit_code=2)
            self.exit_code = 2
            self.begin_shutdown("feed_failed")
            return
        log.info("replay_exhausted_stopping")
        self.begin_shutdown("feed_end")

    # -- per-event hooks (hot path: keep them cheap) -----------------------------------------
    def _on_event(self, event: Any) -> None:
        if type(event) is Bar:
            if self.feeds.on_bar(event, time.monotonic()):
                log.info("feed_recovered", instrument=event.instrument_id)
                self.control("stale", [event.instrument_id, False])
        elif type(event) is GatewayHealth and self.feeds.on_health(event):
            # The market data source stopped delivering, or came back.
            if self.feeds.failed:
                log.error("market_data_failed", gateway=event.gateway, reason=event.reason,
                          action="no new bars: models decide nothing until it recovers")
            else:
                log.info("market_data_recovered", gateway=event.gateway, reason=event.reason)
            self._write_status()

    def _on_regime(self, event: RegimeChanged) -> None:
        if self.journal is not None:
            self.journal.append(event)
        log.info("regime_changed", regime=event.regime, state=event.state,
                 previous=event.previous or None, bar=ns_to_iso(event.ts))

    def _on_overlay(self, event: OverlayEvent) -> None:
        if self.journal is not None:
            self.journal.append(event)  # the overlays log the decision themselves
        if event.kind == "model_drawdown":
            # Stored before the orders of the cut leave (they follow this event): a crash
            # right after a model's halt must not bring the model back at the next start.
            self._save_overlay_state()

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

    def _on_fill_correction(self, fix: Any) -> None:
        # Already in the store (the router's journal) and booked by the portfolio.
        log.info("fill_corrected", trade_id=fix.trade_id, client_order_id=fix.client_order_id,
                 commission=fix.commission, price=fix.price, quantity=fix.quantity,
                 ts=ns_to_iso(fix.ts))

    # -- periodic tasks ------------------------------------------------------------------------
    def _poll_kill_switch(self) -> None:
        record = self.kill.read()
        engaged = bool(record and record.engaged)
        if engaged != self.kill_engaged:
            assert record is not None
            self.kill_engaged = engaged
            self.control("halt", {"engaged": engaged, "reason": record.reason,
                                  "who": record.who})
            log.warning("kill_switch_engaged" if engaged else "kill_switch_released",
                        reason=record.reason, who=record.who,
                        action="new orders blocked" if engaged else "trading resumes")
            self._save_risk_state()
            self._write_status()

    def _persist_risk_halt(self, record: KillSwitchRecord) -> None:
        """A halt the risk engine decided (drawdown) goes to the flag file and the store first.

        Runs as a listener of the kernel's kill switch, i.e. before the halt's
        cancel-and-flatten directive is carried out.
        """
        if not record.engaged or record.who != "risk-engine" or self.kill_engaged:
            return
        self.kill_engaged = True
        # Stamped with the wall clock, like every record `trader kill` writes: the watch
        # trusts the most recent record, and the kernel's clock is event time (a replay's
        # bars may be years old).
        now = time.time_ns()
        self.kill.write(KillSwitchRecord(True, record.reason, now, record.who, ns_to_iso(now)))
        self._save_risk_state()
        log.warning("risk_halt_persisted", reason=record.reason, flag_file=str(self.kill.path))

    def _save_risk_state(self) -> None:
        """The risk engine's state (halt, high-water mark, budget scale) for the next start."""
        if self.session is None or self.store is None:
            return
        snapshot = self.session.engine.risk.state_snapshot()
        if snapshot != self._risk_saved:
            previous = (self._risk_saved or {}).get("state")
            self.store.save_risk_state(snapshot)
            if snapshot["state"] != previous and previous is not None:
                # The trading state's own row and history, for `trader status` and audits.
                self.store.set_trading_state(snapshot["state"], snapshot["state_reason"],
                                             "risk-engine", time.time_ns())
            self._risk_saved = snapshot
        self._save_overlay_state()

    def _save_overlay_state(self) -> None:
        """A model's own drawdown state outlives the process, like the portfolio's."""
        if self.session is None or self.store is None:
            return
        overlays = self.session.engine.overlays
        if overlays is not None:
            state = overlays.state_snapshot()
            if state != self._overlays_saved:
                self.store.save_risk_state(state, scope=OVERLAYS_SCOPE)
                self._overlays_saved = state

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
        wall = time.time_ns() if self.source is not None else None  # live: market hours
        for st in self.feeds.newly_stale(speed, time.monotonic(), wall):
            log.warning("feed_stale", instrument=st.instrument_id,
                        last_bar=ns_to_iso(st.last_bar_ts), silent_s=round(st.silent_s, 3),
                        limit_s=round(st.limit_s, 3))
            self.control("stale", [st.instrument_id, True])
            from trader.live.alerts import feed_stale_alert

            self._alert(feed_stale_alert(st.instrument_id, ns_to_iso(st.last_bar_ts),
                                         st.silent_s))

    def _heartbeat(self) -> None:
        self._save_risk_state()  # the high-water mark moves with NAV
        self._write_status()
        save_consumed_bars(self.store, self.store_session, self.feeds.last_bar, self.feed)
        self.notifier.status(self._status_line())
        if self.metrics is not None and self.session is not None:
            e = self.session.engine
            self.metrics.update(
                nav=e.portfolio.nav, trading=e.pipeline.trading, kill_switch=self.kill_engaged,
                events=e.kernel.events_dispatched, orders=self._orders,
                queue_depth=e.kernel.pending(), queue_dropped=e.kernel.dropped,
                open_orders=len(e.router.active), stale_feeds=len(self.feeds.stale),
                market_data_failed=bool(self.feeds.failed), health=self.feeds.health,
                pnl=e.portfolio.pnl(), drawdown=e.portfolio.drawdown,
            )

    def _status_line(self) -> str:
        nav = self.session.engine.portfolio.nav if self.session else None
        trading = self.session.engine.pipeline.trading if self.session else False
        kill = " KILL-SWITCH" if self.kill_engaged else ""
        nav_text = f"{nav:,.2f}" if nav is not None else "-"
        return (f"mode={self.mode} state={self.state} trading={'on' if trading else 'off'}{kill} "
                f"nav={nav_text} orders={self._orders} fills={self._fills}")

    def snapshot(self) -> Snapshot:
        snap = Snapshot(self.mode, self.state, os.getpid(), self.session_id, self.cfg.name,
                        time.time_ns(), self.dcfg.status_interval)
        snap.kill_switch = self.kill_engaged
        snap.feeds = {k: dict(v) for k, v in sorted(self.feeds.health.items())}
        snap.feed_failed = self.feeds.failed
        if self.journal is not None:
            snap.journal = str(self.journal.path)
        if self.session is None:
            snap.models = [{"name": m.name, "model": m.model, "stage": "", "active": False}
                           for m in self.cfg.models]
            return snap
        e = self.session.engine
        snap.trading = e.pipeline.trading
        # The kill switch stops everything but flattening: shown as the state it amounts to.
        snap.risk_state = "HALTED" if e.risk.kill_switch.engaged else str(e.risk.state)
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
        snap.last_bar = self.feeds.last_bars(time.monotonic())
        snap.stale_feeds = sorted(self.feeds.stale)
        snap.models = [{"name": m.name, "model": m.model, "stage": self._stages.get(m.name, ""),
                        "active": m.name not in self.session.paused_models}
                       for m in self.cfg.models]
        if e.regimes is not None:
            since = {ev.regime: ns_to_iso(ev.ts) for ev in e.regimes.history}
            snap.regimes = {name: {"state": state, "since": since.get(name)}
                            for name, state in e.regimes.states.items()}
            snap.budget_multipliers = dict(sorted(e.allocator.multipliers.items()))
        snap.orders_submitted = self._orders
        snap.fills = self._fills
        snap.events = e.kernel.events_dispatched
        snap.queue_dropped = e.kernel.dropped
        return snap

    def _write_status(self) -> None:
        if not self._locked:
            return  # the data dir is another daemon's (or does not exist): not ours to write
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
        if self.alerts is not None:
            from trader.live.alerts import daemon_alert

            what = "stopped" if self.exit_code == 0 else "failed"
            self.alerts.submit(daemon_alert(what, f"exit code {self.exit_code}, "
                                                  f"{self._orders} orders, {self._fills} fills"))
            # Pending alerts (the fill digest too) go out within the timeout, off the loop.
            await asyncio.to_thread(self.alerts.close, self.cfg.alerts.timeout)

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
        self.lock.release()

    def _close_store(self) -> None:
        self._save_risk_state()
        store, self.store = self.store, None
        now = time.time_ns()
        if self.session is not None and self.store_session is not None:
            pf = self.session.engine.portfolio
            store.snapshot_account(now, "portfolio", {self.cfg.portfolio.currency: pf.account.cash},
                                   {i: p.quantity for i, p in pf.account.positions.items()
                                    if p.quantity}, nav=pf.nav)
            save_consumed_bars(store, self.store_session, self.feeds.last_bar, self.feed)
            store.end_session(self.store_session.id, now)
        store.close()

    def reload(self) -> None:
        """SIGHUP: re-read the config file and apply model params and stages."""
        if self.config_path is None or self.session is None or self._shutting_down:
            return
        try:
            new = load_config(self.config_path)
            build_models(new)  # validates every model's params before anything changes
            # Stages come from the registry, never from the file being reloaded.
            stages = Lifecycle(self.store).stages() if self.store is not None else {}
        except Exception as exc:
            log.error("reload_rejected", error=str(exc), config=str(self.config_path))
            return
        self._stages.update({m.name: stages.get(m.name, "research") for m in new.models})
        models = [{**m.model_dump(mode="json"), "stage": stages.get(m.name, "research")}
                  for m in new.models]
        self.control("reload", models)
        self.cfg = self.cfg.model_copy(update={"models": new.models})
        log.info("reloaded", models=[f"{m.name}:{m.stage}" for m in new.models],
                 paused=sorted(self.session.paused_models))
        self._write_status()


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
               data_dir: Path | None = None, create_data_dir: bool = False) -> int:
    """Run a session on uvloop when installed, else on asyncio's default loop."""
    daemon = Daemon(cfg, mode, config_path=config_path, data_dir=data_dir,
                    create_data_dir=create_data_dir)
    try:
        import uvloop
    except ImportError:
        return asyncio.run(daemon.run())
    return uvloop.run(daemon.run())
