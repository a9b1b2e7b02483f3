"""The kernel's SmaCross trades equal an independent plain loop on the shipped SPY data."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from trader.engine.config import AppConfig
from trader.replay.backtest import run_backtest

ROOT = Path(__file__).resolve().parents[3]
DATA = ROOT / "data" / "spy_1d.parquet"
DAY_NS = 86_400 * 1_000_000_000

CASH = 100_000.0
BUDGET = 0.8
SLIP_BPS = 3.0
COMM_BPS = 1.5
FEE = 1.25


def plain_loop(fast_n: int, slow_n: int) -> list[tuple[int, str, float, float, float]]:
    """SmaCross with no engine: decide on each daily close, fill at the next open.

    Sizing: budget x NAV / close, rounded down to whole shares; buys pay
    open x (1 + slippage), sells get open x (1 - slippage); commission is bps of
    notional plus a fixed fee per order.
    """
    table = pq.read_table(DATA)
    opens = table.column("open").to_pylist()
    closes = table.column("close").to_pylist()
    starts = [int(t.value) for t in table.column("ts")]
    slip = SLIP_BPS / 10_000.0
    cash, shares = CASH, 0.0
    pending: float | None = None  # signed shares to trade at the next open
    last_above: bool | None = None
    trades = []
    for i in range(len(closes)):
        if pending is not None:
            price = opens[i] * (1 + slip) if pending > 0 else opens[i] * (1 - slip)
            fee = abs(pending) * price * COMM_BPS / 10_000.0 + FEE
            cash -= pending * price + fee
            shares += pending
            trades.append((starts[i], "BUY" if pending > 0 else "SELL", abs(pending), price,
                           fee))
            pending = None
        if i + 1 < slow_n:
            continue
        fast = sum(closes[i + 1 - fast_n:i + 1]) / fast_n
        slow = sum(closes[i + 1 - slow_n:i + 1]) / slow_n
        above = fast > slow
        if above == last_above:
            continue
        first = last_above is None
        last_above = above
        if first and not above:
            continue
        nav = cash + shares * closes[i]
        target = math.floor(BUDGET * nav / closes[i] + 1e-9) if above else 0.0
        if target != shares:
            pending = target - shares
    return trades


def kernel_trades(tmp_path: Path, fast_n: int, slow_n: int) -> list[tuple]:
    cfg = AppConfig.model_validate({
        "name": "spy-sma",
        "portfolio": {"initial_cash": CASH},
        "execution": {"slippage_bps": SLIP_BPS, "commission_bps": COMM_BPS, "fee_per_order": FEE},
        "instruments": [{"id": "SPY", "symbol": "SPY", "venue": "ARCA", "asset_class": "equity",
                         "lot_step": 1, "min_quantity": 1,
                         "data": {"path": str(DATA), "timeframe": "1d"}}],
        "models": [{"name": "sma", "model": "SmaCross", "budget": BUDGET, "instruments": ["SPY"],
                    "timeframe": "1d", "params": {"fast": fast_n, "slow": slow_n}}],
        # The plain loop knows no exposure caps or drawdown halts: compare the mechanics only.
        "risk": {"enabled": False},
    })
    result = run_backtest(cfg, tmp_path)
    with open(tmp_path / "trades.csv") as fh:
        rows = list(csv.DictReader(fh))
    fills = result.engine.gateways["sim"].fills
    assert [r["trade_id"] for r in rows] == [f.trade_id for f in fills]
    return [(f.ts, str(f.side), f.quantity, f.price, f.commission) for f in fills]


@pytest.mark.parametrize(("fast_n", "slow_n"), [(10, 30), (20, 100)])
def test_kernel_matches_plain_loop(tmp_path: Path, fast_n: int, slow_n: int) -> None:
    expected = plain_loop(fast_n, slow_n)
    got = kernel_trades(tmp_path, fast_n, slow_n)
    assert len(expected) > 40
    assert [g[:4] for g in got] == [e[:4] for e in expected]  # ts, side, quantity, price
    for g, e in zip(got, expected, strict=True):
        assert g[4] == pytest.approx(e[4], rel=1e-12)
