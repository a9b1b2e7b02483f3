"""Features of closed bars: one incremental implementation for the kernel and for training.

A feature set is declared by name and parameters (``FeatureSetConfig``) and
identified by a hash of both.  ``FeatureEngine`` computes it bar by bar: the
inference model feeds it the bars the kernel delivers, and training feeds it
the same bars from history (``batch_features``).  There is no second,
vectorised path that could drift from the live one: the batch is the stream.

Multi-timeframe: with ``slow_timeframe`` (e.g. D1 under H4 decisions) the slow
features are those of the last slow bar whose close time is *strictly before*
the decision bar's close.  The aggregator may publish a slow bar just before or
just after a decision bar with the same close time (it depends on which one
the base bar completes first); the strict rule makes the answer the same both
ways, and can only ever use bars that had closed.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field, field_validator

from models.base import Params
from models.indicators import ATR, EMA, RSI, Momentum, RollingMean, RollingStd
from trader.core.events import Bar
from trader.core.timeframes import NS, parse_timeframe

FEATURE_CODE_VERSION = 1  # bump when a formula changes: old artifacts must not load silently
_HOUR_NS = 3600 * NS
_DAY_NS = 86_400 * NS


class TechnicalParams(Params):
    """Windows (in bars of the timeframe they apply to) of the ``technical`` feature set."""

    return_lags: tuple[int, ...] = Field((1, 2, 4, 8, 16), min_length=1)
    sma: tuple[int, ...] = (10, 30)
    ema: tuple[int, ...] = (12, 48)
    rsi: int = Field(14, gt=1)
    atr: int = Field(14, gt=0)
    bollinger: int = Field(20, gt=1)
    volatility: int = Field(20, gt=1)
    volume_z: int = Field(20, gt=1)
    calendar: bool = True
    slow_timeframe: str | None = None
    slow_return_lags: tuple[int, ...] = (1, 5)
    slow_sma: int = Field(20, gt=0)
    slow_rsi: int = Field(14, gt=1)
    slow_volatility: int = Field(20, gt=1)

    @field_validator("return_lags", "sma", "ema", "slow_return_lags")
    @classmethod
    def _positive(cls, v: tuple[int, ...]) -> tuple[int, ...]:
        if any(n <= 0 for n in v):
            raise ValueError(f"windows must be positive (got {list(v)})")
        return v

    @field_validator("slow_timeframe")
    @classmethod
    def _tf(cls, v: str | None) -> str | None:
        if v is not None:
            parse_timeframe(v)
        return v


class FeatureSetConfig(Params):
    """A feature set as a config declares it: ``{name: technical, params: {...}}``."""

    name: Literal["technical"] = "technical"
    params: TechnicalParams = TechnicalParams()

    def canonical(self) -> dict:
        """Name, code version and every parameter (defaults included): what the hash covers."""
        return {"name": self.name, "version": FEATURE_CODE_VERSION,
                "params": self.params.model_dump(mode="json")}

    def hash(self) -> str:
        """sha256 of the canonical JSON: equal hashes, equal features."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode()).hexdigest()


def feature_names(cfg: FeatureSetConfig) -> tuple[str, ...]:
    """Column names, in the order ``FeatureEngine`` returns values."""
    p = cfg.params
    names = [f"ret_{k}" for k in p.return_lags]
    names += [f"sma_{n}" for n in p.sma] + [f"ema_{n}" for n in p.ema]
    names += ["rsi", "atr", "boll_z", "vol", "volume_z"]
    if p.calendar:
        names += ["hour", "weekday"]
    if p.slow_timeframe is not None:
        names += [f"slow_ret_{k}" for k in p.slow_return_lags]
        names += ["slow_sma", "slow_rsi", "slow_vol"]
    return tuple(names)


class _LogReturnVol:
    """Population std of the last ``n`` log returns."""

    __slots__ = ("_prev", "_std")

    def __init__(self, n: int) -> None:
        self._prev: float | None = None
        self._std = RollingStd(n)

    def update(self, close: float) -> float | None:
        prev, self._prev = self._prev, close
        if prev is None:
            return None
        out = self._std.update(math.log(close / prev))
        return None if out is None else out[1]


