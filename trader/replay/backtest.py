"""Assembles the kernel for a replay and writes the run's reports."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from gateways.sim import SimCosts, SimulatedGateway
from models.base import Model
from models.registry import model_class
from risk.engine import RiskEngine
from trader.core.clock import Clock, ReplayClock
from trader.core.events import Bar, Fill, OrderRequest, OrderUpdate
from trader.core.instruments import Instrument
from trader.core.kernel import Kernel
from trader.data.feed import HistoricalFeed, feed_from_config
from trader.engine.aggregator import BarAggregator
from trader.engine.allocator import Allocator
from trader.engine.config import AppConfig, ConfigError, base_timeframes, replay_source
from trader.engine.pipeline import ModelRunner
from trader.engine.planner import Planner
from trader.engine.portfolio import Portfolio
from trader.engine.recorder import Recorder
from trader.engine.router import Router
from trader.replay.metrics import compute_metrics


def build_models(cfg: AppConfig, names: Iterable[str] | None = None) -> list[Model]:
    wanted = set(names) if names is not None else None
    out = []
    for idx, mc in enumerate(cfg.models):
        if wanted is not None and mc.name not in wanted:
            continue
        try:
            cls = model_class(mc.model)
            out.append(cls(mc.name, mc.instruments, mc.timeframe, mc.params))
        except KeyError as exc:
            raise ConfigError(f"models[{idx}] ({mc.name}).model: {exc.args[0]}") from None
        except ValidationError as err:
            problems = "; ".join(
                f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}" for e in err.errors()
            )
            raise ConfigError(f"models[{idx}] ({mc.name}).params: {problems}") from None
    return out


ORDER_RECORD_LIMIT = 100_000


@dataclass
class Engine:
    """Every component of one kernel, wired; the same shape in replay and live."""

    cfg: AppConfig
    kernel: Kernel
    instruments: dict[str, Instrument]
    portfolio: Portfolio
    allocator: Allocator
    router: Router
    risk: RiskEngine
    runner: ModelRunner
    aggregator: BarAggregator
    recorder: Recorder
    gateways: dict[str, Any]
    models: list[Model]
    orders: list[OrderRequest] = field(default_factory=list)
    orders_truncated: bool = False


def build_engine(
    cfg: AppConfig,
    *,
    clock: Clock | None = None,
    gateways: dict[str, Any] | None = None,
    models: list[Model] | None = None,
    risk: RiskEngine | Callable[..., RiskEngine] | None = None,
    trades_file: IO[str] | None = None,
    id_prefix: str = "bt",
    record_orders: bool = True,
    journal: Any = None,
) -> Engine:
    """Wire the kernel's components on one bus, in the order bars must reach them."""
    clock = clock or ReplayClock()
    kernel = Kernel(clock)
    bus = kernel.bus
    instruments = {i.id: Instrument(**i.model_dump(exclude={"data"})) for i in cfg.instruments}
    bases = base_timeframes(cfg)
    portfolio = Portfolio(instruments, cfg.portfolio.initial_cash, base_timeframes=bases)
    if models is None:
        models = build_models(cfg)
    budgets = {m.name: mc.budget for mc in cfg.models for m in models if m.name == mc.name}
    allocator = Allocator(portfolio, budgets)
    portfolio.set_attribution(allocator.attribute)
    replay_sim = gateways is None
    if gateways is None:
        sim = SimulatedGateway(
            instruments,
            SimCosts(cfg.execution.slippage_bps, cfg.execution.commission_bps,
                     cfg.execution.fee_per_order),
            base_timeframes=bases,
            initial_cash=cfg.portfolio.initial_cash,
            currency=cfg.portfolio.currency,
        )
        gateways = {"sim": sim}
    for gw in gateways.values():
        gw.bind(bus.publish)
    router = Router(gateways, clock, id_prefix=id_prefix, journal=journal)
    planner = Planner(allocator, portfolio, router.open_quantity, instruments,
                      min_trade_fraction=cfg.planner.min_trade_fraction)
    if risk is None:
        risk = RiskEngine  # the class is its own factory
    if isinstance(risk, RiskEngine):
        risk_engine = risk
    else:
        risk_engine = risk(cfg=cfg, portfolio=portfolio, instruments=instruments, clock=clock,
                           bus=bus, allocator=allocator, router=router)
    gateway_of = {}
    for idx, mc in enumerate(cfg.models):
        # A replay sends every model's orders to the simulated exchange, whatever
        # broker the model names for paper or live sessions.
        name = "sim" if replay_sim else mc.gateway
        if name not in gateways:
            raise ConfigError(f"models.{idx}.gateway: no gateway named {name!r}; "
                              f"available: {sorted(gateways)}")
        for inst in mc.instruments:
            gateway_of[inst] = name
    runner = ModelRunner(models, allocator, planner, risk_engine, router, clock,
                         gateway_of=gateway_of)
    if hasattr(risk_engine, "attach"):
        risk_engine.attach(runner)  # de-risking re-plans through the runner
    aggregator = BarAggregator(bus.publish)
    for inst_id, tf in runner.subscriptions():
        if inst_id not in bases:
            raise ConfigError(f"instruments: {inst_id!r} is traded by a model but has no "
                              "data (set its data.path and data.timeframe, or stream it from "
                              "a gateway with daemon.market_data)")
        aggregator.add(inst_id, bases[inst_id], tf)
    recorder = Recorder(portfolio, trades_file, base_timeframes=bases)
    engine = Engine(cfg, kernel, instruments, portfolio, allocator, router, risk_engine, runner,
                    aggregator, recorder, gateways, models)

    # Bar order matters: the recorder samples the state the bar found, fills
    # from earlier decisions happen at this bar's open, then the close marks the
    # portfolio, then higher timeframes close, then models decide.
    bus.subscribe(Bar, recorder.on_bar)
    for gw in gateways.values():
        if hasattr(gw, "on_bar"):
            bus.subscribe(Bar, gw.on_bar)
    bus.subscribe(Bar, portfolio.on_bar)
    if hasattr(risk_engine, "on_bar"):
        bus.subscribe(Bar, risk_engine.on_bar)
    if aggregator.active:
        bus.subscribe(Bar, aggregator.on_bar)
    bus.subscribe(Bar, runner.on_bar)
    bus.subscribe(OrderUpdate, router.on_update)
    bus.subscribe(Fill, router.on_fill)
    router.fill_listeners.append(portfolio.on_fill)
    if record_orders:
        def record(order) -> None:
            # Kept for parity checks and tests; capped so long replays stay bounded.
            if len(engine.orders) < ORDER_RECORD_LIMIT:
                engine.orders.append(order.request)
            else:
                engine.orders_truncated = True

        router.order_listeners.append(record)
    return engine


