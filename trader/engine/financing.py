"""Financing of a simulated account: short borrow cost and margin interest, daily.

At the first base bar of each new UTC day the account pays, for every day since
the last charge (a weekend counts its days):

* borrow: ``borrow_bps_per_year`` / 365 per day of the market value of each
  short position, charged to the books (models) that hold the shorts;
* margin: ``margin_bps_per_year`` / 365 per day of the account's negative cash
  (money borrowed to hold longs), shared by the books pro rata to their long
  market value.

Positions and marks are those the day closed with (the charge runs ahead of the
new bar's marking).  Only for accounts the simulated exchange keeps: a broker
charges its own financing and reports it in the cash it returns.
"""

from __future__ import annotations

from trader.core.events import Bar
from trader.engine.portfolio import Portfolio

DAY_NS = 86_400 * 1_000_000_000


def daily_rate(bps_per_year: float) -> float:
    """A yearly rate in bps as a fraction per day (ACT/365)."""
    return bps_per_year / 10_000.0 / 365.0


def financing_charges(portfolio: Portfolio, borrow_bps: float, margin_bps: float,
                      days: int, borrow_of: dict[str, float] | None = None
                      ) -> dict[str, float]:
    """What each book owes for ``days`` days at the current positions and marks
    (``borrow_of``: instruments whose borrow rate differs, bps a year)."""
    marks = portfolio.marks
    out: dict[str, float] = {}
    longs: dict[str, float] = {}
    for name, book in portfolio.models.items():
        for inst, pos in book.positions.items():
            q = pos.quantity
            if not q or inst not in marks:
                continue
            value = q * marks[inst] * portfolio.instruments[inst].multiplier
            if value < 0:
                bps = borrow_of.get(inst, borrow_bps) if borrow_of else borrow_bps
                if bps:
                    out[name] = out.get(name, 0.0) - value * daily_rate(bps) * days
            elif value > 0:
                longs[name] = longs.get(name, 0.0) + value
    debit = -portfolio.account.cash
    total_long = sum(longs.values())
    if margin_bps and debit > 0 and total_long > 0:
        interest = debit * daily_rate(margin_bps) * days
        for name, value in longs.items():
            out[name] = out.get(name, 0.0) + interest * value / total_long
    return out


class FinancingAccrual:
    """Charges financing once per UTC day; subscribed to bars ahead of the portfolio."""

    def __init__(self, portfolio: Portfolio, borrow_bps_per_year: float,
                 margin_bps_per_year: float, base_timeframes: dict[str, int],
                 borrow_of: dict[str, float] | None = None) -> None:
        self.portfolio = portfolio
        self.borrow_of = borrow_of or {}
        self.borrow = borrow_bps_per_year
        self.margin = margin_bps_per_year
        self._base = base_timeframes
        self._day: int | None = None
        self.total = 0.0

    def on_bar(self, bar: Bar) -> None:
        if self._base.get(bar.instrument_id, bar.timeframe) != bar.timeframe:
            return
        day = (bar.ts - 1) // DAY_NS  # a bar closing at midnight belongs to the day before
        if self._day is None:
            self._day = day
            return
        if day <= self._day:
            return
        days, self._day = day - self._day, day
        charges = financing_charges(self.portfolio, self.borrow, self.margin, days,
                                    self.borrow_of)
        if charges:
            self.portfolio.charge(charges)
            self.total += sum(charges.values())