class _Fast:
    """The decision timeframe's features of one instrument."""

    def __init__(self, p: TechnicalParams) -> None:
        self.calendar = p.calendar
        self.rets = [Momentum(k) for k in p.return_lags]
        self.smas = [RollingMean(n) for n in p.sma]
        self.emas = [EMA(n) for n in p.ema]
        self.rsi = RSI(p.rsi)
        self.atr = ATR(p.atr)
        self.boll = RollingStd(p.bollinger)
        self.vol = _LogReturnVol(p.volatility)
        self.volume = RollingStd(p.volume_z)

    def update(self, bar: Bar) -> list[float] | None:
        c = bar.close
        # Every indicator is updated on every bar, ready or not, so none skips a value.
        values: list[float | None] = [m.update(c) for m in self.rets]
        values += [_ratio(c, s.update(c)) for s in self.smas]
        values += [_ratio(c, e.update(c)) for e in self.emas]
        rsi = self.rsi.update(c)
        values.append(None if rsi is None else rsi / 100.0)
        atr = self.atr.update(bar.high, bar.low, c)
        values.append(None if atr is None else atr / c)
        values.append(_zscore(c, self.boll.update(c)))
        values.append(self.vol.update(c))
        values.append(_zscore(bar.volume, self.volume.update(bar.volume)))
        if self.calendar:
            values += [float(bar.ts % _DAY_NS // _HOUR_NS), float((bar.ts // _DAY_NS + 3) % 7)]
        if any(v is None for v in values):
            return None
        return values  # type: ignore[return-value]


class _Slow:
    """The slow timeframe's features of one instrument."""

    def __init__(self, p: TechnicalParams) -> None:
        self.rets = [Momentum(k) for k in p.slow_return_lags]
        self.sma = RollingMean(p.slow_sma)
        self.rsi = RSI(p.slow_rsi)
        self.vol = _LogReturnVol(p.slow_volatility)

    def update(self, bar: Bar) -> list[float] | None:
        c = bar.close
        values: list[float | None] = [m.update(c) for m in self.rets]
        values.append(_ratio(c, self.sma.update(c)))
        rsi = self.rsi.update(c)
        values.append(None if rsi is None else rsi / 100.0)
        values.append(self.vol.update(c))
        if any(v is None for v in values):
            return None
        return values  # type: ignore[return-value]


def _ratio(x: float, base: float | None) -> float | None:
    return None if base is None else x / base - 1.0


def _zscore(x: float, mean_std: tuple[float, float] | None) -> float | None:
    if mean_std is None:
        return None
    mean, std = mean_std
    return (x - mean) / std if std > 0 else 0.0


class FeatureEngine:
    """Features of one instrument, bar by bar, from closed bars only.

    ``on_bar`` takes every bar the model is subscribed to (decision and slow
    timeframe) in the order the kernel publishes them, and returns the feature
    vector on a decision bar once every feature is defined, else ``None``.
    """

    def __init__(self, cfg: FeatureSetConfig, timeframe: int) -> None:
        p = cfg.params
        self.names = feature_names(cfg)
        self.timeframe = timeframe
        self.slow_timeframe = parse_timeframe(p.slow_timeframe) if p.slow_timeframe else None
        if self.slow_timeframe is not None and self.slow_timeframe <= timeframe:
            raise ValueError(f"slow_timeframe {p.slow_timeframe} must be longer than the "
                             f"model's timeframe ({timeframe} s)")
        self._fast = _Fast(p)
        self._slow = _Slow(p) if self.slow_timeframe else None
        self._slow_pending: list[tuple[int, list[float] | None]] = []
        self._slow_now: list[float] | None = None

    def timeframes(self) -> tuple[int, ...]:
        return (self.timeframe,) if self.slow_timeframe is None else (
            self.timeframe, self.slow_timeframe)

    def on_bar(self, bar: Bar) -> list[float] | None:
        if bar.timeframe == self.slow_timeframe:
            assert self._slow is not None
            self._slow_pending.append((bar.ts, self._slow.update(bar)))
            return None
        if bar.timeframe != self.timeframe:
            return None
        fast = self._fast.update(bar)
        if self._slow is None:
            return fast
        pending = self._slow_pending
        while pending and pending[0][0] < bar.ts:  # strictly earlier closes only
            self._slow_now = pending.pop(0)[1]
        if fast is None or self._slow_now is None:
            return None
        return fast + self._slow_now


def warmup_bars(cfg: FeatureSetConfig, timeframe: int) -> int:
    """Decision bars of history before every feature is defined."""
    p = cfg.params
    fast = max((*p.return_lags, *p.sma, *p.ema, p.rsi, p.atr, p.bollinger, p.volatility,
                p.volume_z)) + 1
    if p.slow_timeframe is None:
        return fast
    slow = max((*p.slow_return_lags, p.slow_sma, p.slow_rsi, p.slow_volatility)) + 2
    return max(fast, slow * math.ceil(parse_timeframe(p.slow_timeframe) / timeframe))


@dataclass(frozen=True)
class FeatureFrame:
    """Every decision bar of one instrument, its features (NaN rows until defined) and OHLC."""

    names: tuple[str, ...]
    ts: np.ndarray       # int64 close times of the decision bars
    X: np.ndarray        # float64, len(ts) x len(names)
    ready: np.ndarray    # bool: the row's features are all defined
    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray

    def column(self, name: str) -> np.ndarray:
        return self.X[:, self.names.index(name)]


def batch_features(cfg: FeatureSetConfig, timeframe: int, bars: Iterable[Bar]) -> FeatureFrame:
    """Run ``FeatureEngine`` over ``bars`` (one instrument, as the kernel delivers them)."""
    engine = FeatureEngine(cfg, timeframe)
    width = len(engine.names)
    ts: list[int] = []
    rows: list[list[float]] = []
    ohlc: list[tuple[float, float, float, float]] = []
    nan_row = [math.nan] * width
    for bar in bars:
        values = engine.on_bar(bar)
        if bar.timeframe != timeframe:
            continue
        ts.append(bar.ts)
        rows.append(values if values is not None else nan_row)
        ohlc.append((bar.open, bar.high, bar.low, bar.close))
    X = np.array(rows, dtype=np.float64).reshape(len(rows), width)
    prices = np.array(ohlc, dtype=np.float64).reshape(len(ohlc), 4)
    return FeatureFrame(engine.names, np.array(ts, dtype=np.int64), X,
                        ~np.isnan(X).any(axis=1), *prices.T.copy())
