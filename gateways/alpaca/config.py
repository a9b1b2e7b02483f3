"""Configuration of an Alpaca gateway (``gateways.<name>`` in the YAML).

Credentials never live in the YAML: ``credentials`` names environment
variables or files (the same rules as every gateway, ``load_credentials``).
Every endpoint can be overridden (``urls``), so tests and proxies never depend
on the production defaults; ``paper`` picks Alpaca's paper trading endpoint
when ``urls.trading`` is not set.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateways.base import GatewayConfigError
from gateways.ccxt.config import CcxtCredentials
from trader.core.timeframes import parse_timeframe

TimeInForce = Literal["day", "gtc", "ioc", "fok", "opg", "cls"]
# Alpaca's bar lengths: minutes, hours and days it serves directly
_ALPACA_TF = {60: "1Min", 300: "5Min", 900: "15Min", 1800: "30Min", 3600: "1Hour",
              14_400: "4Hour", 86_400: "1Day"}


class AlpacaUrls(BaseModel):
    """Endpoint overrides; None = Alpaca's own (paper or live by ``paper``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    trading: str | None = None  # REST base without /v2
    data: str | None = None  # market data REST base without /v2 or /v1beta3
    stock_stream: str | None = None  # full websocket URL, e.g. .../v2/iex
    crypto_stream: str | None = None  # full websocket URL, e.g. .../v1beta3/crypto/us
    trading_stream: str | None = None  # full websocket URL of trade_updates


class AlpacaTiming(BaseModel):
    """Timeouts, backoff and bounds; tests shrink them, production keeps the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_timeout_s: float = Field(10.0, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    backoff_jitter: float = Field(0.25, ge=0, le=1)
    # a 429 is waited out (X-RateLimit-Reset / Retry-After) at most this long per attempt
    rate_limit_max_wait_s: float = Field(60.0, gt=0)
    rate_limit_attempts: int = Field(5, ge=1)
    # an "absent" lookup of a lost submit proves nothing before this long
    unknown_settle_s: float = Field(5.0, ge=0)
    unknown_order_timeout_s: float = Field(300.0, gt=0)
    rest_threads: int = Field(4, ge=1, le=32)
    # how often working orders are re-read while the trading stream is down
    poll_interval_s: float = Field(2.0, gt=0)
    close_grace_s: float = Field(3.0, ge=0)


class AlpacaGatewayConfig(BaseModel):
    """One Alpaca account: which symbols, which endpoints, which credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "alpaca"
    paper: bool = True
    symbols: dict[str, str] = Field(
        ..., description="Alpaca symbol (AAPL, BTC/USD) -> kernel instrument id")
    timeframe: str = "1m"
    feed: Literal["iex", "sip"] = "iex"
    adjustment: Literal["raw", "split", "dividend", "all"] = "raw"
    time_in_force: TimeInForce = "day"  # US equities; crypto accepts only gtc and ioc
    crypto_time_in_force: Literal["gtc", "ioc"] = "gtc"
    extended_hours: bool = False
    calendar: str = "XNYS"  # the session of US equities
    credentials: CcxtCredentials = CcxtCredentials()
    urls: AlpacaUrls = AlpacaUrls()
    market_data: bool = True
    trading: bool = True
    timing: AlpacaTiming = AlpacaTiming()
    bar_band: float | None = Field(0.5, gt=0)

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        if parse_timeframe(v) not in _ALPACA_TF:
            raise ValueError(f"Alpaca serves no {v!r} bars (use one of "
                             f"{sorted(_ALPACA_TF.values())} as 1m, 5m, 15m, 30m, 1h, 4h, 1d)")
        return v

    @model_validator(mode="after")
    def _symbols(self) -> AlpacaGatewayConfig:
        if not self.symbols:
            raise ValueError("symbols: at least one Alpaca symbol is needed")
        ids = list(self.symbols.values())
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"symbols: instrument ids used twice: {sorted(dupes)}")
        return self

    @property
    def timeframe_seconds(self) -> int:
        """The bar length in seconds."""
        return parse_timeframe(self.timeframe)

    @property
    def alpaca_timeframe(self) -> str:
        """The bar length as Alpaca names it (``1Min``)."""
        return _ALPACA_TF[self.timeframe_seconds]


def is_crypto(symbol: str) -> bool:
    """Alpaca writes crypto pairs with a slash (``BTC/USD``), stocks without."""
    return "/" in symbol


def parse_config(data: Any, where: str = "gateway") -> AlpacaGatewayConfig:
    """Validate a mapping (a YAML section); errors name ``where`` and the key."""
    try:
        return AlpacaGatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(top)"
            msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            lines.append(f"{where}.{path}: {msg}")
        raise GatewayConfigError("; ".join(lines)) from None