@dataclass
class BacktestResult:
    metrics: dict[str, Any]
    engine: Engine
    feed_stats: dict[str, Any]
    run_id: int | None = None  # the run's row in the store, when one was given


def run_backtest(
    cfg: AppConfig,
    out_dir: Path | None = None,
    *,
    feed: Iterable[Bar] | None = None,
    progress: Callable[[int], None] | None = None,
    risk: Any = None,
    store: Any = None,
    persist: bool = False,
) -> BacktestResult:
    """Replay history through the kernel and (optionally) write the reports to ``out_dir``.

    With a ``store`` the run's summary is recorded there at the end; with
    ``persist`` too, every order, order event and fill is journaled as it happens
    (open the store with a ``batch_size`` to keep that fast).
    """
    from trader.store.runs import BacktestRecording

    cfg = replay_source(cfg)  # a backtest reads the data files, never a live feed
    trades_fh = None
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        trades_fh = open(out_dir / "trades.csv", "w", newline="")
    recording = BacktestRecording(store, cfg, persist) if store is not None else None
    try:
        engine = build_engine(cfg, trades_file=trades_fh, risk=risk,
                              id_prefix=recording.id_prefix if recording else "bt",
                              journal=recording.journal if recording else None)
        if recording is not None:
            recording.attach(engine)
        source = feed if feed is not None else feed_from_config(cfg)
        engine.kernel.run(source, progress)
        engine.recorder.finish()
    finally:
        if trades_fh is not None:
            trades_fh.close()
    metrics = summarize(engine)
    run_id = recording.finish(engine, metrics) if recording is not None else None
    stats = {}
    if isinstance(source, HistoricalFeed):
        stats = {k: {"rows": v.rows, "skipped": v.skipped, "skipped_by_reason": v.skipped_by_reason}
                 for k, v in source.stats.items()}
    if out_dir is not None:
        from trader.replay.reports import write_reports

        write_reports(engine, metrics, out_dir)
    return BacktestResult(metrics, engine, stats, run_id)


def summarize(engine: Engine) -> dict[str, Any]:
    rec = engine.recorder
    eq = rec.equity
    if not eq:
        eq_ts, navs = [0], [engine.portfolio.initial_cash]
    else:
        eq_ts, navs = [p.ts for p in eq], [p.nav for p in eq]
    m = compute_metrics(
        eq_ts, navs,
        trades=rec.fills, wins=rec.wins, losses=rec.losses,
        gross_profit=rec.closing_pnls_pos, gross_loss=rec.closing_pnls_neg,
        exposure=rec.bars_exposed / rec.bars if rec.bars else 0.0,
    )
    m["bars"] = rec.bars
    m["orders"] = engine.router.seq
    m["model_pnl"] = {k: v for k, v in sorted(engine.portfolio.model_pnl().items())}
    if hasattr(engine.risk, "summary"):
        m["risk"] = engine.risk.summary()
    return m


def metrics_json(metrics: dict[str, Any]) -> str:
    def clean(v: Any) -> Any:
        if isinstance(v, float):
            if v != v or v in (float("inf"), float("-inf")):
                return None
            return round(v, 10)
        if isinstance(v, dict):
            return {k: clean(x) for k, x in v.items()}
        return v

    return json.dumps(clean(metrics), indent=2, sort_keys=True) + "\n"
