"""The store's tables as SQLAlchemy ``Table`` objects, named once for every query module."""

from __future__ import annotations

from trader.store import schema as s

ORDERS = s.OrderRow.__table__
EVENTS = s.OrderEventRow.__table__
FILLS = s.FillRow.__table__
SESSIONS = s.SessionRow.__table__
RUNS = s.RunRow.__table__
ACCOUNTS = s.AccountSnapshotRow.__table__
POSITIONS = s.PositionSnapshotRow.__table__
RESTORED = s.RestoredStateRow.__table__
RISK_EVENTS = s.RiskEventRow.__table__
RISK_STATE = s.RiskStateRow.__table__
TRADING_STATE = s.TradingStateRow.__table__
KILL_SWITCH = s.KillSwitchRow.__table__
BASELINES = s.AccountBaselineRow.__table__
