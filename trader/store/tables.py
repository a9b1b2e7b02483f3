"""The store's tables, named once for every query module (declared in ``schema``)."""

from __future__ import annotations

from trader.core.events import OrderStatus
from trader.store import schema as s

ORDERS = s.ORDERS
EVENTS = s.ORDER_EVENTS
FILLS = s.FILLS
SESSIONS = s.SESSIONS
RUNS = s.RUNS
ACCOUNTS = s.ACCOUNT_SNAPSHOTS
POSITIONS = s.POSITION_SNAPSHOTS
RESTORED = s.RESTORED_STATES
RISK_EVENTS = s.RISK_EVENTS
RISK_STATE = s.RISK_STATE
TRADING_STATE = s.TRADING_STATE
KILL_SWITCH = s.KILL_SWITCH
BASELINES = s.ACCOUNT_BASELINES

OPEN_STATUSES = tuple(st.value for st in OrderStatus if not st.is_terminal)
# Session modes whose orders reach a broker (or a paper account standing in for one);
# a replay's orders and fills are history, never state to restore.
TRADING_MODES = ("paper", "live")
