"""The XGBoost inference model: a trained artifact, the same features live, a gated signal.

On each decision bar the features are computed incrementally (``FeatureEngine``,
the code training ran over history), the booster and its calibration give the
probability that the labelled trade makes money, and ``models.ml.signals``
turns it into a target weight.  The artifact is read once, when the model is
built; ``on_bar`` touches neither files nor the clock.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from models.base import Model, Params
from models.ml.artifacts import Artifact, check_features, load_artifact
from models.ml.features import FeatureEngine, FeatureSetConfig, warmup_bars
from models.ml.meta import PrimaryConfig, PrimarySide
from models.ml.predict import Predictor
from models.ml.signals import SignalRule, target_weight
from trader.core.events import Bar

YEAR_S = 365.25 * 86_400


class XGBoostParams(Params):
    """What the model trades on: the artifact, the feature set it declares, the signal rule."""

    artifact: str = Field(description="artifact directory written by `trader models train`")
    features: FeatureSetConfig = FeatureSetConfig()
    fold: int | None = Field(None, ge=0, description=(
        "use fold k's booster instead of the final one (replays its out-of-sample signals)"))
    threshold: float = Field(0.55, ge=0.5, lt=1, description="minimum calibrated probability")
    cost_bps: float = Field(5.0, ge=0, description="fees + slippage the expected return must beat")
    target_vol: float = Field(0.5, gt=0, description="annualised volatility a full size targets")
    max_weight: float = Field(1.0, gt=0, le=1)
    weight_step: float = Field(0.25, gt=0, le=1, description="sizes are rounded down to this")
    allow_short: bool = False
    nthread: int = Field(1, gt=0)


class _Loaded(BaseModel):
    """Loads the artifact; a problem is a validation error on ``artifact`` (the config key)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    features: FeatureSetConfig
    fold: int | None
    timeframe: int
    artifact: Any

    @field_validator("artifact")
    @classmethod
    def _load(cls, v: str, info: ValidationInfo) -> Artifact:
        path = Path(v)
        art = load_artifact(path, info.data.get("fold"))
        check_features(art.meta, info.data["features"], path, "params.features")
        if art.meta["timeframe"] != info.data["timeframe"]:
            raise ValueError(f"{path}: trained on {art.meta['timeframe']} s bars, but the model's "
                             f"timeframe is {info.data['timeframe']} s")
        return art


def signal_rule(p: XGBoostParams, labels: dict[str, Any], timeframe: int) -> SignalRule:
    """The signal rule of a model's params and its artifact's labels (training uses it too)."""
    return SignalRule(
        threshold=p.threshold, cost_bps=p.cost_bps, profit_take=labels["profit_take"],
        stop_loss=labels["stop_loss"], primary=1 if labels["side"] == "long" else -1,
        allow_short=p.allow_short, target_vol=p.target_vol, bars_per_year=YEAR_S / timeframe,
        max_weight=p.max_weight, weight_step=p.weight_step)


class XGBoost(Model):
    """Trades the calibrated probability of an XGBoost artifact (see ``models.ml``)."""

    Params = XGBoostParams

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        p: XGBoostParams = self.params  # type: ignore[assignment]
        art: Artifact = _Loaded(features=p.features, fold=p.fold, timeframe=self.timeframe,
                                artifact=p.artifact).artifact
        meta = art.meta
        self.artifact = art
        self.predictor = Predictor(art.model, art.calibrator, p.nthread)
        labels = meta["labels"]
        self._width = meta["features"]["names"].index(
            "atr" if labels["barrier"] == "atr" else "vol")
        self._vol = meta["features"]["names"].index("vol")
        self.rule = signal_rule(p, labels, self.timeframe)
        self._engines = {i: FeatureEngine(p.features, self.timeframe) for i in self.instruments}
        # Meta-labelling: the primary model the artifact was labelled with picks the side.
        primary = labels.get("primary")
        self._primary = {i: PrimarySide(PrimaryConfig.model_validate(primary), i,
                                        self.timeframe) for i in self.instruments} if primary \
            else None
        self._weight = dict.fromkeys(self.instruments, 0.0)
        self.last_prob: dict[str, float] = {}

    def subscriptions(self) -> list[tuple[str, int]]:
        return [(inst, tf) for inst in self.instruments
                for tf in self._engines[inst].timeframes()]

    def warmup_bars(self) -> int:
        return warmup_bars(self.params.features, self.timeframe)  # type: ignore[attr-defined]

    def on_bar(self, bar: Bar) -> dict[str, float] | None:
        inst = bar.instrument_id
        side = None
        if self._primary is not None and bar.timeframe == self.timeframe:
            side = self._primary[inst].on_bar(bar)  # every decision bar, ready or not
        x = self._engines[inst].on_bar(bar)
        if x is None:
            return None
        p = float(self.predictor.predict(np.array([x]))[0])
        self.last_prob[inst] = p
        w = target_weight(p, x[self._width], x[self._vol], self.rule, side)
        if w == self._weight[inst]:
            return None
        self._weight[inst] = w
        return {inst: w}
