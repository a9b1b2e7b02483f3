"""The one composition root: every kernel (replay, paper, live, journal replay) is built here.

``build_engine`` wires the components on one bus in the order a bar must
reach them and returns them as an ``Engine``.  Nothing is patched afterwards:
what differs between a replay and a trading session (the clock, the gateways,
the client-order-id prefix and sequence, whether models trade before READY,
where the kill switch lives) is an argument.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from pydantic import ValidationError

from gateways.base import GatewayContext
from gateways.sim import SimCosts, SimulatedGateway
from models.base import Model
from models.checks import subscription_problems
from models.gates import Gates
from models.regimes import RegimeClassifier, regime_class
from models.registry import model_class
from risk.engine import RiskEngine
from risk.events import RiskDirective
from risk.killswitch import KillSwitch, MemoryBackend, backend_from_config
from trader.core.clock import Clock, ReplayClock
from trader.core.events import (
    Bar,
    DataEnded,
    Fill,
    FillCorrection,
    OrderRequest,
    OrderType,
    OrderUpdate,
)
from trader.core.instruments import Instrument
from trader.core.kernel import Kernel
from trader.core.timeframes import format_timeframe
from trader.engine.aggregator import BarAggregator
from trader.engine.allocator import Allocator
from trader.engine.config import AppConfig, ConfigError, base_timeframes
from trader.engine.exits import ExitEmulator
from trader.engine.financing import FinancingAccrual
from trader.engine.overlays import Overlays
from trader.engine.pipeline import Pipeline
from trader.engine.planner import Planner
from trader.engine.portfolio import Portfolio
from trader.engine.recorder import Recorder, TradeDetails
from trader.engine.regime import RegimeBudgets, RegimeEngine
from trader.engine.router import OrderJournal, Router

ORDER_RECORD_LIMIT = 100_000
SIM = "sim"
TRADING_MODES = ("paper", "live")


def build_models(cfg: AppConfig, names: Iterable[str] | None = None) -> list[Model]:
    """Instantiate the config's models; errors name the model's config key."""
    wanted = set(names) if names is not None else None
    out = []
    for idx, mc in enumerate(cfg.models):
        if wanted is not None and mc.name not in wanted:
            continue
        try:
            cls = model_class(mc.model, cfg.strategies)
            out.append(cls(mc.name, mc.instruments, mc.timeframe, mc.params))
        except KeyError as exc:
            raise ConfigError(f"models[{idx}] ({mc.name}).model: {exc.args[0]}") from None
        except ValidationError as err:
            raise ConfigError(f"models[{idx}] ({mc.name}).params: {_problems(err)}") from None
    return out


def _problems(err: ValidationError) -> str:
    """A component's parameter errors on one line: ``key: message; ...``."""
    return "; ".join(f"{'.'.join(map(str, e['loc'])) or '(params)'}: {e['msg']}"
                     for e in err.errors())


def build_regimes(cfg: AppConfig) -> list[RegimeClassifier]:
    """Instantiate the config's regime classifiers; errors name the regime's config key."""
    out = []
    for idx, rc in enumerate(cfg.regimes):
        try:
            cls = regime_class(rc.kind, cfg.strategies)
            out.append(cls(rc.name, rc.instruments, rc.timeframe, rc.params))
        except KeyError as exc:
            raise ConfigError(f"regimes.{idx} ({rc.name}).kind: {exc.args[0]}") from None
        except ValidationError as err:
            raise ConfigError(f"regimes.{idx} ({rc.name}).params: {_problems(err)}") from None
        except ValueError as exc:
            raise ConfigError(f"regimes.{idx} ({rc.name}).instruments: {exc}") from None
    return out


def regime_budgets(cfg: AppConfig, budgets: dict[str, float]) -> RegimeBudgets | None:
    """The config's ``regime_budgets`` for the models that run, with the risk caps they obey."""
    if not cfg.regime_budgets:
        return None
    kinds = {i.id: i.asset_class.value for i in cfg.instruments}
    classes = {mc.name: frozenset(kinds[i] for i in mc.instruments)
               for mc in cfg.models if mc.name in budgets}
    risk = cfg.risk
    total = 1.0
    class_caps: dict[str, float] = {}
    if risk.enabled:
        if risk.gross_leverage.limit is not None:
            total = min(total, risk.gross_leverage.limit)
        class_caps = dict(risk.asset_class_exposure.limits)
    return RegimeBudgets(cfg.regime_budgets, budgets, classes, total, class_caps)


