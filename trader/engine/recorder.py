"""Collects what a run produced: the equity curve, fills, exposure.

Memory stays bounded by the number of *days*, not bars: NAV is sampled at the
last bar of each UTC day, and fills stream to a CSV file when one is given.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from typing import IO

from trader.core.events import Bar, Fill, ns_to_iso
from trader.engine.portfolio import Portfolio

DAY_NS = 86_400 * 1_000_000_000

TRADE_COLUMNS = [
    "ts", "client_order_id", "trade_id", "instrument_id", "side", "quantity", "price",
    "commission", "realized_pnl",
]
# Written when a run uses order intents or a cost model beyond the original one (older
# configs keep their files byte for byte): why the order was sent (signal, stop, target,
# trail, timeout, risk, halt) and the spread and slippage the fill paid.
DETAIL_COLUMNS = ["reason", "spread_cost", "slippage_cost"]


@dataclass(slots=True)
class TradeDetails:
    """Where the recorder finds each fill's reason and cost split."""

    reasons: dict[str, str]  # client order id -> reason; absent = "signal"
    cost_split: dict[str, tuple[float, float]]  # trade id -> (spread, slippage); popped


@dataclass(slots=True)
class EquityPoint:
    ts: int
    nav: float
    cash: float
    gross_exposure: float
    drawdown: float


class Recorder:
    """Samples the portfolio and counts trades while a run goes on."""

    def __init__(self, portfolio: Portfolio, trades_file: IO[str] | None = None,
                 keep_fills: bool = False, base_timeframes: dict[str, int] | None = None,
                 details: TradeDetails | None = None) -> None:
        self.portfolio = portfolio
        self.details = details
        # totals of the cost split (commission, spread, slippage), kept when details are
        self.costs = {"commission": 0.0, "spread": 0.0, "slippage": 0.0}
        self.reason_counts: dict[str, int] = {}
        self._base = dict(base_timeframes or {})
        self.equity: list[EquityPoint] = []
        self._day: int | None = None
        self._day_start = 0
        self._day_end = -1  # the first bar always starts a day
        self._prev: tuple | None = None
        self.first_ts: int | None = None
        self.last_ts: int | None = None
        self.bars = 0
        self.bars_exposed = 0
        self.fills = 0
        self.closing_pnls_pos = 0.0
        self.closing_pnls_neg = 0.0
        self.wins = 0
        self.losses = 0
        self.keep_fills = keep_fills
        self.fill_rows: list[list] = []
        self._writer = csv.writer(trades_file, lineterminator="\n") if trades_file else None
        if self._writer:
            self._writer.writerow(TRADE_COLUMNS + (DETAIL_COLUMNS if details else []))
        portfolio.fill_listeners.append(self.on_fill)

    def on_bar(self, bar: Bar) -> None:
        """Samples NAV at the last base bar of each UTC day.

        Subscribed ahead of the gateways and the portfolio, so on the first bar
        of a new day the portfolio still shows the close of the day before:
        nothing needs copying on the other bars.
        """
        tf = bar.timeframe
        if self._base.get(bar.instrument_id, tf) != tf:
            return
        pf = self.portfolio
        ts = bar.ts
        if self.first_ts is None:
            self.first_ts = ts
            self.equity.append(EquityPoint(bar.ts_open, pf.initial_cash, pf.initial_cash, 0.0, 0.0))
        self.bars += 1
        if pf.open_positions:
            self.bars_exposed += 1  # held into this bar
        # A bar closing at midnight belongs to the day before: days are (start, end].
        if ts > self._day_end or ts <= self._day_start:
            last = self.last_ts
            if self._day is not None:
                assert last is not None  # a day is open only after a bar has been seen
                self._sample(last)
            day = (ts - 1) // DAY_NS
            self._day = day
            self._day_start = day * DAY_NS
            self._day_end = self._day_start + DAY_NS
        self.last_ts = ts

    def _sample(self, ts: int) -> None:
        pf = self.portfolio
        self.equity.append(EquityPoint(ts, pf.nav, pf.account.cash, pf.gross, pf.drawdown))

    def on_fill(self, fill: Fill, realized: float) -> None:
        self.fills += 1
        if realized > 0:
            self.wins += 1
            self.closing_pnls_pos += realized
        elif realized < 0:
            self.losses += 1
            self.closing_pnls_neg += -realized
        extra = self._details(fill) if self.details is not None else None
        if self._writer is None and not self.keep_fills:
            return
        row = [
            ns_to_iso(fill.ts), fill.client_order_id, fill.trade_id, fill.instrument_id,
            fill.side.value, repr(fill.quantity), repr(fill.price), repr(fill.commission),
            repr(realized),
        ]
        if extra is not None:
            row += extra
        if self._writer:
            self._writer.writerow(row)
        elif self.keep_fills:
            self.fill_rows.append(row)

    def _details(self, fill: Fill) -> list:
        d = self.details
        assert d is not None
        reason = d.reasons.get(fill.client_order_id, "signal")
        spread, slip = d.cost_split.pop(fill.trade_id, (0.0, 0.0))
        c = self.costs
        c["commission"] += fill.commission
        c["spread"] += spread
        c["slippage"] += slip
        self.reason_counts[reason] = self.reason_counts.get(reason, 0) + 1
        return [reason, repr(spread), repr(slip)]

    def finish(self) -> None:
        if self.last_ts is not None and self._day is not None:
            self._sample(self.last_ts)
            self._day = None
