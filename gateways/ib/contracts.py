"""Kernel instruments -> qualified IB contracts, with the conId cached.

Qualification asks TWS for the contract details once per instrument; the conId
it returns is kept, so a reconnect (or the nightly restart) does not ask again
and every later request names the exact contract.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from gateways.ib.config import IbContract


class NotListed(LookupError):
    """IB has no contract for an instrument (the message names both)."""


@dataclass(slots=True)
class Qualified:
    """One instrument's IB contract after qualification."""

    instrument_id: str
    contract: Any  # ib_async Contract with conId set
    min_tick: float


def make_contract(spec: IbContract) -> Any:
    """The unqualified ib_async contract of a config entry ("front": every expiry)."""
    from ib_async import Contract

    expiry = "" if spec.expiry == "front" else spec.expiry
    return Contract(secType=spec.sec_type, symbol=spec.symbol, exchange=spec.exchange,
                    currency=spec.currency, primaryExchange=spec.primary_exchange,
                    lastTradeDateOrContractMonth=expiry)


def front_expiry(expiries: list[str], today: dt.date, roll_days: int) -> str | None:
    """The nearest expiry (YYYYMMDD or YYYYMM) more than ``roll_days`` days after ``today``.

    A month-only expiry counts as its last day.  None when every one is too close.
    """
    def last_day(e: str) -> dt.date:
        if len(e) >= 8:
            return dt.date(int(e[:4]), int(e[4:6]), int(e[6:8]))
        year, month = int(e[:4]), int(e[4:6])
        nxt = dt.date(year + month // 12, month % 12 + 1, 1)
        return nxt - dt.timedelta(days=1)

    later = sorted((last_day(e), e) for e in expiries
                   if (last_day(e) - today).days > roll_days)
    return later[0][1] if later else None


class ContractBook:
    """The qualified contracts of one gateway, by instrument id and by conId."""

    def __init__(self, specs: dict[str, IbContract]) -> None:
        self.specs = dict(specs)
        self.by_instrument: dict[str, Qualified] = {}
        self.by_con_id: dict[int, str] = {}

    async def qualify(self, ib: Any, instrument_ids: list[str]) -> None:
        """Qualify every instrument not cached yet; ``NotListed`` names the first failure."""
        from ib_async import RequestError

        for inst in instrument_ids:
            if inst in self.by_instrument:
                continue
            spec = self.specs[inst]
            try:
                details = await ib.reqContractDetailsAsync(make_contract(spec))
            except RequestError as exc:
                raise NotListed(f"instrument {inst} ({spec.sec_type} {spec.symbol} "
                                f"{spec.currency} on {spec.exchange}) is not listed at IB: "
                                f"IB {exc.code}: {exc.message}") from None
            if spec.expiry == "front" and details:
                expiries = [d.contract.lastTradeDateOrContractMonth for d in details]
                pick = front_expiry(expiries, self.today(), spec.roll_days)
                details = [d for d in details
                           if d.contract.lastTradeDateOrContractMonth == pick]
            if len(details) != 1:
                what = "is not listed" if not details else f"is ambiguous ({len(details)} matches)"
                raise NotListed(f"instrument {inst} ({spec.sec_type} {spec.symbol}) {what} at "
                                "IB; set exchange/primary_exchange/expiry")
            c = details[0].contract
            if spec.exchange == "SMART":
                c.exchange = "SMART"  # route smart, not to the listing exchange
            self.by_instrument[inst] = Qualified(inst, c, float(details[0].minTick or 0.0))
            self.by_con_id[int(c.conId)] = inst

    @staticmethod
    def today() -> dt.date:
        """The date the front-month rule rolls on (UTC)."""
        return dt.datetime.now(dt.UTC).date()

    def contract(self, instrument_id: str) -> Any:
        """The qualified contract of ``instrument_id`` (KeyError if not qualified)."""
        return self.by_instrument[instrument_id].contract

    def instrument_of(self, contract: Any) -> str | None:
        """The instrument id of an IB contract by conId, None if not ours."""
        return self.by_con_id.get(int(getattr(contract, "conId", 0) or 0))
