"""The store: the daemon's memory of orders, fills, state, lifecycle and runs.

``Store`` owns the engine and answers queries; a ``Journal`` is the per-session
writer the router uses (it implements ``trader.engine.router.OrderJournal``).  In the
default, durable mode every journal call is its own committed transaction, so
an order is on disk before the gateway hears of it and a fill is on disk before
the portfolio counts it.  Replay with ``--store`` uses batch mode: one
transaction per many writes, because a replay can simply be run again.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import Connection, Engine, bindparam, func, insert, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import DBAPIError

from risk.killswitch import KillSwitchRecord
from trader.core.events import Fill, OrderRequest, OrderStatus, OrderType, Side, ns_to_iso
from trader.engine.orders import IllegalTransition, Order, check_transition
from trader.store import schema as s
from trader.store.db import StoreError, make_engine, redact, resolve_url
from trader.store.migrate import upgrade

log = structlog.get_logger(__name__)

ORDERS = s.OrderRow.__table__
EVENTS = s.OrderEventRow.__table__
FILLS = s.FillRow.__table__
SESSIONS = s.SessionRow.__table__
RUNS = s.RunRow.__table__
ACCOUNTS = s.AccountSnapshotRow.__table__
POSITIONS = s.PositionSnapshotRow.__table__
RISK_EVENTS = s.RiskEventRow.__table__
TRADING_STATE = s.TradingStateRow.__table__
KILL_SWITCH = s.KillSwitchRow.__table__

# Built once: executing a prepared construct with a parameter dict skips SQLAlchemy's
# per-call statement building, which dominated the cost of a journal write.
_INS_ORDER = ORDERS.insert()
_INS_EVENT = EVENTS.insert()
_UPD_SEQ = (SESSIONS.update().where(SESSIONS.c.id == bindparam("b_sid"))
            .where(SESSIONS.c.last_seq < bindparam("b_seq")).values(last_seq=bindparam("b_seq")))
_UPD_ORDER = ORDERS.update().where(ORDERS.c.client_order_id == bindparam("b_coid")).values(
    status=bindparam("b_status"), filled_quantity=bindparam("b_filled"),
    avg_fill_price=bindparam("b_avg"), broker_order_id=bindparam("b_broker"),
    reason=bindparam("b_reason"), updated_ts=bindparam("b_ts"),
)

OPEN_STATUSES = tuple(st.value for st in OrderStatus if not st.is_terminal)


@dataclass(frozen=True, slots=True)
class SessionInfo:
    """One process start: its row id and the client order id prefix derived from it."""

    id: int
    mode: str
    prefix: str
    start_seq: int


def session_prefix(mode: str, session_id: int) -> str:
    """Client order id prefix: short, alphanumeric, unique because session ids are."""
    return f"{(mode[:1] or 's').lower()}{session_id}"


def tags_text(tags: Sequence[str]) -> str:
    return f",{','.join(tags)}," if tags else ""


class Store:
    """A database holding the daemon's state; SQLite by default, PostgreSQL by URL.

    One ``Store`` belongs to one thread (the kernel's); another thread or process
    (a kill switch watcher, the CLI) opens its own on the same URL.
    """

    def __init__(self, engine: Engine, url: str, *, batch_size: int = 0) -> None:
        self.engine = engine
        self.url = url
        self.batch_size = batch_size
        self._conn: Connection | None = None
        self._pending = 0

    @classmethod
    def open(
        cls,
        database_url: str | None = None,
        data_dir: str | Path | None = None,
        *,
        migrate: bool = True,
        sqlite_synchronous: str = "FULL",
        batch_size: int = 0,
    ) -> Store:
        """Connect, bring the schema to head (unless ``migrate=False``) and return the store.

        ``batch_size`` > 0 commits only every that many writes (replay); 0 commits each one.
        """
        url = resolve_url(database_url, data_dir)
        engine = make_engine(url, sqlite_synchronous=sqlite_synchronous)
        try:
            if migrate:
                before, after = upgrade(engine)
                if before != after:
                    log.info("store_migrated", database=redact(url), before=before, after=after)
        except DBAPIError as exc:
            engine.dispose()
            raise StoreError(f"database {redact(url)}: cannot open: {exc.orig}") from None
        return cls(engine, url, batch_size=batch_size)

    @property
    def safe_url(self) -> str:
        return redact(self.url)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def close(self) -> None:
        self.flush()
        if self._conn is not None:
            self._conn.close()
            self._conn = None
        self.engine.dispose()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- transactions ------------------------------------------------------------
    @contextmanager
    def write(self) -> Iterator[Connection]:
        """A connection to write on; committed on exit (durable) or every ``batch_size`` writes."""
        conn = self._conn
        if conn is None:
            conn = self._conn = self.engine.connect()
        try:
            yield conn
            self._pending += 1
            if self._pending >= self.batch_size:
                conn.commit()
                self._pending = 0
        except BaseException:
            # Start the next write on a fresh connection: this one may be broken (a
            # restarted server), and its transaction is void either way.
            self._conn = None
            self._pending = 0
            try:
                conn.rollback()
                conn.close()
            except Exception:  # noqa: BLE001 - the original error is the one to report
                log.warning("store_connection_discarded", database=self.safe_url)
            raise

    def flush(self) -> None:
        """Commit writes a batch is still holding."""
        if self._conn is not None and self._pending:
            self._conn.commit()
            self._pending = 0

    def read(self) -> Connection:
        """A connection for queries (sees the store's own batched writes)."""
        self.flush()
        return self.engine.connect()

    def insert_ignore(self, table: Any) -> Any:
        """INSERT ... ON CONFLICT DO NOTHING for this dialect."""
        if self.dialect == "postgresql":
            return pg_insert(table).on_conflict_do_nothing()
        if self.dialect == "sqlite":
            return sqlite_insert(table).on_conflict_do_nothing()
        raise StoreError(f"unsupported dialect {self.dialect}")

    # -- sessions -----------------------------------------------------------------
    def begin_session(self, mode: str, name: str, ts: int) -> SessionInfo:
        """Register a process start; its id makes this session's client order ids unique."""
        with self.write() as conn:
            # The prefix needs the id, so insert with a placeholder unique to this row first.
            placeholder = f"~{uuid.uuid4().hex[:30]}"
            sid = conn.execute(
                insert(SESSIONS).values(mode=mode, name=name, started_ts=ts, id_prefix=placeholder,
                                        last_seq=0).returning(SESSIONS.c.id)
            ).scalar_one()
            prefix = session_prefix(mode, sid)
            conn.execute(update(SESSIONS).where(SESSIONS.c.id == sid).values(id_prefix=prefix))
        self.flush()
        return SessionInfo(sid, mode, prefix, 0)

    def end_session(self, session_id: int, ts: int) -> None:
        with self.write() as conn:
            conn.execute(update(SESSIONS).where(SESSIONS.c.id == session_id).values(ended_ts=ts))
        self.flush()

    def session(self, session_id: int) -> dict[str, Any] | None:
        with self.read() as conn:
            q = select(SESSIONS).where(SESSIONS.c.id == session_id)
            row = conn.execute(q).mappings().first()
        return dict(row) if row else None

    def journal(
        self,
        session: SessionInfo,
        *,
        marks: Mapping[str, float] | None = None,
        tags_for: Callable[[OrderRequest], tuple[str, ...]] | None = None,
        default_gateway: str = "",
        clock: Any = None,
        fill_scope: str = "",
    ) -> Journal:
        """The write-ahead journal the router of ``session`` writes through.

        ``fill_scope`` is appended to the gateway name that keys fills: a gateway whose
        execution ids restart with each instance (the simulator in a replay) gets its
        session's prefix, so two runs' ``sim-1`` are two fills, not one.
        """
        return Journal(self, session, marks=marks, tags_for=tags_for,
                       default_gateway=default_gateway, clock=clock, fill_scope=fill_scope)

    # -- orders and fills (queries) --------------------------------------------------------
    def order_row(self, client_order_id: str) -> dict[str, Any] | None:
        with self.read() as conn:
            row = conn.execute(
                select(ORDERS).where(ORDERS.c.client_order_id == client_order_id)
            ).mappings().first()
        return dict(row) if row else None

    def order_rows(self, *, open_only: bool = False) -> list[dict[str, Any]]:
        q = select(ORDERS).order_by(ORDERS.c.created_ts, ORDERS.c.client_order_id)
        if open_only:
            q = q.where(ORDERS.c.status.in_(OPEN_STATUSES))
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def order_events(self, client_order_id: str | None = None) -> list[dict[str, Any]]:
        q = select(EVENTS).order_by(EVENTS.c.id)
        if client_order_id is not None:
            q = q.where(EVENTS.c.client_order_id == client_order_id)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def fills(self, client_order_id: str | None = None, *, gateway: str | None = None,
              since: int | None = None) -> list[Fill]:
        """Stored fills, oldest first; ``gateway`` as keyed (a replay's are ``sim@r7``)."""
        q = select(FILLS).order_by(FILLS.c.ts, FILLS.c.id)
        if client_order_id is not None:
            q = q.where(FILLS.c.client_order_id == client_order_id)
        if gateway is not None:
            q = q.where(FILLS.c.gateway == gateway)
        if since is not None:
            q = q.where(FILLS.c.ts >= since)
        with self.read() as conn:
            return [fill_from_row(r) for r in conn.execute(q).mappings()]

    def fill_rows(self) -> list[dict[str, Any]]:
        with self.read() as conn:
            return [dict(r) for r in conn.execute(select(FILLS).order_by(FILLS.c.id)).mappings()]

    def count_orders(self) -> int:
        return self.count(ORDERS)

    def count(self, table: Any) -> int:
        with self.read() as conn:
            return int(conn.execute(select(func.count()).select_from(table)).scalar_one())

    def positions(self, gateway: str | None = None) -> dict[str, float]:
        """Net position per instrument as the stored fills (of one gateway) add up."""
        out: dict[str, float] = {}
        for f in self.fills(gateway=gateway):
            out[f.instrument_id] = out.get(f.instrument_id, 0.0) + f.quantity * f.side.sign
        return {k: v for k, v in out.items() if abs(v) > 1e-12}

    def last_fill_ts(self, gateway: str | None = None) -> int | None:
        q = select(func.max(FILLS.c.ts))
        if gateway is not None:
            q = q.where(FILLS.c.gateway == gateway)
        with self.read() as conn:
            return conn.execute(q).scalar_one()

    def load_open_orders(self, gateway: str | None = None) -> list[Order]:
        """Open orders of trading sessions as router ``Order`` objects, fills re-counted.

        Orders a replay left open are history, not orders at a broker: never loaded.
        """
        q = (select(ORDERS).outerjoin(SESSIONS, SESSIONS.c.id == ORDERS.c.session_id)
             .where(ORDERS.c.status.in_(OPEN_STATUSES))
             .where((SESSIONS.c.mode.is_(None)) | (SESSIONS.c.mode != "replay"))
             .order_by(ORDERS.c.created_ts, ORDERS.c.client_order_id))
        if gateway is not None:
            q = q.where(ORDERS.c.gateway == gateway)
        with self.read() as conn:
            rows = [dict(r) for r in conn.execute(q).mappings()]
            if not rows:
                return []
            coids = [r["client_order_id"] for r in rows]
            fq = select(FILLS).where(FILLS.c.client_order_id.in_(coids)).order_by(FILLS.c.id)
            by_order: dict[str, list[Fill]] = {}
            for fr in conn.execute(fq).mappings():
                by_order.setdefault(fr["client_order_id"], []).append(fill_from_row(fr))
        return [order_from_row(r, by_order.get(r["client_order_id"], [])) for r in rows]

    def load_order(self, client_order_id: str) -> Order | None:
        row = self.order_row(client_order_id)
        if row is None:
            return None
        return order_from_row(row, self.fills(client_order_id))

    def restore_portfolio(self, portfolio: Any, gateway: str | None = None) -> int:
        """Apply the stored fills of ``gateway`` (None: all) to a fresh portfolio, oldest first.

        Returns how many.  A daemon restores from its own gateways only, so fills of
        replays kept in the same database never reach a trading account.
        """
        fills = self.fills(gateway=gateway)
        for f in fills:
            portfolio.on_fill(f)
        return len(fills)

    # -- snapshots and risk events --------------------------------------------------------
    def snapshot_account(
        self,
        ts: int,
        source: str,
        cash: Mapping[str, float],
        positions: Mapping[str, float],
        *,
        nav: float | None = None,
        avg_prices: Mapping[str, float] | None = None,
    ) -> int:
        with self.write() as conn:
            sid = conn.execute(
                insert(ACCOUNTS).values(ts=ts, source=source, cash=dict(cash), nav=nav)
                .returning(ACCOUNTS.c.id)
            ).scalar_one()
            rows = [
                {"snapshot_id": sid, "instrument_id": inst, "quantity": qty,
                 "avg_price": (avg_prices or {}).get(inst)}
                for inst, qty in sorted(positions.items())
            ]
            if rows:
                conn.execute(insert(POSITIONS), rows)
        return int(sid)

    def latest_snapshot(self, source: str) -> dict[str, Any] | None:
        with self.read() as conn:
            acct = conn.execute(
                select(ACCOUNTS).where(ACCOUNTS.c.source == source)
                .order_by(ACCOUNTS.c.ts.desc(), ACCOUNTS.c.id.desc()).limit(1)
            ).mappings().first()
            if acct is None:
                return None
            pos = conn.execute(
                select(POSITIONS).where(POSITIONS.c.snapshot_id == acct["id"])
            ).mappings().all()
        out = dict(acct)
        out["positions"] = {p["instrument_id"]: p["quantity"] for p in pos}
        return out

    def record_risk_event(self, ts: int, kind: str, reason: str = "",
                          detail: Mapping[str, Any] | None = None) -> None:
        with self.write() as conn:
            # The full text stays in ``detail`` when the reason column cannot hold it.
            conn.execute(insert(RISK_EVENTS).values(ts=ts, kind=kind, reason=reason[:1000],
                                                    detail=dict(detail or {})))

    def risk_events(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = select(RISK_EVENTS).order_by(RISK_EVENTS.c.id)
        if kind is not None:
            q = q.where(RISK_EVENTS.c.kind == kind)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    # -- trading state ------------------------------------------------------------------
    def load_kill_switch(self, scope: str = "default") -> KillSwitchRecord | None:
        """The kill switch row of ``scope`` (``risk.killswitch.DatabaseBackend`` reads it)."""
        with self.read() as conn:
            row = conn.execute(
                select(KILL_SWITCH.c.engaged, KILL_SWITCH.c.reason, KILL_SWITCH.c.changed_by,
                       KILL_SWITCH.c.ts).where(KILL_SWITCH.c.scope == scope)
            ).first()
        if row is None:
            return None
        engaged, reason, who, ts = row
        return KillSwitchRecord(bool(engaged), reason, ts, who, ns_to_iso(ts))

    def save_kill_switch(self, record: KillSwitchRecord, scope: str = "default") -> None:
        """Write the kill switch row, and the change as a ``risk_events`` row (its history)."""
        values = {"engaged": record.engaged, "reason": record.reason[:1000],
                  "changed_by": record.who[:200], "ts": record.ts}
        with self.write() as conn:
            done = conn.execute(
                update(KILL_SWITCH).where(KILL_SWITCH.c.scope == scope).values(**values)
            ).rowcount
            if not done:
                conn.execute(insert(KILL_SWITCH).values(scope=scope, **values))
            conn.execute(insert(RISK_EVENTS).values(
                ts=record.ts,
                kind="kill_switch_engaged" if record.engaged else "kill_switch_released",
                reason=record.reason[:1000], detail={"by": record.who, "scope": scope}))
        self.flush()

    def trading_state(self, scope: str = "default") -> tuple[str, str]:
        """(state, reason); ACTIVE when nothing was ever stored."""
        with self.read() as conn:
            row = conn.execute(
                select(TRADING_STATE.c.state, TRADING_STATE.c.reason)
                .where(TRADING_STATE.c.scope == scope)
            ).first()
        return (row[0], row[1]) if row else ("ACTIVE", "")

    def set_trading_state(self, state: str, reason: str, who: str, ts: int,
                          scope: str = "default") -> None:
        values = {"state": state, "reason": reason, "changed_by": who, "ts": ts}
        with self.write() as conn:
            done = conn.execute(
                update(TRADING_STATE).where(TRADING_STATE.c.scope == scope).values(**values)
            ).rowcount
            if not done:
                conn.execute(insert(TRADING_STATE).values(scope=scope, **values))
            conn.execute(insert(RISK_EVENTS).values(
                ts=ts, kind="trading_state", reason=reason,
                detail={"state": state, "by": who, "scope": scope}))
        self.flush()

    # -- runs -----------------------------------------------------------------------------
    def record_run(
        self,
        kind: str,
        name: str,
        config_hash: str,
        models: Sequence[str],
        started_ts: int,
        ended_ts: int | None,
        metrics: Mapping[str, Any],
        *,
        session_id: int | None = None,
    ) -> int:
        with self.write() as conn:
            rid = conn.execute(
                insert(RUNS).values(kind=kind, name=name, config_hash=config_hash,
                                    models=list(models), started_ts=started_ts,
                                    ended_ts=ended_ts, metrics=dict(metrics),
                                    session_id=session_id)
                .returning(RUNS.c.id)
            ).scalar_one()
        self.flush()
        return int(rid)

    def runs(self, kind: str | None = None) -> list[dict[str, Any]]:
        q = select(RUNS).order_by(RUNS.c.id)
        if kind is not None:
            q = q.where(RUNS.c.kind == kind)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]


class Journal:
    """The router's write-ahead journal for one session (``trader.engine.router.OrderJournal``)."""

    def __init__(
        self,
        store: Store,
        session: SessionInfo,
        *,
        marks: Mapping[str, float] | None = None,
        tags_for: Callable[[OrderRequest], tuple[str, ...]] | None = None,
        default_gateway: str = "",
        clock: Any = None,
        fill_scope: str = "",
    ) -> None:
        self.store = store
        self.fill_scope = fill_scope
        self.session = session
        self.clock = clock  # when given, fills are stamped with when we recorded them too
        self.marks = marks
        self.tags_for = tags_for
        self.default_gateway = default_gateway
        self._status: dict[str, OrderStatus] = {}
        self._seq_sep = len(session.prefix) + 1
        self.refused = 0
        # RETURNING tells "inserted" from "already there" on both backends (rowcount does not
        # when the driver adds an implicit RETURNING).
        self._fill_insert = store.insert_ignore(FILLS).returning(FILLS.c.id)

    # The router calls these three synchronously, in kernel order.
    def order_created(self, order: Order) -> None:
        """Write the order ahead (PENDING_SUBMIT), committed before the router sends it."""
        req = order.request
        tags = order.model_tags or (self.tags_for(req) if self.tags_for else ())
        ref = self.marks.get(req.instrument_id) if self.marks is not None else None
        ts = req.ts
        coid = req.client_order_id
        status = order.status.value
        with self.store.write() as conn:
            conn.execute(_INS_ORDER, {
                "client_order_id": coid, "session_id": self.session.id, "gateway": req.gateway,
                "instrument_id": req.instrument_id, "side": req.side.value,
                "quantity": req.quantity, "order_type": req.order_type.value,
                "limit_price": req.limit_price, "stop_price": req.stop_price,
                "reduce_only": req.reduce_only, "status": status,
                "filled_quantity": order.filled_quantity, "avg_fill_price": order.avg_fill_price,
                "broker_order_id": order.broker_order_id, "reason": order.reason[:500],
                "model_tags": tags_text(tags), "ref_price": ref, "created_ts": ts,
                "updated_ts": ts,
            })
            conn.execute(_INS_EVENT, {
                "client_order_id": coid, "ts": ts, "from_status": None, "to_status": status,
                "filled_quantity": order.filled_quantity,
                "broker_order_id": order.broker_order_id, "reason": order.reason[:500],
            })
            seq = self._seq_of(coid)
            if seq is not None:
                conn.execute(_UPD_SEQ, {"b_sid": self.session.id, "b_seq": seq})
        self._status[coid] = order.status

    def order_changed(self, order: Order, ts: int) -> None:
        """Store a status change and its event; an illegal change is logged and refused."""
        coid = order.client_order_id
        prev = self._status.get(coid)
        if prev is None:
            prev = self._stored_status(coid)
        if prev is None:
            log.warning("order_changed_for_unstored_order", client_order_id=coid)
            return
        try:
            if not check_transition(prev, order.status):
                return  # a repeat of what is stored: nothing to write twice
        except IllegalTransition as exc:
            self.refused += 1
            log.error("illegal_order_transition_refused_by_store", client_order_id=coid,
                      transition=str(exc))
            return
        status = order.status.value
        reason = order.reason[:500]
        with self.store.write() as conn:
            conn.execute(_UPD_ORDER, {
                "b_coid": coid, "b_status": status, "b_filled": order.filled_quantity,
                "b_avg": order.avg_fill_price, "b_broker": order.broker_order_id,
                "b_reason": reason, "b_ts": ts,
            })
            conn.execute(_INS_EVENT, {
                "client_order_id": coid, "ts": ts, "from_status": prev.value, "to_status": status,
                "filled_quantity": order.filled_quantity,
                "broker_order_id": order.broker_order_id, "reason": reason,
            })
        if order.status.is_terminal:
            # Later events for it are refused after a look-up; the cache stays small.
            self._status.pop(coid, None)
        else:
            self._status[coid] = order.status

    def fill_received(self, order: Order | None, fill: Fill) -> bool:
        """Store a fill once per (gateway, trade id); False if it was already stored."""
        gateway = order.request.gateway if order is not None else self._gateway_of(fill)
        gateway += self.fill_scope
        recorded = self.clock.now() if self.clock is not None else fill.ts
        with self.store.write() as conn:
            inserted = conn.execute(self._fill_insert, {
                "gateway": gateway, "trade_id": fill.trade_id,
                "client_order_id": fill.client_order_id, "instrument_id": fill.instrument_id,
                "side": fill.side.value, "quantity": fill.quantity, "price": fill.price,
                "commission": fill.commission, "broker_order_id": fill.broker_order_id,
                "ts": fill.ts, "recorded_ts": recorded,
            }).scalar_one_or_none() is not None
        if not inserted:
            log.info("duplicate_fill_ignored", trade_id=fill.trade_id, gateway=gateway,
                     client_order_id=fill.client_order_id)
        return inserted

    # -- helpers -----------------------------------------------------------------------
    def _seq_of(self, coid: str) -> int | None:
        prefix = self.session.prefix
        if coid.startswith(prefix) and coid[len(prefix):len(prefix) + 1] == "-":
            tail = coid[self._seq_sep:]
            if tail.isdigit():
                return int(tail)
        return None

    def _stored_status(self, coid: str) -> OrderStatus | None:
        with self.store.read() as conn:
            v = conn.execute(select(ORDERS.c.status)
                             .where(ORDERS.c.client_order_id == coid)).scalar_one_or_none()
        return OrderStatus(v) if v is not None else None

    def _gateway_of(self, fill: Fill) -> str:
        with self.store.read() as conn:
            gw = conn.execute(select(ORDERS.c.gateway)
                              .where(ORDERS.c.client_order_id == fill.client_order_id)
                              ).scalar_one_or_none()
        return gw or self.default_gateway


class BufferedJournal(Journal):
    """Replay's journal: the same rows, collected in memory and written in bulk.

    Nothing here is durable until ``flush`` (every ``flush_every`` orders and at
    the end): a replay that dies is simply run again.  Live and paper sessions use
    ``Journal``, which commits each call.
    """

    def __init__(self, store: Store, session: SessionInfo, *, flush_every: int = 5000,
                 **kw: Any) -> None:
        super().__init__(store, session, **kw)
        self.flush_every = flush_every
        self._new: dict[str, dict[str, Any]] = {}
        self._updates: list[dict[str, Any]] = []
        self._events: list[dict[str, Any]] = []
        self._fills: list[dict[str, Any]] = []
        self._fill_keys: set[tuple[str, str]] = set()
        self._last_seq = 0
        self._bulk_fill_insert = store.insert_ignore(FILLS)

    def order_created(self, order: Order) -> None:
        req = order.request
        tags = order.model_tags or (self.tags_for(req) if self.tags_for else ())
        ref = self.marks.get(req.instrument_id) if self.marks is not None else None
        coid = req.client_order_id
        status = order.status.value
        self._new[coid] = {
            "client_order_id": coid, "session_id": self.session.id, "gateway": req.gateway,
            "instrument_id": req.instrument_id, "side": req.side.value, "quantity": req.quantity,
            "order_type": req.order_type.value, "limit_price": req.limit_price,
            "stop_price": req.stop_price, "reduce_only": req.reduce_only, "status": status,
            "filled_quantity": order.filled_quantity, "avg_fill_price": order.avg_fill_price,
            "broker_order_id": order.broker_order_id, "reason": order.reason[:500],
            "model_tags": tags_text(tags), "ref_price": ref, "created_ts": req.ts,
            "updated_ts": req.ts,
        }
        self._events.append({
            "client_order_id": coid, "ts": req.ts, "from_status": None, "to_status": status,
            "filled_quantity": order.filled_quantity, "broker_order_id": order.broker_order_id,
            "reason": order.reason[:500],
        })
        seq = self._seq_of(coid)
        if seq is not None and seq > self._last_seq:
            self._last_seq = seq
        self._status[coid] = order.status
        if len(self._new) >= self.flush_every:
            self.flush()

    def order_changed(self, order: Order, ts: int) -> None:
        coid = order.client_order_id
        prev = self._status.get(coid)
        if prev is None:
            self.flush()
            prev = self._stored_status(coid)
        if prev is None:
            log.warning("order_changed_for_unstored_order", client_order_id=coid)
            return
        try:
            if not check_transition(prev, order.status):
                return
        except IllegalTransition as exc:
            self.refused += 1
            log.error("illegal_order_transition_refused_by_store", client_order_id=coid,
                      transition=str(exc))
            return
        status = order.status.value
        reason = order.reason[:500]
        row = self._new.get(coid)
        if row is not None:  # not written yet: write its latest state once
            row.update(status=status, filled_quantity=order.filled_quantity,
                       avg_fill_price=order.avg_fill_price,
                       broker_order_id=order.broker_order_id, reason=reason, updated_ts=ts)
        else:
            self._updates.append({
                "b_coid": coid, "b_status": status, "b_filled": order.filled_quantity,
                "b_avg": order.avg_fill_price, "b_broker": order.broker_order_id,
                "b_reason": reason, "b_ts": ts,
            })
        self._events.append({
            "client_order_id": coid, "ts": ts, "from_status": prev.value, "to_status": status,
            "filled_quantity": order.filled_quantity, "broker_order_id": order.broker_order_id,
            "reason": reason,
        })
        if order.status.is_terminal:
            self._status.pop(coid, None)
        else:
            self._status[coid] = order.status

    def fill_received(self, order: Order | None, fill: Fill) -> bool:
        gateway = (order.request.gateway if order is not None else self._gateway_of(fill))
        gateway += self.fill_scope
        key = (gateway, fill.trade_id)
        if key in self._fill_keys:
            return False
        self._fill_keys.add(key)
        self._fills.append({
            "gateway": gateway, "trade_id": fill.trade_id, "client_order_id": fill.client_order_id,
            "instrument_id": fill.instrument_id, "side": fill.side.value,
            "quantity": fill.quantity, "price": fill.price, "commission": fill.commission,
            "broker_order_id": fill.broker_order_id, "ts": fill.ts,
            "recorded_ts": self.clock.now() if self.clock is not None else fill.ts,
        })
        return True

    def flush(self) -> None:
        """Write everything collected so far, in foreign-key order, and commit."""
        if not (self._new or self._updates or self._events or self._fills):
            return
        with self.store.write() as conn:
            if self._new:
                conn.execute(_INS_ORDER, list(self._new.values()))
            if self._updates:
                conn.execute(_UPD_ORDER, self._updates)
            if self._events:
                conn.execute(_INS_EVENT, self._events)
            if self._fills:
                conn.execute(self._bulk_fill_insert, self._fills)
            if self._last_seq:
                conn.execute(_UPD_SEQ, {"b_sid": self.session.id, "b_seq": self._last_seq})
        self.store.flush()
        self._new, self._updates, self._events, self._fills = {}, [], [], []


def fill_from_row(r: Mapping[str, Any]) -> Fill:
    return Fill(r["ts"], r["client_order_id"], r["trade_id"], r["instrument_id"], Side(r["side"]),
                r["quantity"], r["price"], r["commission"], r["broker_order_id"])


def order_from_row(r: Mapping[str, Any], fills: Sequence[Fill]) -> Order:
    """Rebuild a router ``Order``; filled quantity comes from the fills, which are authoritative."""
    req = OrderRequest(
        r["created_ts"], r["client_order_id"], r["instrument_id"], Side(r["side"]), r["quantity"],
        OrderType(r["order_type"]), r["limit_price"], r["stop_price"], bool(r["reduce_only"]),
        r["gateway"],
    )
    filled = sum(f.quantity for f in fills)
    avg = sum(f.quantity * f.price for f in fills) / filled if filled else 0.0
    tags = tuple(t for t in (r["model_tags"] or "").split(",") if t)
    return Order(req, OrderStatus(r["status"]), filled, avg, r["broker_order_id"] or "",
                 r["reason"] or "", {f.trade_id for f in fills}, tags)


def open_store(cfg: Any = None, data_dir: str | Path | None = None, *, migrate: bool = True,
               batch_size: int = 0) -> Store:
    """Open the store of a deployment: ``cfg`` is its ``StoreConfig`` (None: defaults and
    environment), ``data_dir`` its data directory (SQLite ``trader.db`` lives there)."""
    if cfg is None:
        return Store.open(None, data_dir, migrate=migrate, batch_size=batch_size)
    return Store.open(cfg.database_url, data_dir, migrate=migrate,
                      sqlite_synchronous=cfg.sqlite_synchronous, batch_size=batch_size)
