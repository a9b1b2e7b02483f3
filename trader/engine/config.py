"""The YAML configuration, validated by pydantic at the boundary.

Every error is turned into a ``ConfigError`` that names the file, the key path
and what was expected, so the CLI can print it and exit non-zero without a
traceback.
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Annotated, Any, Literal, get_args

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from models.gates import GateConfig
from models.intents import OrderPolicy
from models.lifecycle import LifecycleConfig
from risk.config import RiskConfig
from trader.core.instruments import Instrument
from trader.core.timeframes import parse_timeframe
from trader.data.layout import BATCH_ROWS


def _timeframe(v: str) -> str:
    parse_timeframe(v)  # raises with the accepted spellings
    return v


# A bar length such as 1m, 4h or 1d, checked when the config loads.
Timeframe = Annotated[str, AfterValidator(_timeframe)]


class ConfigError(Exception):
    """A configuration file that cannot be used, with a message fit for an operator."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataSource(Strict):
    """Where an instrument's history lives and its bar length: a file (Parquet or CSV), or
    an entry of the data catalog (``venue/symbol`` or a symbol only one venue holds)."""

    path: Path | None = None
    catalog: str | None = None
    timeframe: Timeframe = "1m"
    # Where a relative ``path`` was looked for (set by ``load_config``; for messages).
    _searched: tuple[Path, ...] = PrivateAttr(default=())
    # Why ``catalog`` names no file (set by ``load_config``; the feed reports it when the
    # bars are needed, so ``trader data download`` can still read this config to fill it).
    _missing: str | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _one_source(self) -> DataSource:
        # both may be set: load_config resolves a catalog entry to its file's path
        if self.path is None and self.catalog is None:
            raise ValueError("give either path (a bar file) or catalog (an entry of the data "
                             "catalog, e.g. binance/BTCUSDT)")
        return self


class InstrumentConfig(Instrument):
    data: DataSource | None = None


class DataConfig(Strict):
    on_bad_row: Literal["error", "skip"] = "error"
    # root of the Parquet catalog (trader data ...); relative: looked up like data paths
    catalog: Path = Path("data/catalog")
    # an instrument whose data ends before the backtest: keep its position, marked at the
    # last price (hold), or close it at that price through the pipeline and risk (close)
    on_data_end: Literal["hold", "close"] = "hold"
    batch_size: int = Field(BATCH_ROWS, gt=0)  # shared by the files (trader.data.layout)
    start: str | None = None
    end: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _times(cls, v: str | None) -> str | None:
        return _iso_time(v)


class CostOverrides(Strict):
    """Cost settings of the simulated exchange (``gateways.sim_costs.SimCosts``); in
    ``execution.instruments.<id>`` only the keys given override ``execution``'s."""

    slippage_bps: float | None = Field(None, ge=0)
    commission_bps: float | None = Field(None, ge=0)
    fee_per_order: float | None = Field(None, ge=0)
    spread_bps: float | None = Field(None, ge=0)
    spread_range_fraction: float | None = Field(None, ge=0, le=1)
    slippage_model: Literal["fixed", "volatility", "sqrt_impact"] | None = None
    slippage_vol_mult: float | None = Field(None, ge=0)
    impact_coef: float | None = Field(None, ge=0)
    max_participation: float | None = Field(None, gt=0, le=1)
    latency_bars: int | None = Field(None, ge=0)
    latency_fraction: float | None = Field(None, ge=0, le=1)
    commission_schedule: Literal["bps", "per_share", "maker_taker"] | None = None
    per_share: float | None = Field(None, ge=0)
    per_share_min: float | None = Field(None, ge=0)
    per_share_max_pct: float | None = Field(None, gt=0, le=1)
    maker_bps: float | None = Field(None, ge=-10)  # a maker rebate is a negative fee
    taker_bps: float | None = Field(None, ge=0)
    borrow_bps_per_year: float | None = Field(None, ge=0)
    margin_bps_per_year: float | None = Field(None, ge=0)

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True)


class ExecutionConfig(CostOverrides):
    """Simulated execution costs; the defaults are the original exchange's."""

    slippage_bps: float = Field(1.0, ge=0)
    commission_bps: float = Field(1.0, ge=0)
    fee_per_order: float = Field(0.0, ge=0)
    # per instrument id: cost settings that differ from the ones above
    instruments: dict[str, CostOverrides] = Field(default_factory=dict)

    def given(self) -> dict[str, Any]:
        return self.model_dump(exclude_none=True, exclude={"instruments"})


