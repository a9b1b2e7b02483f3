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

from gateways.base import EventSink, NoBrokerRecord
from gateways.sim import SimulatedGateway
from models.lifecycle import MODE_STAGES
from models.registry import model_class
from trader.core.clock import Clock
from trader.core.events import Fill, OrderRequest, OrderStatus, OverlayEvent, RegimeChanged
from trader.engine.build import Engine, build_engine, execution_gateways, make_sim
from trader.engine.config import AppConfig, ModelConfig
from trader.engine.orders import Order
from trader.live.journal import JournalControl, JournalHeader

log = structlog.get_logger(__name__)


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
    mode: str
    paused_models: set[str] = field(default_factory=set)
    trade_standing_targets: bool = True




def build_session(
    cfg: AppConfig,
    clock: Clock,
    *,
    mode: str,
    id_prefix: str,
    start_seq: int = 0,
    gateways: dict[str, Any] | None = None,
) -> Session:
    """Assemble the kernel for a session (daemon) or for the replay of its journal."""
    if gateways is None:
        names = sorted(execution_gateways(cfg) or {"sim"})
        gateways = {name: make_sim(cfg, name) for name in names}
    engine = build_engine(cfg, mode=mode, clock=clock, gateways=gateways, id_prefix=id_prefix,
                          start_seq=start_seq, record_orders=True)
    return Session(engine, mode, trade_standing_targets=cfg.daemon.trade_on_ready)


def apply_control(session: Session, rec: JournalControl) -> None:
    """Apply a session decision; the daemon and the journal replay both call this."""
    kind, value = rec.kind, rec.value
    engine = session.engine
    if kind == "trading":
        if value:
            # READY: risk starts watching, and targets formed in warm-up are traded.
            engine.risk.arm(rec.ts)
            engine.pipeline.start_trading(trade_standing_targets=session.trade_standing_targets)
        else:
            engine.pipeline.trading = False
    elif kind == "accepting":
        engine.router.accepting = bool(value)
    elif kind == "halt":
        if isinstance(value, dict):
            engaged, reason = bool(value.get("engaged")), str(value.get("reason") or "")
            who = str(value.get("who") or "operator")
        else:
            engaged, reason, who = bool(value), "", "operator"
        # The risk engine's (in-memory) kill switch follows the persistent one, so its
        # policy applies: cancel open orders, optional flattening, HALTED state.
        switch = engine.risk.kill_switch
        if switch.engaged != engaged:
            text = reason or ("kill switch engaged" if engaged else "kill switch released")
            (switch.engage if engaged else switch.release)(text, who=who)
    elif kind == "stale":
        inst, is_stale = value
        if is_stale:
            engine.risk.stale.add(inst)
        else:
            engine.risk.stale.discard(inst)
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
    runner = session.engine.pipeline
    allowed = MODE_STAGES[session.mode] or frozenset()
    by_name = {m.name: m for m in runner.models}
    changes: list[str] = []
    for mc in new:
        old = by_name.get(mc.name)
        if old is None:
            changes.append(f"{mc.name}: new model ignored (adding models needs a restart)")
            continue
        cls = model_class(mc.model, session.engine.cfg.strategies)
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
    runner = session.engine.pipeline
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
                   outputs: list[OrderRequest] | None = None,
                   decisions: list[Any] | None = None) -> Iterator[Any]:
    """Events for ``Kernel.run``; control records are applied as they are reached.

    ``OrderRequest`` records and the budget decisions (``RegimeChanged``,
    ``OverlayEvent``) are the session's outputs: collected into ``outputs`` and
    ``decisions`` (the replay derives its own from the bars).
    """
    for rec in records:
        t = type(rec)
        if t is JournalControl:
            apply_control(session, rec)
        elif t is OrderRequest:
            if outputs is not None:
                outputs.append(rec)
        elif t is RegimeChanged or t is OverlayEvent:
            if decisions is not None:
                decisions.append(rec)
        elif t is JournalHeader:
            continue
        else:
            yield rec
