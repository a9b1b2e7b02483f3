"""Configuration of an MT5 gateway and the loading of its account credentials.

The login, password and trade server never live in the YAML: the config names
environment variables or files and ``load_account`` reads them at start-up;
``Account`` keeps them out of ``repr`` so they cannot reach a log.
"""

from __future__ import annotations

import os
import zoneinfo
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateways.credentials import read_secret_file
from trader.core.timeframes import parse_timeframe

BACKENDS = ("mt5linux", "metatrader5")


class Mt5ConfigError(ValueError):
    """An MT5 gateway setting that cannot be used; the message names the key."""


class Mt5Credentials(BaseModel):
    """Where login, password and server come from (names only, never the values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    login_env: str | None = None
    password_env: str | None = None
    server_env: str | None = None
    login_file: Path | None = None
    password_file: Path | None = None
    server_file: Path | None = None


class Mt5Timing(BaseModel):
    """Polling, retry and timeout knobs; tests shrink them, production keeps the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # one MT5 call longer than this is an IPC timeout: "outcome unknown" for an order
    request_timeout_s: float = Field(10.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)  # bars, orders and deals (MT5 has no push)
    reconnect_initial_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    # a requote (10004/10020/10021) leaves nothing placed: re-price and retry, bounded
    requote_retries: int = Field(2, ge=0)
    busy_retries: int = Field(3, ge=0)  # 10024 too many requests
    retry_delay_s: float = Field(0.2, ge=0)
    unknown_settle_s: float = Field(2.0, ge=0)
    unknown_order_timeout_s: float = Field(300.0, gt=0)
    history_page_bars: int = Field(5000, gt=0)
    # no new tick for this long while the symbol trades: the feed is stale (degraded)
    stale_after_s: float = Field(120.0, gt=0)


class Mt5GatewayConfig(BaseModel):
    """One MT5 account through one terminal: symbols, backend, endpoint, credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "mt5"
    backend: Literal["mt5linux", "metatrader5"] = "mt5linux"
    host: str = "127.0.0.1"  # mt5linux: where the rpyc server next to the terminal listens
    port: int = Field(18812, gt=0, lt=65536)
    symbols: dict[str, str] = Field(..., description="MT5 symbol -> kernel instrument id")
    timeframe: str = "1m"
    # the trade server's zone: MT5 shows every time (bars, deals) in it, not in UTC
    server_timezone: str = "UTC"
    magic: int = Field(..., ge=0, description="tags this deployment's orders")
    deviation_points: int = Field(10, ge=0)
    account_mode: Literal["netting", "hedging"] = "netting"
    credentials: Mt5Credentials = Mt5Credentials()
    # the client id <-> order ticket <-> deal tickets map, written before each send
    state_file: Path | None = None
    # the trading calendar of trader.core.calendars the symbols follow (FX week by
    # default): no tick while it is closed is not a stale feed; null = always expect ticks
    calendar: str | None = "fx"
    market_data: bool = True
    trading: bool = True
    bar_band: float | None = Field(0.5, gt=0)
    fills_lookback_days: float | None = Field(None, gt=0)
    timing: Mt5Timing = Mt5Timing()

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        parse_timeframe(v)
        return v

    @field_validator("server_timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zoneinfo.ZoneInfo(v)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {v!r} (an IANA name such as "
                             "'Europe/Athens' or 'Etc/GMT-2')") from None
        return v

    @field_validator("calendar")
    @classmethod
    def _calendar(cls, v: str | None) -> str | None:
        if v is not None:
            from trader.core.calendars import CalendarError, is_open

            try:
                is_open(v, 0)
            except CalendarError as exc:
                raise ValueError(str(exc)) from None
        return v

    @field_validator("host")
    @classmethod
    def _host(cls, v: str) -> str:
        if not v.strip():
            raise ValueError("empty host")
        return v

    @model_validator(mode="after")
    def _consistent(self) -> Mt5GatewayConfig:
        if not self.symbols:
            raise ValueError("symbols: at least one MT5 symbol is needed")
        ids = list(self.symbols.values())
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"symbols: instrument ids used twice: {sorted(dupes)}")
        if self.trading and self.state_file is None:
            raise ValueError("state_file: needed when trading (the client order id <-> "
                             "ticket map must survive a restart; put it in the data directory)")
        return self

    @property
    def timeframe_seconds(self) -> int:
        """The bar length in seconds."""
        return parse_timeframe(self.timeframe)


def parse_config(data: Any, where: str = "gateway") -> Mt5GatewayConfig:
    """Validate a mapping (a YAML section); errors name ``where`` and the key."""
    try:
        return Mt5GatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(top)"
            lines.append(f"{where}.{path}: {err['msg']}")
        raise Mt5ConfigError("; ".join(lines)) from None


@dataclass(frozen=True, slots=True)
class Account:
    """Login, password and trade server; ``repr`` hides the password."""

    login: int | None = None
    password: str = field(default="", repr=False)
    server: str = ""

    def initialize_kwargs(self) -> dict[str, Any]:
        """Keyword arguments of ``initialize`` (empty: the terminal's logged-in account)."""
        if self.login is None:
            return {}
        return {"login": self.login, "password": self.password, "server": self.server}


def _read(env: str | None, path: Path | None, what: str, environ: dict[str, str]) -> str:
    if env is not None and environ.get(env, "").strip():
        return environ[env].strip()
    if path is not None:
        return read_secret_file(path, f"credentials.{what}_file", Mt5ConfigError)
    if env is not None:
        raise Mt5ConfigError(f"credentials.{what}_env: environment variable {env} is not set")
    return ""


def load_account(creds: Mt5Credentials, environ: dict[str, str] | None = None) -> Account:
    """Read the account from the named env vars or files; empty when none is named
    (the terminal then trades the account it is logged in to)."""
    env = dict(os.environ) if environ is None else environ
    login = _read(creds.login_env, creds.login_file, "login", env)
    password = _read(creds.password_env, creds.password_file, "password", env)
    server = _read(creds.server_env, creds.server_file, "server", env)
    if not login:
        if password or server:
            raise Mt5ConfigError("credentials: a password or server needs a login")
        return Account()
    if not login.isdigit():
        raise Mt5ConfigError("credentials: the login must be the numeric account number")
    return Account(int(login), password, server)
