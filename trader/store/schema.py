"""The database tables, declared once with sqlmodel.

Timestamps are integer UTC nanoseconds like every kernel event, so rows sort
and compare exactly on SQLite and PostgreSQL alike.  The Alembic migrations in
``migrations/versions`` create exactly these tables; a test compares the two.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Column, UniqueConstraint
from sqlmodel import Field, SQLModel
from sqlmodel.main import SQLModelConfig

# One MetaData for the store, so migrations and tests compare against it only.
metadata = SQLModel.metadata


class _Table(SQLModel):
    """Base of the table classes: their pydantic validators are built on first use only.

    The store reads and writes through SQLAlchemy Core on each class's ``__table__``
    and never validates a row as a model; building fifteen validators at import cost
    about 7 ms (of ~50 ms for the store's import), paid by every command that opens it.
    """

    model_config = SQLModelConfig(defer_build=True)


def _ts(**kw: Any) -> Any:
    return Field(sa_column=Column(BigInteger, **kw))


class SessionRow(_Table, table=True):
    """One start of the process (replay, paper or live): the source of id prefixes."""

    __tablename__ = "sessions"

    id: int | None = Field(default=None, primary_key=True)
    mode: str = Field(max_length=16)
    name: str = Field(max_length=200)
    started_ts: int = _ts(nullable=False)
    ended_ts: int | None = _ts(nullable=True)
    id_prefix: str = Field(max_length=32, unique=True)
    # Highest client order sequence written ahead in this session.
    last_seq: int = Field(default=0, sa_type=BigInteger)
    # Per instrument, the ts of the last bar this session consumed from a replay feed,
    # so the next session resumes after it instead of replaying the data again.
    last_bars: dict[str, int] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class OrderRow(_Table, table=True):
    """An order as written ahead and then kept current."""

    __tablename__ = "orders"

    client_order_id: str = Field(primary_key=True, max_length=64)
    session_id: int | None = Field(default=None, foreign_key="sessions.id", index=True)
    gateway: str = Field(max_length=64)
    instrument_id: str = Field(max_length=64)
    side: str = Field(max_length=4)
    quantity: float
    order_type: str = Field(max_length=8)
    limit_price: float | None = None
    stop_price: float | None = None
    reduce_only: bool = False
    status: str = Field(max_length=20, index=True)
    filled_quantity: float = 0.0
    avg_fill_price: float = 0.0
    broker_order_id: str = Field(default="", max_length=64)
    reason: str = Field(default="", max_length=500)
    # Comma-delimited (",a,b,") so a model's orders are found with LIKE '%,a,%'.
    model_tags: str = Field(default="", max_length=500)
    ref_price: float | None = None
    created_ts: int = _ts(nullable=False)
    updated_ts: int = _ts(nullable=False)


class OrderEventRow(_Table, table=True):
    """Every status change of an order, in the order it was applied."""

    __tablename__ = "order_events"

    id: int | None = Field(default=None, primary_key=True)
    client_order_id: str = Field(foreign_key="orders.client_order_id", index=True, max_length=64)
    ts: int = _ts(nullable=False)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str = Field(max_length=20)
    filled_quantity: float = 0.0
    broker_order_id: str = Field(default="", max_length=64)
    reason: str = Field(default="", max_length=500)


class FillRow(_Table, table=True):
    """One execution; a broker's execution id is stored once per gateway."""

    __tablename__ = "fills"
    __table_args__ = (UniqueConstraint("gateway", "trade_id", name="uq_fills_gateway_trade"),)

    id: int | None = Field(default=None, primary_key=True)
    gateway: str = Field(max_length=64)
    trade_id: str = Field(max_length=128)
    # No foreign key: a fill of an order we never wrote (placed by hand, say)
    # must still be stored, or positions could not be reconciled.
    client_order_id: str = Field(max_length=64, index=True)
    instrument_id: str = Field(max_length=64)
    side: str = Field(max_length=4)
    quantity: float
    price: float
    commission: float = 0.0
    broker_order_id: str = Field(default="", max_length=64)
    ts: int = _ts(nullable=False, index=True)
    recorded_ts: int = _ts(nullable=False)
    # a fee charged in kind (base asset, BNB): see ``trader.core.events.Fill``
    fee_asset: str = Field(default="", max_length=16)
    fee_quantity: float = 0.0
    fee_in_instrument: bool = False


class AccountSnapshotRow(_Table, table=True):
    """Cash and valuation of the account at one moment."""

    __tablename__ = "account_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    ts: int = _ts(nullable=False, index=True)
    source: str = Field(max_length=32)  # "portfolio" or a gateway name
    cash: dict[str, float] = Field(sa_column=Column(JSON, nullable=False))
    nav: float | None = None


class PositionSnapshotRow(_Table, table=True):
    """A position belonging to an account snapshot."""

    __tablename__ = "position_snapshots"

    id: int | None = Field(default=None, primary_key=True)
    snapshot_id: int = Field(foreign_key="account_snapshots.id", index=True)
    instrument_id: str = Field(max_length=64)
    quantity: float
    avg_price: float | None = None


class RestoredStateRow(_Table, table=True):
    """The compact state a trading session started from, referenced by its journal header."""

    __tablename__ = "restored_states"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int | None = Field(default=None, foreign_key="sessions.id", index=True)
    ts: int = _ts(nullable=False)
    content_hash: str = Field(max_length=64)
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class AccountBaselineRow(_Table, table=True):
    """What an account held before the daemon first traded it (per asset), per gateway.

    Taken once, at the first reconciliation of a gateway: the wallet minus what the
    daemon already held.  Reconciliation subtracts it from the wallet, so coins that
    were there before are never counted as the daemon's position.
    """

    __tablename__ = "account_baselines"

    gateway: str = Field(primary_key=True, max_length=64)
    ts: int = _ts(nullable=False)
    balances: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class RiskStateRow(_Table, table=True):
    """What the risk engine must remember across restarts (halts, drawdown high-water mark)."""

    __tablename__ = "risk_state"

    scope: str = Field(primary_key=True, max_length=64)
    ts: int = _ts(nullable=False)
    state: dict[str, Any] = Field(sa_column=Column(JSON, nullable=False))


class RiskEventRow(_Table, table=True):
    """A risk decision or incident worth keeping: rejections, halts, reconciliation flags."""

    __tablename__ = "risk_events"

    id: int | None = Field(default=None, primary_key=True)
    ts: int = _ts(nullable=False, index=True)
    kind: str = Field(max_length=64)
    reason: str = Field(default="", max_length=1000)
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class TradingStateRow(_Table, table=True):
    """The single current trading state (ACTIVE, REDUCING, HALTED) per account scope."""

    __tablename__ = "trading_state"

    scope: str = Field(primary_key=True, max_length=64)
    state: str = Field(max_length=16)
    reason: str = Field(default="", max_length=1000)
    changed_by: str = Field(default="", max_length=200)
    ts: int = _ts(nullable=False)


class KillSwitchRow(_Table, table=True):
    """The persisted kill switch a running daemon watches; released only by a command."""

    __tablename__ = "kill_switch"

    scope: str = Field(primary_key=True, max_length=64)
    engaged: bool = False
    reason: str = Field(default="", max_length=1000)
    changed_by: str = Field(default="", max_length=200)
    ts: int = _ts(nullable=False)


class ModelStageRow(_Table, table=True):
    """The lifecycle stage a model is at now."""

    __tablename__ = "model_stages"

    name: str = Field(primary_key=True, max_length=200)
    stage: str = Field(max_length=16)
    since_ts: int = _ts(nullable=False)


class ModelStageHistoryRow(_Table, table=True):
    """Every stage change: who, when, why, and whether a gate was overridden."""

    __tablename__ = "model_stage_history"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(max_length=200, index=True)
    from_stage: str = Field(max_length=16)
    to_stage: str = Field(max_length=16)
    ts: int = _ts(nullable=False)
    operator: str = Field(max_length=200)
    reason: str = Field(max_length=1000)
    forced: bool = False
    gate_report: str = Field(default="", max_length=4000)


class RunRow(_Table, table=True):
    """A backtest or a trading session's summary: which config, which models, what came out."""

    __tablename__ = "runs"

    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=16, index=True)  # backtest | replay | paper | live
    name: str = Field(max_length=200)
    session_id: int | None = Field(default=None, foreign_key="sessions.id")
    config_hash: str = Field(max_length=64)
    models: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    started_ts: int = _ts(nullable=False)
    ended_ts: int | None = _ts(nullable=True)
    metrics: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