class ModelConfig(Strict):
    name: str
    model: str = Field(description="model class name, e.g. SmaCross")
    stage: Literal["research", "candidate", "paper", "live"] = "research"
    budget: float = Field(gt=0, le=1)
    instruments: list[str] = Field(min_length=1)
    timeframe: Timeframe = "1d"
    params: dict[str, Any] = Field(default_factory=dict)
    gateway: str = "sim"
    # Entries, protective exits, sizing, cooldown (models.intents.OrderPolicy).
    orders: OrderPolicy = OrderPolicy()
    # Execution gates an entry must pass (models.gates.GateConfig).
    gates: GateConfig = GateConfig()
    # Timeframes the model may subscribe to besides ``timeframe`` (slow features, e.g. 1d).
    extra_timeframes: list[Timeframe] = Field(default_factory=list)


    def given_timeframes(self) -> list[int]:
        """The timeframes (s) this model was given: its own and its extra ones."""
        return [parse_timeframe(t) for t in (self.timeframe, *self.extra_timeframes)]


class RegimeConfig(Strict):
    """One regime classifier (``models.regimes``): what it reads and its parameters."""

    name: str
    kind: str = Field(description="classifier class: TrendRegime, VolatilityRegime, "
                                  "SpreadRegime, an entry point or module:Class")
    instruments: list[str] = Field(min_length=1)
    timeframe: Timeframe = "1d"
    params: dict[str, Any] = Field(default_factory=dict)


# regime name -> state -> model name or asset class -> budget multiplier (>= 0)
RegimeBudgets = dict[str, dict[str, dict[str, float]]]


def _within_lookback(min_periods: int, lookback: int, otherwise: str) -> None:
    if min_periods > lookback:
        raise ValueError(f"min_periods ({min_periods}) exceeds lookback ({lookback}): "
                         f"{otherwise}")


class VolTargetConfig(Strict):
    """Scale every model's budget so the portfolio's predicted volatility is ``annual_vol``."""

    annual_vol: float = Field(gt=0, le=5, description="target annualised volatility, e.g. 0.10")
    lookback: int = Field(60, ge=5, description="periods of returns in the covariance")
    min_periods: int = Field(20, ge=2, description="periods seen before the scale moves off 1")
    max_leverage: float = Field(1.0, gt=0, le=10, description="the scale never exceeds this")

    @model_validator(mode="after")
    def _periods(self) -> VolTargetConfig:
        _within_lookback(self.min_periods, self.lookback, "the scale would never move")
        return self


class KellyConfig(Strict):
    """Cap each model at ``fraction`` × its Kelly fraction (mean / variance of its returns)."""

    fraction: float = Field(0.5, gt=0, le=1, description="0.5 = half Kelly")
    lookback: int = Field(250, ge=5, description="the model's last N exposed periods")
    min_periods: int = Field(20, ge=2, description="exposed periods seen before it caps")
    floor: float = Field(0.0, ge=0, le=1, description="the cap never goes below this")

    @model_validator(mode="after")
    def _periods(self) -> KellyConfig:
        _within_lookback(self.min_periods, self.lookback, "the cap would never act")
        return self


class ModelDrawdownConfig(Strict):
    """A model's own book de-risked at ``trigger`` and halted at ``halt`` (of its own peak)."""

    trigger: float = Field(gt=0, lt=1)
    halt: float = Field(gt=0, le=1)
    derisk_factor: float = Field(0.5, ge=0, lt=1)
    restore_at: float | None = Field(None, ge=0, lt=1)

    @model_validator(mode="after")
    def _levels(self) -> ModelDrawdownConfig:
        if self.halt <= self.trigger:
            raise ValueError(f"halt ({self.halt}) must be above trigger ({self.trigger})")
        if self.restore_at is not None and self.restore_at >= self.trigger:
            raise ValueError(f"restore_at ({self.restore_at}) must be below trigger "
                             f"({self.trigger})")
        return self


class OverlaysConfig(Strict):
    """``portfolio.overlays``: which overlays run, on which clock; see the module doc."""

    timeframe: Timeframe = "1d"
    rebalance_every: int = Field(1, ge=1, description="periods between vol/Kelly re-sizings")
    vol_target: VolTargetConfig | None = None
    kelly: KellyConfig | None = None
    model_drawdown: ModelDrawdownConfig | None = None
    rebalance_band: float = Field(0.0, ge=0, le=1)

    @model_validator(mode="after")
    def _something(self) -> OverlaysConfig:
        if not self.active:
            raise ValueError("no overlay configured: give vol_target, kelly or model_drawdown "
                             "(rebalance_band only acts on the re-sizings they cause)")
        return self

    @property
    def active(self) -> bool:
        """True when an overlay re-sizes targets (the band only filters those re-sizings)."""
        return (self.vol_target is not None or self.kelly is not None
                or self.model_drawdown is not None)


