"""The rule models by class name: what a config may name as a meta-labelling primary model.

``models.registry`` adds the models built on trained artifacts to these; this table sits
below them so that a trained model can run a rule model without importing the registry.
"""

from __future__ import annotations

from models.base import Model
from models.crypto_momentum import CryptoMomentum
from models.equity_trend import EquityTrend
from models.index_mean_reversion import IndexMeanReversion
from models.sma_cross import SmaCross

RULE_MODELS: dict[str, type[Model]] = {
    "SmaCross": SmaCross,
    "EquityTrend": EquityTrend,
    "IndexMeanReversion": IndexMeanReversion,
    "CryptoMomentum": CryptoMomentum,
}
