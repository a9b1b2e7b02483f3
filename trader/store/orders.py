"""The write-ahead order log: orders, their status events and fills.

A ``Journal`` is the per-session writer the router uses (it implements
``trader.engine.router.OrderJournal``).  In the default, durable mode every
journal call is its own committed transaction, so an order is on disk before the
gateway hears of it and a fill is on disk before the portfolio counts it.
Replay with ``--store`` uses ``BufferedJournal``: the same rows (built by the same
functions below), one transaction per many writes, because a replay can simply
be run again.  ``OrderQueries`` is the part of ``Store`` that reads them back.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, func, select

from trader.core.events import Fill, FillCorrection, OrderRequest, OrderStatus, OrderType, Side
from trader.engine.orders import IllegalTransition, Order, check_transition
from trader.store.db import logger
from trader.store.tables import EVENTS, FILLS, ORDERS, SESSIONS
from trader.store.views import OPEN_STATUSES, fill_from_row, mode_positions, net_positions
from trader.store.views import session_fills as _session_fills

if TYPE_CHECKING:
    from trader.store.sessions import SessionInfo
    from trader.store.store import Store


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


def tags_text(tags: Sequence[str]) -> str:
    """Model tags as stored: comma-delimited on both sides so LIKE '%,name,%' finds one."""
    return f",{','.join(tags)}," if tags else ""


# -- row builders: the one definition of each row, for both journals ------------------------
def order_row_values(order: Order, session_id: int, tags: Sequence[str],
                     ref_price: float | None) -> dict[str, Any]:
    """The ``orders`` row of a new order, as written ahead."""
    req = order.request
    return {
        "client_order_id": req.client_order_id, "session_id": session_id,
        "gateway": req.gateway, "instrument_id": req.instrument_id, "side": req.side.value,
        "quantity": req.quantity, "order_type": req.order_type.value,
        "limit_price": req.limit_price, "stop_price": req.stop_price,
        "reduce_only": req.reduce_only, "status": order.status.value,
        "filled_quantity": order.filled_quantity, "avg_fill_price": order.avg_fill_price,
        "broker_order_id": order.broker_order_id, "reason": order.reason[:500],
        "model_tags": tags_text(tags), "ref_price": ref_price, "created_ts": req.ts,
        "updated_ts": req.ts,
    }


def order_update_values(order: Order, ts: int) -> dict[str, Any]:
    """Parameters of the prepared status update of a stored order."""
    return {
        "b_coid": order.client_order_id, "b_status": order.status.value,
        "b_filled": order.filled_quantity, "b_avg": order.avg_fill_price,
        "b_broker": order.broker_order_id, "b_reason": order.reason[:500], "b_ts": ts,
    }


def event_row_values(order: Order, ts: int, prev: OrderStatus | None) -> dict[str, Any]:
    """The ``order_events`` row of a status change (``prev`` None: the order's creation)."""
    return {
        "client_order_id": order.client_order_id, "ts": ts,
        "from_status": prev.value if prev is not None else None,
        "to_status": order.status.value, "filled_quantity": order.filled_quantity,
        "broker_order_id": order.broker_order_id, "reason": order.reason[:500],
    }


def fill_row_values(fill: Fill, gateway: str, recorded_ts: int) -> dict[str, Any]:
    """The ``fills`` row of one execution, keyed by ``gateway`` (with its scope)."""
    return {
        "gateway": gateway, "trade_id": fill.trade_id,
        "client_order_id": fill.client_order_id, "instrument_id": fill.instrument_id,
        "side": fill.side.value, "quantity": fill.quantity, "price": fill.price,
        "commission": fill.commission, "broker_order_id": fill.broker_order_id,
        "ts": fill.ts, "recorded_ts": recorded_ts, "fee_asset": fill.fee_asset,
        "fee_quantity": fill.fee_quantity, "fee_in_instrument": fill.fee_in_instrument,
    }


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
        row = self._new_order_row(order)
        with self.store.write() as conn:
            conn.execute(_INS_ORDER, row)
            conn.execute(_INS_EVENT, event_row_values(order, row["created_ts"], None))
            seq = self._seq_of(order.client_order_id)
            if seq is not None:
                conn.execute(_UPD_SEQ, {"b_sid": self.session.id, "b_seq": seq})
        self._status[order.client_order_id] = order.status

    def order_changed(self, order: Order, ts: int) -> None:
        """Store a status change and its event; an illegal change is logged and refused."""
        prev = self._change_from(order)
        if prev is None:
            return
        with self.store.write() as conn:
            conn.execute(_UPD_ORDER, order_update_values(order, ts))
            conn.execute(_INS_EVENT, event_row_values(order, ts, prev))
        self._remember(order)

    def fill_received(self, order: Order | None, fill: Fill) -> bool:
        """Store a fill once per (gateway, trade id); False if it was already stored."""
        row = self._fill_row(order, fill)
        with self.store.write() as conn:
            inserted = conn.execute(self._fill_insert, row).scalar_one_or_none() is not None
        if not inserted:
            logger(__name__).info("duplicate_fill_ignored", trade_id=fill.trade_id,
                                  gateway=row["gateway"], client_order_id=fill.client_order_id)
        return inserted

    def fill_corrected(self, order: Order | None, fix: FillCorrection) -> None:
        """Write a venue's corrected commission and price into the stored fill, so the
        books a later start restores from the store include them.

        A corrected quantity is not stored: the session does not apply it either
        (``Portfolio.on_fill_correction``); reconciliation adopts the broker's position.
        """
        values = {k: v for k, v in (("commission", fix.commission), ("price", fix.price))
                  if v is not None}
        if not values:
            return
        gateway = (order.request.gateway if order is not None
                   else self._gateway_of(fix.client_order_id)) + self.fill_scope
        q = (FILLS.update().where(FILLS.c.gateway == gateway)
             .where(FILLS.c.trade_id == fix.trade_id).values(**values))
        with self.store.write() as conn:
            found = conn.execute(q).rowcount
        if not found:
            logger(__name__).warning("fill_correction_for_unstored_fill", trade_id=fix.trade_id,
                                     gateway=gateway, client_order_id=fix.client_order_id)

    # -- helpers shared with BufferedJournal ----------------------------------------------
    def _new_order_row(self, order: Order) -> dict[str, Any]:
        req = order.request
        tags = order.model_tags or (self.tags_for(req) if self.tags_for else ())
        ref = self.marks.get(req.instrument_id) if self.marks is not None else None
        return order_row_values(order, self.session.id, tags, ref)

    def _change_from(self, order: Order) -> OrderStatus | None:
        """The stored status this change starts from; None when nothing is to be written."""
        coid = order.client_order_id
        prev = self._status.get(coid)
        if prev is None:
            prev = self._stored_status(coid)
        if prev is None:
            logger(__name__).warning("order_changed_for_unstored_order", client_order_id=coid)
            return None
        try:
            if not check_transition(prev, order.status):
                return None  # a repeat of what is stored: nothing to write twice
        except IllegalTransition as exc:
            self.refused += 1
            logger(__name__).error("illegal_order_transition_refused_by_store",
                                   client_order_id=coid, transition=str(exc))
            return None
        return prev

    def _remember(self, order: Order) -> None:
        if order.status.is_terminal:
            # Later events for it are refused after a look-up; the cache stays small.
            self._status.pop(order.client_order_id, None)
        else:
            self._status[order.client_order_id] = order.status

    def _fill_row(self, order: Order | None, fill: Fill) -> dict[str, Any]:
        gateway = (order.request.gateway if order is not None
                   else self._gateway_of(fill.client_order_id))
        recorded = self.clock.now() if self.clock is not None else fill.ts
        return fill_row_values(fill, gateway + self.fill_scope, recorded)

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

    def _gateway_of(self, client_order_id: str) -> str:
        with self.store.read() as conn:
            gw = conn.execute(select(ORDERS.c.gateway)
                              .where(ORDERS.c.client_order_id == client_order_id)
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
        """Collect the order's row and creation event; flushed every ``flush_every`` orders."""
        row = self._new_order_row(order)
        coid = order.client_order_id
        self._new[coid] = row
        self._events.append(event_row_values(order, row["created_ts"], None))
        seq = self._seq_of(coid)
        if seq is not None and seq > self._last_seq:
            self._last_seq = seq
        self._status[coid] = order.status
        if len(self._new) >= self.flush_every:
            self.flush()

    def order_changed(self, order: Order, ts: int) -> None:
        """Collect a status change (folded into the new row when it is not written yet)."""
        coid = order.client_order_id
        if coid not in self._status:
            self.flush()  # the stored status is the one to check the change against
        prev = self._change_from(order)
        if prev is None:
            return
        update = order_update_values(order, ts)
        row = self._new.get(coid)
        if row is not None:  # not written yet: write its latest state once
            row.update(status=update["b_status"], filled_quantity=update["b_filled"],
                       avg_fill_price=update["b_avg"], broker_order_id=update["b_broker"],
                       reason=update["b_reason"], updated_ts=ts)
        else:
            self._updates.append(update)
        self._events.append(event_row_values(order, ts, prev))
        self._remember(order)

    def fill_received(self, order: Order | None, fill: Fill) -> bool:
        """Collect a fill once per (gateway, trade id)."""
        row = self._fill_row(order, fill)
        key = (row["gateway"], fill.trade_id)
        if key in self._fill_keys:
            return False
        self._fill_keys.add(key)
        self._fills.append(row)
        return True

    def fill_corrected(self, order: Order | None, fix: FillCorrection) -> None:
        """Correct the stored fill once what was collected is written (it may be among it)."""
        self.flush()
        super().fill_corrected(order, fix)

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


class OrderQueries:
    """``Store`` queries over the order log (mixed into ``Store``)."""

    def journal(
        self: Store,
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

    def order_row(self: Store, client_order_id: str) -> dict[str, Any] | None:
        """The stored row of one order, or None."""
        with self.read() as conn:
            row = conn.execute(
                select(ORDERS).where(ORDERS.c.client_order_id == client_order_id)
            ).mappings().first()
        return dict(row) if row else None

    def order_rows(self: Store, *, open_only: bool = False) -> list[dict[str, Any]]:
        """Stored orders, oldest first (``open_only``: not in a terminal status)."""
        q = select(ORDERS).order_by(ORDERS.c.created_ts, ORDERS.c.client_order_id)
        if open_only:
            q = q.where(ORDERS.c.status.in_(OPEN_STATUSES))
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def order_events(self: Store, client_order_id: str | None = None) -> list[dict[str, Any]]:
        """Status changes in the order they were applied (of one order, or all)."""
        q = select(EVENTS).order_by(EVENTS.c.id)
        if client_order_id is not None:
            q = q.where(EVENTS.c.client_order_id == client_order_id)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(q).mappings()]

    def fills(self: Store, client_order_id: str | None = None, *, gateway: str | None = None,
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

    def session_fills(self: Store, mode: str, gateways: Sequence[str]) -> list[Fill]:
        """The fills a ``mode`` (paper or live) session restores, oldest first
        (``trader.store.views.session_fills``)."""
        with self.query() as query:
            return _session_fills(query, mode, gateways)

    def fill_rows(self: Store) -> list[dict[str, Any]]:
        """Every stored fill row, in insertion order."""
        with self.read() as conn:
            return [dict(r) for r in conn.execute(select(FILLS).order_by(FILLS.c.id)).mappings()]

    def count_orders(self: Store) -> int:
        """How many orders are stored."""
        return self.count(ORDERS)

    def positions(self: Store, gateway: str | None = None, *,
                  mode: str | None = None) -> dict[str, float]:
        """Net position per instrument as the stored fills (of one gateway) add up, net of
        fees charged in the instrument itself.

        With ``mode`` (paper or live): only what a session of that mode holds, as it
        restores it (``session_fills``), never a backtest's fills in the same database.
        """
        if mode is None:
            return net_positions(self.fills(gateway=gateway))
        with self.query() as query:
            return mode_positions(query, mode, gateway)

    def last_fill_ts(self: Store, gateway: str | None = None) -> int | None:
        """The newest stored fill's ts (of one gateway)."""
        q = select(func.max(FILLS.c.ts))
        if gateway is not None:
            q = q.where(FILLS.c.gateway == gateway)
        with self.read() as conn:
            return conn.execute(q).scalar_one()

    def load_open_orders(self: Store, gateway: str | None = None) -> list[Order]:
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

    def load_order(self: Store, client_order_id: str) -> Order | None:
        """One stored order as a router ``Order`` (fills re-counted), or None."""
        row = self.order_row(client_order_id)
        if row is None:
            return None
        return order_from_row(row, self.fills(client_order_id))