class PortfolioConfig(Strict):
    initial_cash: float = Field(100_000.0, gt=0)
    currency: str = "USD"
    # Volatility targeting, Kelly caps, per-model drawdown control, rebalance band.
    overlays: OverlaysConfig | None = None

    @model_serializer(mode="wrap")
    def _without_unset_overlays(self, handler: Any) -> dict[str, Any]:
        # A config without overlays dumps as before they existed: its hash, its journal
        # header and its reports stay byte for byte the same.
        out = handler(self)
        if self.overlays is None:
            out.pop("overlays", None)
        return out


class PlannerConfig(Strict):
    # Skip rebalances smaller than this fraction of NAV to avoid churning on drift.
    min_trade_fraction: float = Field(0.0, ge=0, le=1)


def _iso_time(v: str | None) -> str | None:
    """A date or date-time as ISO 8601 (``2019-01-01``, ``2019-01-01T00:00:00Z``)."""
    if v is None:
        return v
    import datetime as dt

    try:
        dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError as exc:
        raise ValueError(f"not a valid date/time ({exc}); expected ISO 8601 such as "
                         "2019-01-01 or 2019-01-01T00:00:00Z") from None
    return v


class ReplayFeedConfig(Strict):
    """The replay-as-live market data gateway (``daemon.market_data: replay``)."""

    # Times real time; "max" streams as fast as the kernel consumes.
    speed: float | Literal["max"] = 1000.0
    # Bars before this time warm the models up; bars from it on are streamed live.
    start: str | None = None
    exit_at_end: bool = False  # stop the daemon cleanly when the file is exhausted

    @field_validator("start")
    @classmethod
    def _start(cls, v: str | None) -> str | None:
        return _iso_time(v)

    @field_validator("speed")
    @classmethod
    def _speed(cls, v: float | str) -> float | str:
        if not isinstance(v, str) and v <= 0:
            raise ValueError("must be > 0, or \"max\"")
        return v


class DaemonConfig(Strict):
    """Settings of ``trader run`` (the live/paper daemon)."""

    data_dir: Path = Path("var")
    # Where live bars come from: "replay" (the data files, streamed by the replay-as-live
    # gateway) or the name of a gateway under ``gateways:`` that streams closed bars.
    market_data: str = "replay"
    replay: ReplayFeedConfig = ReplayFeedConfig()
    warmup: bool = True
    # At READY, trade the targets the models formed during warm-up (false: wait for
    # each model's next signal).
    trade_on_ready: bool = True
    # Base bars of history a market data gateway fetches per instrument for the warm-up.
    warmup_bars: int = Field(1000, ge=0)
    stale_after_intervals: float = Field(3.0, gt=0)
    cancel_open_orders_on_shutdown: bool = False
    shutdown_timeout: float = Field(10.0, gt=0)
    status_interval: float = Field(1.0, gt=0)
    kill_switch_poll: float = Field(0.25, gt=0, le=1.0)
    journal_flush_interval: float = Field(0.2, gt=0)
    journal_fsync_interval: float = Field(1.0, ge=0)
    queue_size: int = Field(100_000, gt=0)
    metrics_port: int | None = Field(None, ge=0, le=65535)
    log_level: Literal["debug", "info", "warning", "error"] = "info"
class StoreConfig(Strict):
    """Where the daemon keeps its state.

    ``database_url`` selects PostgreSQL (``postgresql+psycopg://...``); it may
    also come from ``$TRADER_DATABASE_URL``, which is where a password belongs.
    Without one, SQLite ``trader.db`` in the deployment's data directory is used
    (``daemon.data_dir`` or ``--data-dir``): one store per deployment, shared by
    ``trader run``, ``status``, ``kill``, ``models``, ``db`` and ``backtest``.
    """

    database_url: str | None = None
    sqlite_synchronous: Literal["OFF", "NORMAL", "FULL", "EXTRA"] = "FULL"
    reconcile_policy: Literal["adopt", "refuse"] = "refuse"

    @model_validator(mode="before")
    @classmethod
    def _one_data_dir(cls, data: Any) -> Any:
        if isinstance(data, dict) and "data_dir" in data:
            raise ValueError("store.data_dir: removed; the store lives in the deployment's data "
                             "directory (set daemon.data_dir, or pass --data-dir)")
        return data

    @field_validator("database_url")
    @classmethod
    def _no_password(cls, v: str | None) -> str | None:
        # Committed config must not carry secrets; the message must not echo one either.
        if v and "://" in v and "@" in v.split("://", 1)[1].split("/", 1)[0]:
            userinfo = v.split("://", 1)[1].split("@", 1)[0]
            if ":" in userinfo:
                raise ValueError(
                    "database_url contains a password; put the URL in the TRADER_DATABASE_URL "
                    "environment variable (or use a .pgpass file) instead of the config"
                )
        return v


