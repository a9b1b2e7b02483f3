"""The state a trading session starts from, compact enough to sit in its journal header.

A session restores the fills of earlier sessions of its own mode (never a
backtest's, never the other trading mode's), then reconciles with its brokers.
What it ends up with is captured as a *start state*: per book (the account and
each model's virtual slice) cash, commission and per-instrument quantity,
average price and realized PnL, plus the marks, the NAV peak, each simulated
exchange's cash, positions and execution counter, and the risk engine's restored
state (trading state, drawdown high-water mark, budget scale: they gate and size
the session's orders, so its journal's replay needs them).  That is O(instruments), not
O(fills), however many sessions came before.

The daemon stores the start state (``Store.save_restored_state``: an id and a
content hash) and writes it, with that id and hash, into the journal header; it
then loads the state back into its own engine with ``load_state``, the very
function the journal replay uses, so both start from the same bits.

Per-model attribution is not re-derived: each model book is carried as the
restore left it (restored fills meet no targets yet, so today they sit in the
unattributed book), and attribution of new fills starts from there.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from gateways.sim import SimulatedGateway
from trader.core.events import Fill
from trader.engine.config import AppConfig, ConfigError, without_secrets
from trader.engine.portfolio import Book, Position
from trader.live.journal import JournalError, JournalHeader
from trader.live.session import Session, header_models, restore_state
from trader.store.snapshots import state_hash

STATE_VERSION = 1


class RestoreError(ConfigError):
    """Stored state this config cannot take on (an instrument it does not configure)."""


def restorable_fills(store: Any, cfg: AppConfig, mode: str, gateways: Iterable[str]) -> list[Fill]:
    """The fills a ``mode`` session restores; an unconfigured instrument is a clear error."""
    fills = store.session_fills(mode, sorted(gateways))
    known = {i.id for i in cfg.instruments}
    for f in fills:
        if f.instrument_id not in known:
            raise RestoreError(
                f"stored {mode} fill {f.trade_id} (order {f.client_order_id}) is in instrument "
                f"{f.instrument_id!r}, which this config does not configure (instruments: "
                f"{sorted(known)}); add it back to close the position, or use another store")
    return fills


def restore_fills_quietly(session: Session, fills: Sequence[Fill]) -> int:
    """Apply earlier sessions' fills without telling fill listeners (risk, recorder).

    The replay of the journal starts from the resulting state without seeing these
    fills, so neither side's listeners may see them.
    """
    pf = session.engine.portfolio
    listeners, pf.fill_listeners = pf.fill_listeners, []
    try:
        return restore_state(session, fills)
    finally:
        pf.fill_listeners = listeners


def _book_state(book: Book) -> dict[str, Any]:
    return {"cash": book.cash, "commission": book.commission,
            "positions": {i: [p.quantity, p.avg_price, p.realized]
                          for i, p in sorted(book.positions.items())
                          if p.quantity or p.realized}}


def capture_state(session: Session) -> dict[str, Any]:
    """The engine's restorable state as plain JSON-able data (see the module doc)."""
    engine = session.engine
    pf = engine.portfolio
    sims = {name: {"cash": dict(gw.cash), "positions": dict(sorted(gw.positions.items())),
                   "seq": gw._seq}
            for name, gw in sorted(engine.gateways.items()) if isinstance(gw, SimulatedGateway)}
    state = {"version": STATE_VERSION, "account": _book_state(pf.account),
             "models": {m: _book_state(b) for m, b in sorted(pf.models.items())},
             "marks": dict(sorted(pf.marks.items())), "hwm": pf.hwm, "sims": sims,
             # Restored halt, high-water mark and budget scale: they size and gate orders.
             "risk": engine.risk.state_snapshot()}
    if engine.overlays is not None:
        # A model halted by its own drawdown stays halted (absent: no overlays configured,
        # so earlier headers and their hashes stay as they were).
        state["overlays"] = engine.overlays.state_snapshot()
    bad = [k for k, v in pf.marks.items() if not math.isfinite(v)]
    if bad or not math.isfinite(pf.hwm):
        raise ValueError(f"start state has non-finite values for {bad or ['hwm']}")
    return state


