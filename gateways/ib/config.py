"""Configuration of an Interactive Brokers gateway.

The port follows the mode and the API program (TWS or IB Gateway) and is never
guessed: an explicit ``port`` must agree with the mode, so a paper config cannot
reach a live login by a copied number.  The account id is a credential: it comes
from an environment variable or a file, never from the YAML.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from gateways.base import GatewayConfigError
from gateways.credentials import read_secret_file
from trader.core.timeframes import parse_timeframe

# (api program, mode) -> the port IB documents as its default
PORTS: dict[tuple[str, str], int] = {
    ("tws", "paper"): 7497, ("tws", "live"): 7496,
    ("gateway", "paper"): 4002, ("gateway", "live"): 4001,
}
LIVE_PORTS = frozenset({7496, 4001})
PAPER_PORTS = frozenset({7497, 4002})

# what historical/live bars show per security type, unless a contract says otherwise
DEFAULT_WHAT_TO_SHOW = {"STK": "TRADES", "FUT": "TRADES", "IND": "TRADES", "CASH": "MIDPOINT"}


class IbContract(BaseModel):
    """How one kernel instrument is found at IB."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    symbol: str
    sec_type: Literal["STK", "FUT", "CASH", "IND"] = "STK"  # ETFs are STK at IB
    exchange: str = "SMART"  # FX: IDEALPRO; futures: the listing exchange (CME, ...)
    currency: str = "USD"
    primary_exchange: str = ""
    # futures: YYYYMM / YYYYMMDD of the contract to trade, or "front": the nearest expiry
    # more than ``roll_days`` days away (chosen when the gateway connects)
    expiry: str = ""
    roll_days: int = Field(5, ge=0)
    what_to_show: Literal["TRADES", "MIDPOINT", "BID_ASK"] | None = None

    @model_validator(mode="after")
    def _futures_need_expiry(self) -> IbContract:
        if self.sec_type == "FUT" and not self.expiry:
            raise ValueError("expiry: a futures contract needs its expiry (YYYYMM or front)")
        if self.expiry and self.expiry != "front" and not (
                self.expiry.isdigit() and len(self.expiry) in (6, 8)):
            raise ValueError(f"expiry: {self.expiry!r} is neither YYYYMM, YYYYMMDD nor front")
        if self.sec_type == "CASH" and self.exchange == "SMART":
            raise ValueError("exchange: FX trades on IDEALPRO, not SMART")
        return self

    @property
    def show(self) -> str:
        """TRADES / MIDPOINT / BID_ASK for this contract's bars."""
        return self.what_to_show or DEFAULT_WHAT_TO_SHOW[self.sec_type]


class IbTiming(BaseModel):
    """Timeouts and backoff; tests shrink them, production keeps the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    connect_timeout_s: float = Field(10.0, gt=0)
    connect_attempts: int = Field(5, ge=1)  # a clientId still held by a dying session
    ack_timeout_s: float = Field(10.0, gt=0)  # no order status by then: outcome unknown
    request_timeout_s: float = Field(30.0, gt=0)
    reconnect_initial_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(60.0, gt=0)
    backoff_jitter: float = Field(0.25, ge=0, le=1)
    unknown_settle_s: float = Field(5.0, ge=0)
    unknown_order_timeout_s: float = Field(300.0, gt=0)
    pacing_backoff_s: float = Field(15.0, ge=0)  # after error 162
    pacing_retries: int = Field(4, ge=0)
    # IB's historical-data limits: no identical request within 15 s, 60 per 10 minutes
    pacing_identical_s: float = Field(15.0, ge=0)
    pacing_window_max: int = Field(60, ge=1)
    fill_catch_up_s: float = Field(0.5, ge=0)  # status says filled, no execDetails yet
    # how long a Fill waits for its commission report before it leaves without it (the
    # commission then follows as a FillCorrection)
    commission_wait_s: float = Field(0.25, ge=0)


class IbGatewayConfig(BaseModel):
    """One TWS / IB Gateway login: where it listens, which contracts, which account."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "ib"
    mode: Literal["paper", "live"]
    api: Literal["tws", "gateway"] = "gateway"
    host: str = "127.0.0.1"
    port: int | None = Field(None, gt=0, lt=65536)
    client_id: int = Field(..., ge=0)
    account_env: str | None = None
    account_file: Path | None = None
    contracts: dict[str, IbContract]  # kernel instrument id -> contract
    timeframe: str = "1m"
    use_rth: bool = False
    tif: Literal["DAY", "GTC"] = "GTC"
    market_data: bool = True
    trading: bool = True
    bar_band: float | None = Field(0.5, gt=0)
    history_bars_per_request: int = Field(1000, gt=0)
    timing: IbTiming = IbTiming()

    @model_validator(mode="after")
    def _check(self) -> IbGatewayConfig:
        if not self.contracts:
            raise ValueError("contracts: at least one instrument is needed")
        parse_timeframe(self.timeframe)
        if self.port is not None:
            wrong = LIVE_PORTS if self.mode == "paper" else PAPER_PORTS
            if self.port in wrong:
                other = "live" if self.mode == "paper" else "paper"
                raise ValueError(f"port: {self.port} is IB's default {other} port but mode "
                                 f"is {self.mode}")
        return self

    @property
    def resolved_port(self) -> int:
        """The configured port, else IB's default for this mode and API program."""
        return self.port if self.port is not None else PORTS[(self.api, self.mode)]

    @property
    def timeframe_seconds(self) -> int:
        """The bar length in seconds."""
        return parse_timeframe(self.timeframe)


def parse_config(data: Any, where: str = "gateways.ib") -> IbGatewayConfig:
    """Validate a YAML section; errors name ``where`` and the key (``gateways.<name>.<key>``)."""
    try:
        return IbGatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            loc = [str(p) for p in err["loc"]]
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            msg = msg.removeprefix("Value error, ")
            key, sep, rest = msg.partition(": ")
            if err["type"] == "value_error" and sep and key.isidentifier():
                loc, msg = [*loc, key], rest  # a cross-field rule names its key first
            lines.append(f"{where}.{'.'.join(loc) or '(top)'}: {msg}")
        raise GatewayConfigError("; ".join(lines)) from None


def load_account(config: IbGatewayConfig, environ: dict[str, str] | None = None) -> str:
    """The account id from ``account_env`` (first) or ``account_file``; "" when none named."""
    env = dict(os.environ) if environ is None else environ
    where = f"gateways.{config.name}"
    if config.account_env is not None:
        value = env.get(config.account_env, "").strip()
        if value:
            return value
        if config.account_file is None:
            raise GatewayConfigError(f"{where}.account_env: environment variable "
                                     f"{config.account_env} is not set")
    if config.account_file is not None:
        return read_secret_file(config.account_file, f"{where}.account_file",
                                GatewayConfigError)
    return ""