class ReportConfig(Strict):
    """What the backtest's tear sheet compares the run with (results do not depend on it)."""

    # Instrument id whose buy-and-hold is the benchmark; default: the first instrument.
    benchmark: str | None = None


AlertKind = Literal["fill", "risk_rejected", "trading_state", "kill_switch", "drawdown",
                   "gateway_health", "feed_stale", "reconcile", "daemon"]
ALERT_KINDS: tuple[str, ...] = get_args(AlertKind)


class AlertsConfig(Strict):
    """What the daemon alerts on and how often. The channels are apprise URLs
    (``json://``, ``tgram://``, ``mailto://``, ...) and hold tokens and passwords, so
    they come from the environment variable ``urls_env`` or the file ``urls_file``
    (one per line; a systemd credential ``alert_urls`` is read too), never from YAML."""

    urls_env: str = "TRADER_ALERT_URLS"
    urls_file: Path | None = None
    events: list[AlertKind] = Field(default_factory=lambda: list(ALERT_KINDS))
    fills: Literal["each", "aggregate"] = "aggregate"
    aggregate_seconds: float = Field(60.0, gt=0)  # fills within this window: one message
    dedupe_seconds: float = Field(300.0, ge=0)  # the same alert again within it is dropped
    max_per_minute: int = Field(20, gt=0)  # more are dropped (and counted)
    retries: int = Field(3, ge=0)
    timeout: float = Field(10.0, gt=0)  # seconds to drain pending alerts at shutdown


class WebConfig(Strict):
    """``trader web``: where the read-only dashboard listens (a token is needed beyond
    loopback, from ``$TRADER_WEB_TOKEN``)."""

    host: str = "127.0.0.1"
    port: int = Field(8321, ge=0, le=65535)

class TrackingConfig(Strict):
    """Experiment tracking (MLflow, the ``[tracking]`` extra): where runs are logged.

    ``uri`` is an MLflow tracking URI (``sqlite:///mlruns/mlflow.db``, ``http://host:5000``);
    ``$MLFLOW_TRACKING_URI`` overrides it. Without either, nothing is tracked.
    """

    uri: str | None = None
    experiment: str | None = None  # MLflow experiment name (default: the run's name)


class AppConfig(Strict):
    """A whole run: instruments, data, models and the components' settings."""

    name: str = "run"
    portfolio: PortfolioConfig = PortfolioConfig()
    data: DataConfig = DataConfig()
    execution: ExecutionConfig = ExecutionConfig()
    planner: PlannerConfig = PlannerConfig()
    instruments: list[InstrumentConfig] = Field(min_length=1)
    models: list[ModelConfig] = Field(default_factory=list)
    risk: RiskConfig = Field(default_factory=RiskConfig)
    daemon: DaemonConfig = DaemonConfig()
    store: StoreConfig = StoreConfig()
    lifecycle: LifecycleConfig = LifecycleConfig()
    # A folder of the user's model files (``models[].model``: ``Class`` or ``file:Class``);
    # relative to the config file's folder, then its parent, then the working directory.
    strategies: Path | None = None
    report: ReportConfig = ReportConfig()
    alerts: AlertsConfig = AlertsConfig()
    web: WebConfig = WebConfig()

    tracking: TrackingConfig = TrackingConfig()
    # Market regimes and the budget multipliers their states give (trader.engine.regime).
    regimes: list[RegimeConfig] = Field(default_factory=list)
    regime_budgets: RegimeBudgets = Field(default_factory=dict)
    # Broker gateway settings by the name models route to; each broker validates its own
    # section when the daemon builds it (e.g. gateways.ccxt.config.CcxtGatewayConfig).
    gateways: dict[str, dict[str, Any]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _cross_checks(self) -> AppConfig:
        ids = [i.id for i in self.instruments]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"instruments: duplicate instrument ids {dupes}")
        if self.report.benchmark is not None and self.report.benchmark not in ids:
            raise ValueError(f"report.benchmark: {self.report.benchmark!r} is not an instrument "
                             f"id of this config ({', '.join(ids)})")
        names = [m.name for m in self.models]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"models: duplicate model names {dupes}")
        known = set(ids)
        for idx, m in enumerate(self.models):
            for inst in m.instruments:
                if inst not in known:
                    raise ValueError(
                        f"models.{idx}.instruments: unknown instrument {inst!r} in model "
                        f"{m.name!r}; configured instruments are {sorted(known)}"
                    )
        for iid in self.execution.instruments:
            if iid not in known:
                raise ValueError(f"execution.instruments.{iid}: unknown instrument; "
                                 f"configured instruments are {sorted(known)}")
        total = sum(m.budget for m in self.models)
        if total > 1 + 1e-9:
            raise ValueError(f"models.*.budget: model budgets sum to {total:.4f}, which exceeds 1")
        problem = (market_data_problem(self) or regime_budget_problem(self)
                   or overlay_leverage_problem(self))
        if problem:
            raise ValueError(problem)
        for path in secret_paths(self.gateways, "gateways"):
            # The config is embedded in every journal header: a secret here would be on disk.
            raise ValueError(f"{path}: looks like a secret; config files must not hold "
                             "credentials: name an environment variable or file instead "
                             "(e.g. gateways.<name>.credentials.api_key_env)")
        return self

    def instrument(self, instrument_id: str) -> InstrumentConfig:
        for inst in self.instruments:
            if inst.id == instrument_id:
                return inst
        raise KeyError(instrument_id)


