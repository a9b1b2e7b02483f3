"""One trading session's engine, assembled identically for the daemon and for journal replay.

Parity (a journal replays to the session's orders) holds by construction:

* the daemon and ``trader backtest --journal`` build the engine with the same
  function (``build_session``), the same id prefix and sequence start;
* decisions are stamped with the time of the event being dispatched (both
  clocks advance to each event's ``ts``), never with the wall clock;
* every session decision that changes how later events are handled (trading
  on/off, order intake, kill switch, stale feeds, model reloads) is a
  ``JournalControl`` record applied by ``apply_control`` in both places, at the
  same position in the event stream;
* fills the kernel simulates itself (``SimulatedGateway``) are re-simulated from
  the same bars; events of external gateways are replayed as recorded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import structlog

from gateways.base import EventSink, GatewayContext, NoBrokerRecord
from gateways.sim import SimCosts, SimulatedGateway
from models.registry import model_class
from risk.engine import RiskAction, RiskDecision, RiskEngine
from trader.core.clock import Clock
from trader.core.events import Fill, OrderRequest, OrderStatus
from trader.core.instruments import Instrument
from trader.engine.config import AppConfig, ModelConfig
from trader.engine.orders import Order
from trader.live.journal import JournalControl, JournalHeader
from trader.replay.backtest import Engine, base_timeframes, build_engine, build_models

log = structlog.get_logger(__name__)

# Which lifecycle stages each mode runs (the lifecycle registry's rule, when installed).
MODE_STAGES: dict[str, frozenset[str]] = {
    "paper": frozenset({"candidate", "paper"}),
    "live": frozenset({"live"}),
    "replay": frozenset({"research", "candidate", "paper", "live"}),
}
try:
    from models.lifecycle import MODE_STAGES as _REGISTRY_STAGES  # type: ignore[import-not-found]

    MODE_STAGES.update({k: v for k, v in _REGISTRY_STAGES.items() if v is not None})
except ImportError:
    pass


class SessionGate:
    """The daemon's controls in front of the risk engine: kill switch and stale feeds.

    It delegates every order to the risk engine; while the kill switch is
    engaged it rejects everything, and on a stale instrument it rejects orders
    that would grow the position (reducing is allowed).
    """

    def __init__(self, inner: RiskEngine, engine: Engine) -> None:
        self.inner = inner
        self.engine = engine
        self.halted = False
        self.stale: set[str] = set()
        self.rejections = 0

    def check(self, order: OrderRequest) -> RiskDecision:
        if self.halted:
            self.rejections += 1
            return RiskDecision(RiskAction.REJECT, 0.0, "kill_switch", "kill switch engaged")
        if order.instrument_id in self.stale and self._grows(order):
            self.rejections += 1
            return RiskDecision(RiskAction.REJECT, 0.0, "stale_data",
                                f"no recent bar for {order.instrument_id}")
        return self.inner.check(order)

    def _grows(self, order: OrderRequest) -> bool:
        pos = self.engine.portfolio.position(order.instrument_id)
        pos += self.engine.router.open_quantity(order.instrument_id)
        after = pos + order.quantity * order.side.sign
        return abs(after) > abs(pos) + 1e-12

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


class RecordedGateway(NoBrokerRecord):
    """Stands in for an external broker during journal replay.

    Orders are accepted silently: the broker's answers (updates, fills) are
    already in the journal at the position the session consumed them.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.submitted: list[OrderRequest] = []

    def bind(self, sink: EventSink) -> None:  # noqa: ARG002 - nothing to emit
        return None

    def submit(self, order: OrderRequest) -> None:
        self.submitted.append(order)

    def cancel(self, client_order_id: str) -> None:  # noqa: ARG002
        return None

    async def connect(self) -> None:
        return None

    async def close(self) -> None:
        return None



@dataclass
class Session:
    """An engine plus the session-level state that control records change."""

    engine: Engine
    gate: SessionGate
    mode: str
    paused_models: set[str] = field(default_factory=set)