def instruments_of(cfg: AppConfig) -> dict[str, Instrument]:
    """The config's instruments as kernel objects, by id."""
    return {i.id: Instrument(**i.model_dump(exclude={"data"})) for i in cfg.instruments}


def make_sim(cfg: AppConfig, name: str = SIM) -> SimulatedGateway:
    """The simulated exchange with the config's costs and starting account."""
    base, per_instrument = sim_costs(cfg)
    return SimulatedGateway(
        instruments_of(cfg), base,
        base_timeframes=base_timeframes(cfg), initial_cash=cfg.portfolio.initial_cash,
        currency=cfg.portfolio.currency, name=name, costs_by_instrument=per_instrument,
    )


def sim_costs(cfg: AppConfig) -> tuple[SimCosts, dict[str, SimCosts]]:
    """The simulated exchange's costs: the config's, and per instrument where it differs."""
    given = cfg.execution.given()
    per = {iid: SimCosts(**{**given, **o.given()})
           for iid, o in cfg.execution.instruments.items()}
    return SimCosts(**given), per


def gateway_context(cfg: AppConfig, *, trading: bool = True) -> GatewayContext:
    """What a broker factory of ``gateways.registry`` may know of this config."""
    return GatewayContext(instruments_of(cfg), cfg.portfolio.currency,
                          cfg.portfolio.initial_cash, trading, base_timeframes(cfg))


def execution_gateways(cfg: AppConfig) -> set[str]:
    """Gateway names the models route orders to."""
    return {mc.gateway for mc in cfg.models}


@dataclass
class Engine:
    """Every component of one kernel, wired; the same shape in replay and live."""

    cfg: AppConfig
    mode: str
    kernel: Kernel
    instruments: dict[str, Instrument]
    portfolio: Portfolio
    allocator: Allocator
    router: Router
    risk: RiskEngine
    pipeline: Pipeline
    aggregator: BarAggregator
    recorder: Recorder
    gateways: dict[str, Any]
    models: list[Model]
    orders: list[OrderRequest] = field(default_factory=list)
    orders_truncated: bool = False
    financing: FinancingAccrual | None = None
    regimes: RegimeEngine | None = None
    overlays: Overlays | None = None