def overlay_leverage_problem(cfg: AppConfig) -> str | None:
    """Volatility targeting may lever the budgets up to ``max_leverage``; that must fit in
    risk's gross leverage cap, or the overlay would keep asking for what risk refuses."""
    ov = cfg.portfolio.overlays
    cap = cfg.risk.gross_leverage.limit
    if ov is None or ov.vol_target is None or cap is None:
        return None
    total = sum(m.budget for m in cfg.models)
    most = ov.vol_target.max_leverage * total
    if most > cap + 1e-9:
        return (f"portfolio.overlays.vol_target.max_leverage: {ov.vol_target.max_leverage} "
                f"x the models' budgets ({total:.4f}) = {most:.4f} exceeds "
                f"risk.gross_leverage.limit ({cap}); lower max_leverage or raise the cap")
    return None


def regime_budget_problem(cfg: AppConfig) -> str | None:
    """What is wrong with ``regimes``/``regime_budgets`` beyond classifier classes and their
    states (``regime_problems`` checks those): names, instruments, targets, multipliers."""
    from trader.core.instruments import AssetClass

    ids = {i.id for i in cfg.instruments}
    names = [r.name for r in cfg.regimes]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        return f"regimes: duplicate regime names {dupes}"
    for idx, r in enumerate(cfg.regimes):
        unknown = [i for i in r.instruments if i not in ids]
        if unknown:
            return (f"regimes.{idx}.instruments: unknown instrument(s) {unknown} in regime "
                    f"{r.name!r}; configured instruments are {sorted(ids)}")
    models = {m.name for m in cfg.models}
    classes = {c.value for c in AssetClass}
    for regime, by_state in cfg.regime_budgets.items():
        if regime not in names:
            return (f"regime_budgets.{regime}: no regime named {regime!r} under regimes: "
                    f"(configured: {names})")
        for state, targets in by_state.items():
            for key, mult in targets.items():
                where = f"regime_budgets.{regime}.{state}.{key}"
                if key not in models and key not in classes:
                    return (f"{where}: {key!r} is neither a model name ({sorted(models)}) nor "
                            f"an asset class ({sorted(classes)})")
                if key in models and key in classes:
                    return f"{where}: {key!r} is both a model name and an asset class; rename it"
                if not (mult >= 0 and math.isfinite(mult)):
                    return f"{where}: a budget multiplier must be a number >= 0 (got {mult})"
    return None


REPLAY = "replay"


def market_data_gateway(cfg: AppConfig) -> str | None:
    """The gateway the daemon takes live bars from, or None for the replay-as-live feed."""
    name = cfg.daemon.market_data
    return None if name == REPLAY else name


def gateway_bar_timeframes(cfg: AppConfig) -> dict[str, int]:
    """Instrument id -> bar length (s) of the market data gateway's stream; {} for replay.

    A gateway section maps exchange symbols to instrument ids (``symbols``) and
    streams one ``timeframe`` (default 1m, as the ccxt gateway's).
    """
    name = market_data_gateway(cfg)
    if name is None:
        return {}
    section = cfg.gateways.get(name) or {}
    tf = parse_timeframe(str(section.get("timeframe", "1m")))
    return {str(inst): tf for inst in (section.get("symbols") or {}).values()}


def base_timeframes(cfg: AppConfig) -> dict[str, int]:
    """Each instrument's base bar length (s): the live feed's, else its data file's."""
    out = {i.id: parse_timeframe(i.data.timeframe) for i in cfg.instruments if i.data}
    out.update(gateway_bar_timeframes(cfg))
    return out


