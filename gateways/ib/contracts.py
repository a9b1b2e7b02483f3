"""Kernel instruments -> qualified IB contracts, with the conId cached.

Qualification asks TWS for the contract details once per instrument; the conId
it returns is kept, so a reconnect (or the nightly restart) does not ask again
and every later request names the exact contract.
"""

from __future__ import annotations

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
    """The unqualified ib_async contract of a config entry."""
    from ib_async import Contract

    return Contract(secType=spec.sec_type, symbol=spec.symbol, exchange=spec.exchange,
                    currency=spec.currency, primaryExchange=spec.primary_exchange,
                    lastTradeDateOrContractMonth=spec.expiry)


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
            if len(details) != 1:
                what = "is not listed" if not details else f"is ambiguous ({len(details)} matches)"
                raise NotListed(f"instrument {inst} ({spec.sec_type} {spec.symbol}) {what} at "
                                "IB; set exchange/primary_exchange/expiry")
            c = details[0].contract
            if spec.exchange == "SMART":
                c.exchange = "SMART"  # route smart, not to the listing exchange
            self.by_instrument[inst] = Qualified(inst, c, float(details[0].minTick or 0.0))
            self.by_con_id[int(c.conId)] = inst

    def contract(self, instrument_id: str) -> Any:
        """The qualified contract of ``instrument_id`` (KeyError if not qualified)."""
        return self.by_instrument[instrument_id].contract

    def instrument_of(self, contract: Any) -> str | None:
        """The instrument id of an IB contract by conId, None if not ours."""
        return self.by_con_id.get(int(getattr(contract, "conId", 0) or 0))
