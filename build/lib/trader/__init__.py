"""Event-driven trading kernel shared by replay backtests, paper and live sessions."""

__version__ = "0.1.0"