def replay_source(cfg: AppConfig) -> AppConfig:
    """The config with bars from its data files (a backtest), whatever the daemon streams."""
    if market_data_gateway(cfg) is None:
        return cfg
    daemon = cfg.daemon.model_copy(update={"market_data": REPLAY})
    return cfg.model_copy(update={"daemon": daemon})


def market_data_problem(cfg: AppConfig) -> str | None:
    """Why ``daemon.market_data`` cannot supply the models' bars (``key: problem``), if so."""
    name = market_data_gateway(cfg)
    if name is None:
        return None
    key = "daemon.market_data"
    section = cfg.gateways.get(name)
    if section is None:
        return (f"{key}: no gateway named {name!r} under gateways: (configured: "
                f"{sorted(cfg.gateways)}); use {REPLAY!r} for the data files or name one of them")
    if section.get("market_data", True) is False:
        return (f"{key}: gateway {name!r} does not stream bars (gateways.{name}.market_data "
                "is false); set it to true or choose another source")
    symbols = section.get("symbols")
    if not isinstance(symbols, dict) or not symbols:
        return (f"{key}: gateway {name!r} streams no instruments "
                f"(gateways.{name}.symbols must map exchange symbols to instrument ids)")
    try:
        parse_timeframe(str(section.get("timeframe", "1m")))
    except ValueError as exc:
        return f"gateways.{name}.timeframe: {exc}"
    streamed = {str(v) for v in symbols.values()}
    for idx, m in enumerate(cfg.models):
        missing = [i for i in m.instruments if i not in streamed]
        if missing:
            return (f"models.{idx}.instruments: {missing} not streamed by the market data "
                    f"gateway {name!r} ({key}); add them to gateways.{name}.symbols")
    return None


_SECRET_WORDS = ("url", "password", "secret", "token", "api_key")
# Key names (lower case, without "_" and "-") that hold a credential's value.  A key that
# names where a credential comes from (``api_key_env``, ``secret_file``) holds none.
_CREDENTIAL_WORDS = ("apikey", "secret", "password", "passwd", "token", "passphrase",
                     "privatekey")
_CREDENTIAL_REFERENCE = ("env", "file", "path", "var")


def is_secret_key(key: str) -> bool:
    """True for a key that looks like it holds a credential (``apiKey``, ``secret``, ...)."""
    norm = key.lower().replace("_", "").replace("-", "")
    if not any(w in norm for w in _CREDENTIAL_WORDS):
        return False
    return not norm.endswith(_CREDENTIAL_REFERENCE)


def secret_paths(value: Any, path: str) -> list[str]:
    """Dotted paths of the non-empty secret-looking keys in a nested dict/list."""
    out: list[str] = []
    if isinstance(value, dict):
        for k, v in value.items():
            sub = f"{path}.{k}"
            if is_secret_key(str(k)) and v not in (None, "", {}, []):
                out.append(sub)
            else:
                out.extend(secret_paths(v, sub))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out.extend(secret_paths(v, f"{path}.{i}"))
    return out


def without_secrets(value: Any) -> Any:
    """A copy of a nested dict/list with every secret-looking key removed (defence in depth)."""
    if isinstance(value, dict):
        return {k: without_secrets(v) for k, v in value.items() if not is_secret_key(str(k))}
    if isinstance(value, list):
        return [without_secrets(v) for v in value]
    return value


def format_validation_error(source: str, err: ValidationError) -> str:
    lines = [f"{source}: invalid configuration"]
    for e in err.errors():
        path = ".".join(str(p) for p in e["loc"])
        msg = e["msg"]
        if not path:
            # Cross-field checks name their own key path at the start of the message.
            lines.append(f"  at {msg.removeprefix('Value error, ')}")
            continue
        if e["type"] == "missing":
            msg = "required key is missing"
        elif e["type"] == "extra_forbidden":
            msg = "unknown key (check the spelling)"
        got = e.get("input")
        hint = ""
        secret = any(w in path.lower() for w in _SECRET_WORDS)  # never echo a secret back
        if (e["type"] not in ("missing", "extra_forbidden") and not isinstance(got, dict | list)
                and not secret):
            hint = f" (got {got!r})"
        lines.append(f"  at {path}: {msg}{hint}")
    return "\n".join(lines)


# libyaml's parser (when PyYAML was built with it) reads a config ~20x faster than the
# pure-Python one (10 ms of every command's start, measured on paper.yaml); both build the
# values with the same SafeConstructor, so the result is the same.
_FAST_LOADER = getattr(yaml, "CSafeLoader", None)


