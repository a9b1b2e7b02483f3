"""The database tables, declared once as SQLAlchemy Core tables.

Timestamps are integer UTC nanoseconds like every kernel event, so rows sort
and compare exactly on SQLite and PostgreSQL alike.  The Alembic migrations in
``migrations/versions`` create exactly these tables; a test compares the two.

Core ``Table`` objects, not ORM classes: every query is a Core statement, and
the ORM (and sqlmodel on top of it) is a large share of the imports that each
``trader status`` and each daemon start would pay for nothing.  Column defaults
are Python-side (``default=``), applied by inserts that leave a column out.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    MetaData,
    String,
    Table,
    UniqueConstraint,
)

# One MetaData for the store, so migrations and tests compare against it only.
metadata = MetaData()


def _id() -> Column[Any]:
    return Column("id", Integer, primary_key=True)


def _ts(name: str, *, nullable: bool = False, index: bool = False) -> Column[Any]:
    return Column(name, BigInteger, nullable=nullable, index=index)


def _str(name: str, length: int, *, default: str | None = None, index: bool = False,
         nullable: bool = False, **kw: Any) -> Column[Any]:
    return Column(name, String(length), nullable=nullable, default=default, index=index, **kw)


def _float(name: str, *, default: float | None = None, nullable: bool = False) -> Column[Any]:
    return Column(name, Float, nullable=nullable, default=default)


def _flag(name: str) -> Column[Any]:
    return Column(name, Boolean, nullable=False, default=False)


def _json(name: str, *, nullable: bool = False) -> Column[Any]:
    return Column(name, JSON, nullable=nullable)


# One start of the process (replay, paper or live): the source of id prefixes.
SESSIONS = Table(
    "sessions", metadata,
    _id(),
    _str("mode", 16),
    _str("name", 200),
    _ts("started_ts"),
    _ts("ended_ts", nullable=True),
    _str("id_prefix", 32, unique=True),
    # Highest client order sequence written ahead in this session.
    Column("last_seq", BigInteger, nullable=False, default=0),
    # Per instrument, the ts of the last bar this session consumed from a replay feed,
    # so the next session resumes after it instead of replaying the data again.
    _json("last_bars", nullable=True),
)

# An order as written ahead and then kept current.
ORDERS = Table(
    "orders", metadata,
    _str("client_order_id", 64, primary_key=True),
    Column("session_id", Integer, ForeignKey("sessions.id"), nullable=True, index=True),
    _str("gateway", 64),
    _str("instrument_id", 64),
    _str("side", 4),
    _float("quantity"),
    _str("order_type", 8),
    _float("limit_price", nullable=True),
    _float("stop_price", nullable=True),
    _flag("reduce_only"),
    _str("status", 20, index=True),
    _float("filled_quantity", default=0.0),
    _float("avg_fill_price", default=0.0),
    _str("broker_order_id", 64, default=""),
    _str("reason", 500, default=""),
    # Comma-delimited (",a,b,") so a model's orders are found with LIKE '%,a,%'.
    _str("model_tags", 500, default=""),
    _float("ref_price", nullable=True),
    _ts("created_ts"),
    _ts("updated_ts"),
)

# Every status change of an order, in the order it was applied.
ORDER_EVENTS = Table(
    "order_events", metadata,
    _id(),
    Column("client_order_id", String(64), ForeignKey("orders.client_order_id"),
           nullable=False, index=True),
    _ts("ts"),
    _str("from_status", 20, nullable=True),
    _str("to_status", 20),
    _float("filled_quantity", default=0.0),
    _str("broker_order_id", 64, default=""),
    _str("reason", 500, default=""),
)

# One execution; a broker's execution id is stored once per gateway.
FILLS = Table(
    "fills", metadata,
    _id(),
    _str("gateway", 64),
    _str("trade_id", 128),
    # No foreign key: a fill of an order we never wrote (placed by hand, say)
    # must still be stored, or positions could not be reconciled.
    _str("client_order_id", 64, index=True),
    _str("instrument_id", 64),
    _str("side", 4),
    _float("quantity"),
    _float("price"),
    _float("commission", default=0.0),
    _str("broker_order_id", 64, default=""),
    _ts("ts", index=True),
    _ts("recorded_ts"),
    # a fee charged in kind (base asset, BNB): see ``trader.core.events.Fill``
    _str("fee_asset", 16, default=""),
    _float("fee_quantity", default=0.0),
    _flag("fee_in_instrument"),
    UniqueConstraint("gateway", "trade_id", name="uq_fills_gateway_trade"),
)

# Cash and valuation of the account at one moment.
ACCOUNT_SNAPSHOTS = Table(
    "account_snapshots", metadata,
    _id(),
    _ts("ts", index=True),
    _str("source", 32),  # "portfolio" or a gateway name
    _json("cash"),
    _float("nav", nullable=True),
)

# A position belonging to an account snapshot.
POSITION_SNAPSHOTS = Table(
    "position_snapshots", metadata,
    _id(),
    Column("snapshot_id", Integer, ForeignKey("account_snapshots.id"), nullable=False,
           index=True),
    _str("instrument_id", 64),
    _float("quantity"),
    _float("avg_price", nullable=True),
)

# The compact state a trading session started from, referenced by its journal header.
RESTORED_STATES = Table(
    "restored_states", metadata,
    _id(),
    Column("session_id", Integer, ForeignKey("sessions.id"), nullable=True, index=True),
    _ts("ts"),
    _str("content_hash", 64),
    _json("state"),
)

# What an account held before the daemon first traded it (per asset), per gateway.
# Taken once, at the first reconciliation of a gateway: the wallet minus what the
# daemon already held.  Reconciliation subtracts it from the wallet, so coins that
# were there before are never counted as the daemon's position.
ACCOUNT_BASELINES = Table(
    "account_baselines", metadata,
    _str("gateway", 64, primary_key=True),
    _ts("ts"),
    _json("balances"),
)

# What the risk engine must remember across restarts (halts, drawdown high-water mark).
RISK_STATE = Table(
    "risk_state", metadata,
    _str("scope", 64, primary_key=True),
    _ts("ts"),
    _json("state"),
)

# A risk decision or incident worth keeping: rejections, halts, reconciliation flags.
RISK_EVENTS = Table(
    "risk_events", metadata,
    _id(),
    _ts("ts", index=True),
    _str("kind", 64),
    _str("reason", 1000, default=""),
    _json("detail"),
)

# The single current trading state (ACTIVE, REDUCING, HALTED) per account scope.
TRADING_STATE = Table(
    "trading_state", metadata,
    _str("scope", 64, primary_key=True),
    _str("state", 16),
    _str("reason", 1000, default=""),
    _str("changed_by", 200, default=""),
    _ts("ts"),
)

# The persisted kill switch a running daemon watches; released only by a command.
KILL_SWITCH = Table(
    "kill_switch", metadata,
    _str("scope", 64, primary_key=True),
    _flag("engaged"),
    _str("reason", 1000, default=""),
    _str("changed_by", 200, default=""),
    _ts("ts"),
)

# The lifecycle stage a model is at now.
MODEL_STAGES = Table(
    "model_stages", metadata,
    _str("name", 200, primary_key=True),
    _str("stage", 16),
    _ts("since_ts"),
)

# Every stage change: who, when, why, and whether a gate was overridden.
MODEL_STAGE_HISTORY = Table(
    "model_stage_history", metadata,
    _id(),
    _str("name", 200, index=True),
    _str("from_stage", 16),
    _str("to_stage", 16),
    _ts("ts"),
    _str("operator", 200),
    _str("reason", 1000),
    _flag("forced"),
    _str("gate_report", 4000, default=""),
)

# A backtest or a trading session's summary: which config, which models, what came out.
RUNS = Table(
    "runs", metadata,
    _id(),
    _str("kind", 16, index=True),  # backtest | replay | paper | live
    _str("name", 200),
    Column("session_id", Integer, ForeignKey("sessions.id"), nullable=True),
    _str("config_hash", 64),
    _json("models"),
    _ts("started_ts"),
    _ts("ended_ts", nullable=True),
    _json("metrics"),
)
