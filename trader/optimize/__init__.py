"""Optimisation over replay backtests on Optuna: experiments, studies, workers, reports.

Sits above ``trader.replay`` (each trial is a backtest run in-process) and below
``trader.cli``; see ``docs/architecture.md``.
"""
