"""The accounting identities a portfolio must keep after any fill or correction."""

from __future__ import annotations

import pytest

from trader.engine.portfolio import Portfolio


def assert_identities(pf: Portfolio, tol: float = 1e-9) -> None:
    """Cash plus positions is NAV; realized + unrealized - fees explains the PnL, for the
    account and for each model's book; the books' PnL and fees add up to the account's."""
    acct = pf.account
    value = sum(p.quantity * pf.marks[i] * pf.instruments[i].multiplier
                for i, p in acct.positions.items() if p.quantity)
    assert acct.cash + value == pytest.approx(pf.nav, abs=tol)
    explained = acct.realized() + acct.unrealized(pf.marks) - acct.commission
    assert explained == pytest.approx(pf.pnl(), abs=tol)
    assert sum(pf.model_pnl().values()) == pytest.approx(pf.pnl(), abs=tol)
    assert sum(b.commission for b in pf.models.values()) == pytest.approx(acct.commission)
    for book in pf.models.values():  # each model's book explains its own PnL too
        assert book.realized() + book.unrealized(pf.marks) - book.commission == pytest.approx(
            book.equity(pf.marks), abs=tol)
    assert pf.drawdown == pytest.approx(1 - pf.nav / pf.hwm)