def execution_gateways(cfg: AppConfig) -> set[str]:
    """Gateway names the models route orders to."""
    return {mc.gateway for mc in cfg.models}


def gateway_context(cfg: AppConfig, *, trading: bool = True) -> GatewayContext:
    """What a broker factory of ``gateways.registry`` may know of this config."""
    instruments = {i.id: Instrument(**i.model_dump(exclude={"data"})) for i in cfg.instruments}
    return GatewayContext(instruments, cfg.portfolio.currency, cfg.portfolio.initial_cash,
                          trading, base_timeframes(cfg))


def make_sim(cfg: AppConfig, name: str = "sim") -> SimulatedGateway:
    instruments = {i.id: Instrument(**i.model_dump(exclude={"data"})) for i in cfg.instruments}
    e = cfg.execution
    return SimulatedGateway(
        instruments, SimCosts(e.slippage_bps, e.commission_bps, e.fee_per_order),
        base_timeframes=base_timeframes(cfg), initial_cash=cfg.portfolio.initial_cash,
        currency=cfg.portfolio.currency, name=name,
    )


def session_risk_factory() -> Any:
    """The risk engine with an in-memory kill switch: the daemon feeds it from the persistent
    switch through journaled control records, so replay never reads a file."""
    try:
        from risk.killswitch import KillSwitch, MemoryBackend  # type: ignore[import-not-found]
    except ImportError:  # the placeholder engine has no kill switch of its own
        return None

    def factory(**kw: Any) -> RiskEngine:
        switch = KillSwitch(MemoryBackend(), kw.get("clock"), who="risk-engine")
        return RiskEngine(**kw, kill_switch=switch)  # type: ignore[call-arg]

    return factory


def build_session(
    cfg: AppConfig,
    clock: Clock,
    *,
    mode: str,
    id_prefix: str,
    start_seq: int = 0,
    gateways: dict[str, Any] | None = None,
    risk: Any = None,
) -> Session:
    """Assemble the kernel for a session (daemon) or for the replay of its journal."""
    if gateways is None:
        names = sorted(execution_gateways(cfg) or {"sim"})
        gateways = {name: make_sim(cfg, name) for name in names}
    if risk is None:
        risk = session_risk_factory()
    engine = build_engine(cfg, clock=clock, gateways=gateways, models=build_models(cfg), risk=risk,
                          id_prefix=id_prefix, record_orders=True)
    engine.router._seq = start_seq  # client order ids continue across restarts
    gate = SessionGate(engine.risk, engine)
    engine.runner.risk = gate
    engine.runner.trading = False  # warm-up first; a control record turns trading on
    return Session(engine, gate, mode)


def apply_control(session: Session, rec: JournalControl) -> None:
    """Apply a session decision; the daemon and the journal replay both call this."""
    kind, value = rec.kind, rec.value
    engine = session.engine
    if kind == "trading":
        engine.runner.trading = bool(value)
    elif kind == "accepting":
        engine.router.accepting = bool(value)
    elif kind == "halt":
        if isinstance(value, dict):
            engaged, reason = bool(value.get("engaged")), str(value.get("reason") or "")
            who = str(value.get("who") or "operator")
        else:
            engaged, reason, who = bool(value), "", "operator"
        session.gate.halted = engaged
        # The risk engine's own (in-memory) kill switch follows, so its policy applies
        # (cancel open orders, optional flattening, HALTED state).
        switch = getattr(session.gate.inner, "kill_switch", None)
        if switch is not None and bool(getattr(switch, "engaged", False)) != engaged:
            text = reason or ("kill switch engaged" if engaged else "kill switch released")
            (switch.engage if engaged else switch.release)(text, who=who)
    elif kind == "stale":
        inst, is_stale = value
        if is_stale:
            session.gate.stale.add(inst)
        else:
            session.gate.stale.discard(inst)
    elif kind == "reload":
        reload_models(session, [ModelConfig.model_validate(m) for m in value])
    elif kind == "note":
        pass
    else:
        raise ValueError(f"unknown journal control record kind {kind!r}")