def _parse_yaml(text: str) -> Any:
    """``text`` parsed as ``yaml.safe_load`` would; errors in the pure-Python parser's words."""
    if _FAST_LOADER is None:
        return yaml.safe_load(text)
    try:
        return yaml.load(text, Loader=_FAST_LOADER)  # CSafeLoader: the safe loader, in C
    except yaml.YAMLError:
        # libyaml words some errors differently; an operator's message stays the same
        # whichever parser is installed (the file is small and already broken).
        return yaml.safe_load(text)


def load_yaml(path: str | Path) -> dict[str, Any]:
    """The mapping a YAML config file holds; unreadable or invalid files raise ConfigError."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read config file: {exc.strerror or exc}") from None
    try:
        raw = _parse_yaml(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{p}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{p}: expected a mapping at the top level, got {type(raw).__name__}")
    return raw


def model_problems(cfg: AppConfig) -> list[str]:
    """What is wrong with the models section beyond its shape: unknown classes, bad
    params, timeframes the instrument's data cannot build; as ``key.path: problem``."""
    from models.registry import model_class

    problems = []
    for idx, mc in enumerate(cfg.models):
        try:
            cls = model_class(mc.model, cfg.strategies)
        except KeyError as exc:
            problems.append(f"models.{idx}.model: {exc.args[0]}")
            continue
        try:
            cls.Params(**mc.params)
        except ValidationError as err:
            for e in err.errors():
                key = ".".join(str(x) for x in e["loc"])
                msg = e["msg"].removeprefix("Value error, ")
                if e["type"] == "extra_forbidden":
                    msg = "unknown parameter (check the spelling)"
                elif "input" in e and not isinstance(e["input"], dict | list):
                    msg += f" (got {e['input']!r})"
                problems.append(f"models.{idx}.params{'.' + key if key else ''}: {msg}")
        except TypeError as exc:
            problems.append(f"models.{idx}.params: {exc}")
        tf = parse_timeframe(mc.timeframe)
        streamed = gateway_bar_timeframes(cfg)
        for inst_id in mc.instruments:
            if inst_id in streamed:
                if tf % streamed[inst_id]:
                    gw = cfg.daemon.market_data
                    problems.append(
                        f"models.{idx}.timeframe: {mc.timeframe} is not a multiple of the bar "
                        f"timeframe of gateways.{gw} ({streamed[inst_id]} s)"
                    )
            inst = next((i for i in cfg.instruments if i.id == inst_id), None)
            if inst is None or inst.data is None:
                continue
            base = parse_timeframe(inst.data.timeframe)
            if tf % base:
                problems.append(
                    f"models.{idx}.timeframe: {mc.timeframe} is not a multiple of "
                    f"{inst_id}'s data timeframe {inst.data.timeframe}"
                )
    return problems


def regime_problems(cfg: AppConfig) -> list[str]:
    """Unknown classifier classes, bad params, timeframes the data cannot build, and
    ``regime_budgets`` states the classifier never names; as ``key.path: problem``."""
    from models.regimes import regime_class

    problems = []
    bases = base_timeframes(cfg)
    for idx, rc in enumerate(cfg.regimes):
        try:
            clf = regime_class(rc.kind, cfg.strategies)(rc.name, rc.instruments, rc.timeframe,
                                                        rc.params)
        except KeyError as exc:
            problems.append(f"regimes.{idx}.kind: {exc.args[0]}")
            continue
        except ValidationError as err:
            for e in err.errors():
                key = ".".join(str(x) for x in e["loc"])
                msg = e["msg"].removeprefix("Value error, ")
                if e["type"] == "extra_forbidden":
                    msg = "unknown parameter (check the spelling)"
                problems.append(f"regimes.{idx}.params{'.' + key if key else ''}: {msg}")
            continue
        except ValueError as exc:
            problems.append(f"regimes.{idx}.instruments: {exc}")
            continue
        tf = parse_timeframe(rc.timeframe)
        for inst in rc.instruments:
            base = bases.get(inst)
            if base is None:
                problems.append(f"regimes.{idx}.instruments: {inst!r} has no data (set its "
                                "data.path or stream it with daemon.market_data)")
            elif tf % base:
                problems.append(f"regimes.{idx}.timeframe: {rc.timeframe} is not a multiple "
                                f"of {inst}'s data timeframe ({base} s)")
        states = clf.states()
        for state in cfg.regime_budgets.get(rc.name, {}):
            if state not in states:
                problems.append(f"regime_budgets.{rc.name}.{state}: {rc.kind} names no state "
                                f"{state!r}; its states are {list(states)}")
    return problems


