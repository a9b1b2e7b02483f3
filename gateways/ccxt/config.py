"""Configuration of a ccxt gateway and the loading of its credentials.

Credentials never live in the YAML: the config names environment variables or
files, and ``load_credentials`` reads them at start-up.  The values are kept
out of ``repr`` so they cannot leak into logs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gateways.ccxt.limits import VenueLimits
from gateways.credentials import read_secret_file
from trader.core.timeframes import parse_timeframe


class CcxtConfigError(ValueError):
    """A ccxt gateway setting that cannot be used; the message names the key."""


class CcxtCredentials(BaseModel):
    """Where the API key and secret come from (names only, never the values)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    api_key_env: str | None = None
    secret_env: str | None = None
    api_key_file: Path | None = None
    secret_file: Path | None = None


class CcxtTiming(BaseModel):
    """Backoff, polling and timeout knobs; tests shrink them, production keeps the defaults."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    request_timeout_ms: int = Field(10_000, gt=0)
    backoff_initial_s: float = Field(0.5, gt=0)
    backoff_max_s: float = Field(30.0, gt=0)
    backoff_jitter: float = Field(0.25, ge=0, le=1)
    ws_failures_before_polling: int = Field(5, ge=1)
    ws_retry_after_polling_s: float = Field(60.0, gt=0)
    poll_interval_s: float = Field(2.0, gt=0)
    close_grace_s: float = Field(3.0, ge=0)
    resolve_attempts: int = Field(5, ge=1)
    # a start's venue calls (markets, balance, the warm-up's candles) the venue did not
    # answer in one piece (timeout, 5xx, throttle, torn body) are tried this many times
    # before the start fails
    start_attempts: int = Field(3, ge=1)
    history_page_limit: int = Field(1000, gt=0)
    # a venue may still execute a request it received late; Binance refuses one older
    # than recvWindow (10 s): only an "absent" answer after that settles a lost submit
    unknown_settle_s: float = Field(10.0, ge=0)
    # stream liveness, independent of ccxt's keep-alive: after one quiet interval the
    # socket is pinged, after ``liveness_misses`` it is closed, reopened and backfilled
    liveness_interval_s: float = Field(20.0, gt=0)
    liveness_misses: int = Field(3, ge=1)
    # stream failures are forgotten after this long healthy (a day of rare drops
    # must not add up to "websocket given up")
    healthy_reset_s: float = Field(600.0, gt=0)
    # REST polling of orders is bounded so it cannot starve other requests behind the
    # rate limiter: never more often than the floor, never more requests per cycle
    poll_floor_s: float = Field(1.0, ge=0)
    poll_max_requests: int = Field(10, ge=1)
    # an order (or cancel) whose outcome is still unknown after this long is marked lost:
    # an error, a health event and a terminal EXPIRED update; it is never re-sent
    unknown_order_timeout_s: float = Field(300.0, gt=0)


class CcxtGatewayConfig(BaseModel):
    """One ccxt exchange account: which markets, which endpoints, which credentials."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = "ccxt"
    exchange: str
    symbols: dict[str, str] = Field(
        ..., description="exchange symbol (ccxt unified, e.g. BTC/USDT) -> kernel instrument id"
    )
    timeframe: str = "1m"
    credentials: CcxtCredentials = CcxtCredentials()
    urls: dict[str, Any] = Field(default_factory=dict)
    dead_end_other_urls: bool = True
    options: dict[str, Any] = Field(default_factory=dict)
    use_websocket: bool = True
    market_data: bool = True  # stream bars on connect (off when another feed supplies them)
    trading: bool = True
    sandbox: bool = False
    rate_limit: bool = True
    sync_time: bool = True
    timing: CcxtTiming = CcxtTiming()
    limits: VenueLimits = VenueLimits()
    # largest accepted move of a bar's close vs the previous one (fraction; null = off):
    # a bad tick such as 1e9 is internally consistent and only this exposes it
    bar_band: float | None = Field(0.5, gt=0)
    # Holdings per asset (ccxt code, e.g. BTC) that are not the daemon's: coins kept in
    # the account by hand.  Subtracted from the wallet before it is compared with the
    # daemon's positions, on top of the start-up baseline the store keeps.
    external: dict[str, float] = Field(default_factory=dict)
    # Price in the quote currency of an asset fees may be charged in (BNB): values
    # such fees in the account currency.  Without one the fee is kept in its asset.
    fee_prices: dict[str, float] = Field(default_factory=dict)

    @field_validator("exchange")
    @classmethod
    def _known_exchange(cls, v: str) -> str:
        import ccxt.pro

        if v not in ccxt.pro.exchanges:
            raise ValueError(f"unknown ccxt.pro exchange {v!r}")
        return v

    @field_validator("timeframe")
    @classmethod
    def _tf(cls, v: str) -> str:
        parse_timeframe(v)
        return v

    @model_validator(mode="after")
    def _symbols_unique(self) -> CcxtGatewayConfig:
        if not self.symbols:
            raise ValueError("symbols: at least one exchange symbol is needed")
        ids = list(self.symbols.values())
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"symbols: instrument ids used twice: {sorted(dupes)}")
        return self

    @property
    def timeframe_seconds(self) -> int:
        """The bar length in seconds."""
        return parse_timeframe(self.timeframe)


def parse_config(data: Any, where: str = "gateway") -> CcxtGatewayConfig:
    """Validate a mapping (a YAML section) into a config; errors name ``where`` and the key."""
    from pydantic import ValidationError

    try:
        return CcxtGatewayConfig.model_validate(data)
    except ValidationError as exc:
        lines = []
        for err in exc.errors():
            path = ".".join(str(p) for p in err["loc"]) or "(top)"
            lines.append(f"{where}.{path}: {err['msg']}")
        raise CcxtConfigError("; ".join(lines)) from None


@dataclass(frozen=True, slots=True)
class Credentials:
    """API key and secret; ``repr`` hides both."""

    api_key: str = field(default="", repr=False)
    secret: str = field(default="", repr=False)

    def __bool__(self) -> bool:
        return bool(self.api_key and self.secret)


def _read_one(env: str | None, path: Path | None, what: str, environ: dict[str, str]) -> str:
    if env is not None:
        value = environ.get(env, "")
        if value:
            return value.strip()
        if path is None:
            raise CcxtConfigError(f"credentials.{what}_env: environment variable {env} is not set")
    if path is not None:
        return read_secret_file(path, f"credentials.{what}_file", CcxtConfigError)
    return ""


def load_credentials(
    creds: CcxtCredentials, environ: dict[str, str] | None = None
) -> Credentials:
    """Read key and secret from the named env vars (first) or files; empty when none named."""
    env = dict(os.environ) if environ is None else environ
    key = _read_one(creds.api_key_env, creds.api_key_file, "api_key", env)
    secret = _read_one(creds.secret_env, creds.secret_file, "secret", env)
    if bool(key) != bool(secret):
        raise CcxtConfigError("credentials: an API key needs a secret and vice versa")
    return Credentials(key, secret)