def build_engine(
    cfg: AppConfig,
    *,
    mode: str = "replay",
    clock: Clock | None = None,
    gateways: dict[str, Any] | None = None,
    models: list[Model] | None = None,
    trades_file: IO[str] | None = None,
    id_prefix: str = "bt",
    start_seq: int = 0,
    record_orders: bool = True,
    journal: OrderJournal | None = None,
) -> Engine:
    """Wire the kernel's components on one bus, in the order bars must reach them.

    ``mode`` is ``replay`` (every model's orders go to the simulated exchange,
    models trade from the first bar, the kill switch is the config's) or a
    trading mode, ``paper``/``live`` (orders go to the gateways the models
    name, nothing trades before the session turns trading on at READY, and the
    kill switch is an in-memory copy that the session drives through
    journaled control records, so a replay of its journal never reads a file).
    """
    trading_session = mode in TRADING_MODES
    clock = clock or ReplayClock()
    kernel = Kernel(clock)
    bus = kernel.bus
    instruments = instruments_of(cfg)
    bases = base_timeframes(cfg)
    portfolio = Portfolio(instruments, cfg.portfolio.initial_cash, base_timeframes=bases)
    if models is None:
        models = build_models(cfg)
    budgets = {m.name: mc.budget for mc in cfg.models for m in models if m.name == mc.name}
    policies = {mc.name: mc.orders for mc in cfg.models
                if not mc.orders.is_default and mc.name in budgets}
    allocator = Allocator(portfolio, budgets,
                          sizing={n: p.sizing for n, p in policies.items()},
                          min_trade_value={n: p.min_trade_value for n, p in policies.items()})
    portfolio.set_attribution(allocator.attribute)
    replay_sim = gateways is None
    if gateways is None:
        gateways = {SIM: make_sim(cfg)}
    for gw in gateways.values():
        gw.bind(bus.publish)
    # Only a venue corrects fills it reported (a late commission, a revised price).
    portfolio.remember_fills = not all(isinstance(gw, SimulatedGateway)
                                       for gw in gateways.values())
    router = Router(gateways, clock, id_prefix=id_prefix, start_seq=start_seq, journal=journal)
    planner = Planner(allocator, portfolio, router.open_quantity, instruments,
                      min_trade_fraction=cfg.planner.min_trade_fraction)
    ks = cfg.risk.kill_switch
    backend = MemoryBackend() if trading_session else backend_from_config(ks.backend, ks.path)
    risk = RiskEngine(cfg.risk, portfolio, router, instruments, clock=clock, bus=bus,
                      intervals=bases, kill_switch=KillSwitch(backend, clock, who="risk-engine"),
                      armed=not trading_session)
    gateway_of = {}
    for idx, mc in enumerate(cfg.models):
        # A replay sends every model's orders to the simulated exchange, whatever
        # broker the model names for paper or live sessions.
        name = SIM if replay_sim else mc.gateway
        if name not in gateways:
            raise ConfigError(f"models.{idx}.gateway: no gateway named {name!r}; "
                              f"available: {sorted(gateways)}")
        for inst in mc.instruments:
            gateway_of[inst] = name
    native = frozenset(n for n, p in policies.items() if p.native)
    for idx, mc in enumerate(cfg.models):
        if mc.name in native:
            gw = gateways[gateway_of[mc.instruments[0]]]
            caps = getattr(gw, "capabilities", None)
            # A journal replay's stand-in declares nothing: the session was checked.
            if caps is not None and OrderType.STOP not in caps.order_types:
                raise ConfigError(f"models.{idx}.orders.native: gateway {gw.name!r} does not "
                                  "declare stop orders; leave native off to emulate them")
    exits = ExitEmulator(policies, portfolio, native) if policies else None
    gate_cfg = {mc.name: mc.gates for mc in cfg.models if not mc.gates.is_default}
    try:
        gates = {m.name: Gates(gate_cfg[m.name], m) for m in models if m.name in gate_cfg}
    except ValueError as exc:
        raise ConfigError(f"models[].gates: {exc}") from None
    pipeline = Pipeline(models, allocator, planner, risk, router, clock, gateway_of=gateway_of,
                        trading=not trading_session, exits=exits, gates=gates)
    given = {mc.name: mc.given_timeframes() for mc in cfg.models}
    for m in models:
        problems = subscription_problems(m, given.get(m.name, [m.timeframe]))
        if problems:
            raise ConfigError("; ".join(problems))
    aggregator = BarAggregator(bus.publish)
    regimes = None
    if cfg.regimes:
        regimes = RegimeEngine(build_regimes(cfg), bus.publish, allocator,
                               regime_budgets(cfg, budgets), pipeline.rebalance,
                               lambda: pipeline.trading, portfolio.last_bar_ts)
        for idx, rc in enumerate(cfg.regimes):
            for inst_id in rc.instruments:
                if inst_id not in bases:
                    raise ConfigError(f"regimes.{idx}.instruments: {inst_id!r} has no data (set "
                                      "its data.path, or stream it with daemon.market_data)")
        for inst_id, tf in regimes.subscriptions():
            if tf % bases[inst_id]:
                raise ConfigError(f"regimes: {inst_id!r}: a regime asks for timeframe "
                                  f"{format_timeframe(tf)}, which is not a multiple of its "
                                  f"data timeframe {format_timeframe(bases[inst_id])}")
            aggregator.add(inst_id, bases[inst_id], tf)
    for inst_id, tf in pipeline.subscriptions():
        if inst_id not in bases:
            raise ConfigError(f"instruments: {inst_id!r} is traded by a model but has no "
                              "data (set its data.path and data.timeframe, or stream it from "
                              "a gateway with daemon.market_data)")
        if tf % bases[inst_id]:
            raise ConfigError(f"instruments: {inst_id!r}: a model asks for timeframe "
                              f"{format_timeframe(tf)}, which is not a multiple of its data "
                              f"timeframe {format_timeframe(bases[inst_id])}")
        aggregator.add(inst_id, bases[inst_id], tf)
    details = None
    sims = [g for g in gateways.values() if isinstance(g, SimulatedGateway)]
    costed = any(g.realistic for g in sims)
    ov_cfg = cfg.portfolio.overlays
    if policies or costed or ov_cfg is not None:
        # One cost-split map: the simulated exchange's (other venues report commission only).
        split = sims[0].cost_split if sims else {}
        details = TradeDetails(pipeline.reasons, split)
    recorder = Recorder(portfolio, trades_file, base_timeframes=bases, details=details)
    engine = Engine(cfg, mode, kernel, instruments, portfolio, allocator, router, risk, pipeline,
                    aggregator, recorder, gateways, models, regimes=regimes)

    # Bar order matters: the recorder samples the state the bar found, fills
    # from earlier decisions happen at this bar's open, then the close marks the
    # portfolio, then risk watches drawdown, then higher timeframes close, then
    # models decide.
    bus.subscribe(Bar, recorder.on_bar)
    base_costs, inst_costs = sim_costs(cfg)
    borrow_of = {i: c.borrow_bps_per_year for i, c in inst_costs.items()
                 if c.borrow_bps_per_year != base_costs.borrow_bps_per_year}
    if (base_costs.borrow_bps_per_year or base_costs.margin_bps_per_year or borrow_of) and all(
            isinstance(g, SimulatedGateway) for g in gateways.values()):
        # Charged on the day's last positions, before this bar moves anything.
        engine.financing = FinancingAccrual(portfolio, base_costs.borrow_bps_per_year,
                                            base_costs.margin_bps_per_year, bases, borrow_of)
        bus.subscribe(Bar, engine.financing.on_bar)
    for gw in gateways.values():
        if hasattr(gw, "on_bar"):
            bus.subscribe(Bar, gw.on_bar)
    bus.subscribe(Bar, portfolio.on_bar)
    bus.subscribe(Bar, risk.on_bar)
    if ov_cfg is not None:
        # After the portfolio and risk saw the bar, before the models: a closed period's
        # re-sizing goes out on this bar, ahead of the models' own decisions.
        engine.overlays = Overlays(ov_cfg, allocator, portfolio, budgets, bases, pipeline,
                                   bus.publish)
        bus.subscribe(Bar, engine.overlays.on_bar)
    if aggregator.active:
        bus.subscribe(Bar, aggregator.on_bar)
    if regimes is not None:
        # After the marks, before the models: a switch of budgets due from an earlier bar
        # is applied before any model decides on this one.
        bus.subscribe(Bar, regimes.on_bar)
    bus.subscribe(Bar, pipeline.on_bar)
    # Risk decides (de-risk, halt, kill switch); the pipeline plans every order that follows.
    bus.subscribe(RiskDirective, pipeline.on_directive)
    bus.subscribe(OrderUpdate, router.on_update)
    bus.subscribe(Fill, router.on_fill)
    if native:
        router.fill_listeners.append(pipeline.on_fill)  # before the portfolio books it
    router.fill_listeners.append(portfolio.on_fill)
    # A venue's late commission or revised price: stored (the router's journal), then booked.
    bus.subscribe(FillCorrection, router.on_fill_correction)
    router.correction_listeners.append(portfolio.on_fill_correction)
    if cfg.data.on_data_end == "close":
        # the pipeline plans the closing order first; the simulated exchange then fills
        # it at the last price, as no later bar of that instrument will come
        bus.subscribe(DataEnded, pipeline.on_data_end)
        for gw in gateways.values():
            if hasattr(gw, "on_data_end"):
                bus.subscribe(DataEnded, gw.on_data_end)
    if record_orders:
        def record(order: Any) -> None:
            # Kept for parity checks and tests; capped so long replays stay bounded.
            if len(engine.orders) < ORDER_RECORD_LIMIT:
                engine.orders.append(order.request)
            else:
                engine.orders_truncated = True

        router.order_listeners.append(record)
    return engine