DATA_DIR_ENV = "TRADER_DATA_DIR"


def resolve_data_dir(cfg: AppConfig | None, override: str | Path | None = None) -> Path:
    """The deployment's data directory: ``--data-dir``, else ``$TRADER_DATA_DIR``, else the
    config's ``daemon.data_dir`` (default ``var``). Every command resolves it here."""
    if override is not None:
        return Path(override)
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env)
    return cfg.daemon.data_dir if cfg is not None else DaemonConfig().data_dir


def resolve_data_path(path: Path, config_file: Path) -> Path:
    """A relative data file path: next to the config, then one folder up (``config/*.yaml``
    naming ``data/...``), then the working directory (a config copied to ``/etc/trader``
    and run with ``WorkingDirectory=/opt/trader``). The first that exists wins."""
    return _data_path_candidates(path, config_file)[0]


def _data_path_candidates(path: Path, config_file: Path) -> tuple[Path, tuple[Path, ...]]:
    """The resolved path and, when found nowhere, the places it was looked for."""
    if path.is_absolute():
        return path, ()
    base = config_file.resolve().parent
    candidates = [base / path, base.parent / path, Path.cwd() / path]
    for c in candidates:
        if c.exists():
            return c.resolve(), ()
    return candidates[0].resolve(), tuple(dict.fromkeys(c.resolve() for c in candidates))


def load_config(path: str | Path) -> AppConfig:
    """Load and validate a config file; relative data paths resolve against its folder."""
    return config_from_dict(load_yaml(path), path)


def config_from_dict(raw: dict[str, Any], path: str | Path) -> AppConfig:
    """Validate a config's parsed YAML as if it were the file at ``path`` (messages name it,
    relative data paths resolve against its folder); an optimiser's variations use this."""
    p = Path(path)
    if isinstance(raw.get("regime_budgets"), str):
        raw = {**raw, "regime_budgets": _regime_budgets_file(raw["regime_budgets"], p)}
    try:
        cfg = AppConfig.model_validate(raw)
    except ValidationError as err:
        raise ConfigError(format_validation_error(str(p), err)) from None
    if cfg.strategies is not None:
        folder, searched = _data_path_candidates(cfg.strategies, p)
        if not folder.is_dir():
            raise ConfigError(f"{p}: strategies: no folder {cfg.strategies} (looked in "
                              f"{', '.join(map(str, searched)) or folder})")
        cfg.strategies = folder
    problems = model_problems(cfg) + regime_problems(cfg)
    if problems:
        raise ConfigError("\n".join([f"{p}: invalid configuration",
                                      *(f"  at {x}" for x in problems)]))
    object.__setattr__(cfg.data, "catalog", _catalog_root(cfg.data.catalog, p))
    for idx, inst in enumerate(cfg.instruments):
        if inst.data is not None and inst.data.catalog is not None:
            _resolve_catalog(cfg, idx, p)
        elif inst.data is not None and inst.data.path is not None:
            resolved, searched = _data_path_candidates(inst.data.path, p)
            object.__setattr__(inst.data, "path", resolved)
            inst.data._searched = searched
    return cfg


def _regime_budgets_file(name: str, config_file: Path) -> Any:
    """``regime_budgets: regime_budgets.yaml``: the mapping kept in a file of its own, looked
    up like a data path; it replaces the name, so a journal's config carries the mapping."""
    found, searched = _data_path_candidates(Path(name), config_file)
    if not found.is_file():
        raise ConfigError(f"{config_file}: regime_budgets: no file {name} (looked in "
                          f"{', '.join(map(str, searched)) or found})")
    return load_yaml(found)


def _catalog_root(root: Path, config_file: Path) -> Path:
    """The catalog root: looked up like a data path; one that does not exist yet (a first
    download) goes where its parent folder exists, so ``config/*.yaml`` naming
    ``data/catalog`` fills the repository's ``data/``."""
    found, searched = _data_path_candidates(root, config_file)
    if not searched:
        return found
    return next((c for c in searched if c.parent.is_dir()), found)


def _resolve_catalog(cfg: AppConfig, idx: int, config_file: Path) -> None:
    """Point ``instruments[idx].data.path`` at its catalog entry's file, or note why not."""
    from trader.data.catalog import Catalog, CatalogError

    data = cfg.instruments[idx].data
    assert data is not None and data.catalog is not None
    catalog = Catalog(cfg.data.catalog)
    try:
        object.__setattr__(data, "path", catalog.path(catalog.find(data.catalog, data.timeframe)))
    except (CatalogError, ValueError) as exc:
        data._missing = f"{config_file}: instruments.{idx}.data.catalog: {exc}"
