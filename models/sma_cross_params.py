"""SmaCross's parameters, in a module of their own so that ``models.sma_cross`` compiles.

mypyc (``TRADER_COMPILE=1``, see setup.py) compiles ``models.sma_cross``, and
pydantic cannot inspect the signature of a compiled validator: the parameter
model stays pure Python here.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from models.base import Params


class SmaCrossParams(Params):
    fast: int = Field(10, gt=0)
    slow: int = Field(30, gt=0)
    allow_short: bool = False
    # True: enter only on an actual cross, not on the first bar that finds fast above slow.
    enter_on_cross: bool = False

    @model_validator(mode="after")
    def _order(self) -> SmaCrossParams:
        if self.fast >= self.slow:
            raise ValueError(f"fast ({self.fast}) must be shorter than slow ({self.slow})")
        return self