def reload_models(session: Session, new: list[ModelConfig]) -> list[str]:
    """SIGHUP: new params replace a model (fresh state); stages pause or resume it.

    Positions are never touched: a paused model's targets stay where they are,
    and a model with new parameters keeps its old targets until it decides again.
    Returns what changed, for the log.
    """
    runner = session.engine.runner
    allowed = MODE_STAGES[session.mode]
    by_name = {m.name: m for m in runner.models}
    changes: list[str] = []
    for mc in new:
        old = by_name.get(mc.name)
        if old is None:
            changes.append(f"{mc.name}: new model ignored (adding models needs a restart)")
            continue
        cls = model_class(mc.model)
        if type(old) is not cls or cls.Params(**mc.params) != old.params:
            replacement = cls(mc.name, old.instruments, old.timeframe, mc.params)
            runner.replace_model(old, replacement)
            by_name[mc.name] = replacement
            changes.append(f"{mc.name}: params -> {mc.params}")
        if mc.stage not in allowed and mc.name not in session.paused_models:
            session.paused_models.add(mc.name)
            changes.append(f"{mc.name}: stage {mc.stage} -> paused")
        elif mc.stage in allowed and mc.name in session.paused_models:
            session.paused_models.discard(mc.name)
            changes.append(f"{mc.name}: stage {mc.stage} -> resumed")
    _apply_pauses(session)
    return changes


def _apply_pauses(session: Session) -> None:
    runner = session.engine.runner
    runner.subscribe(m for m in runner.models if m.name not in session.paused_models)


def restore_state(session: Session, fills: Iterable[Fill],
                  open_orders: Iterable[tuple[OrderRequest, float]] = ()) -> int:
    """Start from where earlier sessions left off: apply their fills, adopt open orders.

    The simulated exchanges get the same fills (their cash and positions are the
    broker-side truth reconciliation compares with) and continue their trade ids
    after the highest one used, so a new fill never collides with a stored one.
    """
    engine = session.engine
    n = 0
    sims = {name: gw for name, gw in engine.gateways.items() if isinstance(gw, SimulatedGateway)}
    for fill in fills:
        engine.portfolio.on_fill(fill)
        n += 1
        for gw in sims.values():
            if fill.trade_id.startswith(f"{gw.name}-"):
                _seed_sim_fill(gw, fill)
    for request, filled in open_orders:
        order = Order(request)
        order.status = OrderStatus.ACCEPTED
        order.filled_quantity = filled
        engine.router.adopt(order)
    return n


def _seed_sim_fill(gw: SimulatedGateway, fill: Fill) -> None:
    sign = fill.side.sign
    mult = gw.instruments[fill.instrument_id].multiplier if fill.instrument_id in gw.instruments \
        else 1.0
    gw.positions[fill.instrument_id] = gw.positions.get(fill.instrument_id, 0.0) + sign * \
        fill.quantity
    gw.cash[gw.currency] = (gw.cash.get(gw.currency, 0.0) - sign * fill.quantity * fill.price
                            * mult - fill.commission)
    suffix = fill.trade_id.rsplit("-", 1)[-1]
    if suffix.isdigit() and int(suffix) > gw._seq:
        gw._seq = int(suffix)


def header_models(cfg: AppConfig) -> list[dict[str, Any]]:
    return [m.model_dump(mode="json") for m in cfg.models]


def replay_records(session: Session, records: Iterable[Any],
                   outputs: list[OrderRequest] | None = None) -> Iterator[Any]:
    """Events for ``Kernel.run``; control records are applied as they are reached.

    ``OrderRequest`` records are the session's outputs: collected into ``outputs``.
    """
    for rec in records:
        t = type(rec)
        if t is JournalControl:
            apply_control(session, rec)
        elif t is OrderRequest:
            if outputs is not None:
                outputs.append(rec)
        elif t is JournalHeader:
            continue
        else:
            yield rec
