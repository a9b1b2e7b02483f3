"""``trader backtest --journal``: replay a session's journal and check its orders.

The replay kernel is built by the same ``build_session`` as the daemon's, with
the journal header's id prefix and sequence start; bars, broker events and
control records are applied in the recorded order.  The orders it produces are
compared field by field with the ``OrderRequest`` records the session wrote.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from trader.core.clock import ReplayClock
from trader.core.events import OrderRequest, OverlayEvent, RegimeChanged
from trader.engine.build import Engine
from trader.engine.config import AppConfig, ConfigError
from trader.live.journal import JournalHeader, read_journal
from trader.live.session import (
    RecordedGateway,
    build_session,
    make_sim,
    replay_records,
)
from trader.live.start_state import restore_header_state

# A session's budget decision: journaled as it happened, derived again by the replay.
Decision = RegimeChanged | OverlayEvent


def order_key(o: OrderRequest) -> tuple:
    """What parity compares: instrument, side, quantity, type, prices and decision time."""
    return (o.instrument_id, str(o.side), o.quantity, str(o.order_type), o.limit_price,
            o.stop_price, o.ts)


@dataclass
class ReplayOutcome:
    header: JournalHeader
    session_orders: list[OrderRequest]
    replay_orders: list[OrderRequest]
    events: int
    torn_tail: bool = False
    notes: list[str] = field(default_factory=list)
    engine: Engine | None = None  # the replay's engine (portfolio, router, ...)
    # Budget decisions (RegimeChanged, OverlayEvent) the session journaled, and the ones
    # the replay derived from the bars, each in the order they were published.
    session_decisions: list[Decision] = field(default_factory=list)
    replay_decisions: list[Decision] = field(default_factory=list)

    @property
    def identical(self) -> bool:
        return ([order_key(o) for o in self.session_orders]
                == [order_key(o) for o in self.replay_orders]
                and self.session_decisions == self.replay_decisions)

    def first_difference(self) -> str | None:
        for i, (x, y) in enumerate(zip(self.session_decisions, self.replay_decisions,
                                       strict=False)):
            if x != y:
                return f"decision {i}: session {x} != replay {y}"
        if len(self.session_decisions) != len(self.replay_decisions):
            return (f"session has {len(self.session_decisions)} budget decisions, replay has "
                    f"{len(self.replay_decisions)}")
        a, b = self.session_orders, self.replay_orders
        for i, (x, y) in enumerate(zip(a, b, strict=False)):
            if order_key(x) != order_key(y):
                return f"order {i}: session {order_key(x)} != replay {order_key(y)}"
        if len(a) != len(b):
            return f"session has {len(a)} orders, replay has {len(b)}"
        return None


def config_from_header(header: JournalHeader, path: Path) -> AppConfig:
    if not header.config:
        raise ConfigError(f"{path}: journal carries no config; pass the session's config file")
    try:
        return AppConfig.model_validate(header.config)
    except Exception as exc:
        raise ConfigError(f"{path}: the journal's embedded config is invalid: {exc}") from None


def replay_journal(path: Path, cfg: AppConfig | None = None) -> ReplayOutcome:
    """Replay one journal through the replay kernel; return both sides' orders."""
    read = read_journal(path)
    header = read.header
    cfg = cfg or config_from_header(header, path)
    gateways = {}
    for mc in cfg.models:
        name = mc.gateway
        if name not in gateways:
            gateways[name] = (make_sim(cfg, name) if name in header.simulated_gateways
                              else RecordedGateway(name))
    # Built exactly as the session was: its mode, its id prefix and sequence, its gateways.
    session = build_session(cfg, ReplayClock(), mode=header.mode, id_prefix=header.id_prefix,
                            start_seq=header.start_seq, gateways=gateways)
    restore_header_state(session, header, path)
    expected: list[OrderRequest] = []
    produced: list[OrderRequest] = []  # unbounded, unlike Engine.orders
    session.engine.router.order_listeners.append(lambda o: produced.append(o.request))
    journaled: list[Decision] = []
    derived: list[Decision] = []
    bus = session.engine.kernel.bus
    bus.subscribe(RegimeChanged, derived.append)
    bus.subscribe(OverlayEvent, derived.append)
    n = session.engine.kernel.run(replay_records(session, read.records, expected, journaled))
    return ReplayOutcome(header, expected, produced, n, read.torn_tail, read.notes,
                         session.engine, journaled, derived)