def _load_book(book: Book, data: Mapping[str, Any]) -> None:
    book.cash = float(data["cash"])
    book.commission = float(data.get("commission", 0.0))
    book.positions = {i: Position(float(q), float(a), float(r))
                      for i, (q, a, r) in data.get("positions", {}).items()}


def load_state(session: Session, state: Mapping[str, Any]) -> None:
    """Make the engine's portfolio and simulated exchanges exactly ``state`` (no listener runs)."""
    version = state.get("version")
    if version != STATE_VERSION:
        raise ValueError(f"start state version {version!r} is not {STATE_VERSION}")
    engine = session.engine
    pf = engine.portfolio
    unknown = sorted({*state["account"]["positions"], *state["marks"]} - set(pf.instruments))
    if unknown:
        raise RestoreError(f"start state holds instrument(s) {unknown} this config does not "
                           f"configure (instruments: {sorted(pf.instruments)})")
    # The replay of the journal loads this same state knowing no earlier fill: a correction
    # of one must be unknown to both sides alike (the store applies it at the next start).
    pf.forget_fills()
    _load_book(pf.account, state["account"])
    pf.models.clear()
    for name, data in state["models"].items():
        _load_book(pf.model_book(name), data)
    pf.marks.clear()
    pf.marks.update({k: float(v) for k, v in state["marks"].items()})
    pf.open_positions.clear()
    pf.open_positions.update({i: p for i, p in pf.account.positions.items() if p.quantity})
    pf.hwm = float(state["hwm"])
    pf._revalue()
    for name, data in state.get("sims", {}).items():
        gw = engine.gateways.get(name)
        if isinstance(gw, SimulatedGateway):
            gw.cash = {k: float(v) for k, v in data["cash"].items()}
            gw.positions = {k: float(v) for k, v in data["positions"].items()}
            gw._seq = int(data["seq"])
    risk = state.get("risk")  # absent in headers written before it was carried
    if risk is not None and risk != engine.risk.state_snapshot():
        engine.risk.restore(risk)
    overlays = state.get("overlays")
    if overlays is not None and engine.overlays is not None:
        engine.overlays.restore(overlays)


def restore_header_state(session: Session, header: JournalHeader, path: Any = "") -> None:
    """Start a journal replay where the session started (either header version)."""
    if header.state:
        if header.state_hash and state_hash(header.state) != header.state_hash:
            raise JournalError(f"{path}: the header's start state does not match its hash "
                               f"{header.state_hash[:12]} (stored as snapshot {header.state_id})")
        load_state(session, header.state)
    else:  # version 1: every earlier fill, replayed
        restore_state(session, header.fills)
    restore_state(session, (), [(o, header.open_filled.get(o.client_order_id, 0.0))
                                for o in header.open_orders])


def start_header(session: Session, cfg: AppConfig, *, session_id: str, mode: str,
                 started_wall_ns: int, id_prefix: str, start_seq: int,
                 simulated: Sequence[str], store: Any = None,
                 store_session_id: int | None = None) -> JournalHeader:
    """Capture the start state, store it, load it back, and describe it in a journal header.

    Loading it back makes the daemon start from exactly what its journal's replay
    will load.  The embedded config has secret-looking keys removed (config
    validation already refuses them in ``gateways``; this is the second line).
    """
    state = capture_state(session)
    load_state(session, state)
    state_id, digest = None, state_hash(state)
    if store is not None:
        state_id, digest = store.save_restored_state(store_session_id, started_wall_ns, state)
    open_orders = list(session.engine.router.active.values())
    return JournalHeader(
        2, session_id, mode, cfg.name, started_wall_ns, id_prefix, start_seq, tuple(simulated),
        cfg.portfolio.initial_cash, {}, header_models(cfg),
        without_secrets(cfg.model_dump(mode="json")), [], [o.request for o in open_orders],
        {o.client_order_id: o.filled_quantity for o in open_orders},
        state=state, state_id=state_id, state_hash=digest,
    )
