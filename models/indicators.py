"""Incremental indicators: O(1) per bar, no history kept beyond their window."""

from __future__ import annotations

import math
from collections import deque


class RollingMean:
    """Simple moving average over the last ``n`` values."""

    __slots__ = ("n", "_buf", "_sum")

    def __init__(self, n: int) -> None:
        if n <= 0:
            raise ValueError("window must be positive")
        self.n = n
        self._buf: deque[float] = deque(maxlen=n)
        self._sum = 0.0

    def update(self, x: float) -> float | None:
        buf = self._buf
        if len(buf) == self.n:
            self._sum -= buf[0]
        buf.append(x)
        self._sum += x
        return self._sum / self.n if len(buf) == self.n else None

    @property
    def ready(self) -> bool:
        return len(self._buf) == self.n

    @property
    def value(self) -> float | None:
        return self._sum / self.n if len(self._buf) == self.n else None


class RollingStd:
    """Population standard deviation of the last ``n`` values (recomputed, n is small)."""

    __slots__ = ("n", "_buf")

    def __init__(self, n: int) -> None:
        self.n = n
        self._buf: deque[float] = deque(maxlen=n)

    def update(self, x: float) -> tuple[float, float] | None:
        self._buf.append(x)
        if len(self._buf) < self.n:
            return None
        mean = math.fsum(self._buf) / self.n
        var = math.fsum((v - mean) ** 2 for v in self._buf) / self.n
        return mean, math.sqrt(var)


class Momentum:
    """Return over the last ``n`` bars: close / close[n bars ago] - 1."""

    __slots__ = ("n", "_buf")

    def __init__(self, n: int) -> None:
        self.n = n
        self._buf: deque[float] = deque(maxlen=n + 1)

    def update(self, x: float) -> float | None:
        self._buf.append(x)
        if len(self._buf) <= self.n:
            return None
        return x / self._buf[0] - 1.0


class RSI:
    """Wilder's relative strength index over ``n`` bars."""

    __slots__ = ("n", "_prev", "_gain", "_loss", "_count")

    def __init__(self, n: int) -> None:
        self.n = n
        self._prev: float | None = None
        self._gain = 0.0
        self._loss = 0.0
        self._count = 0

    def update(self, x: float) -> float | None:
        prev, self._prev = self._prev, x
        if prev is None:
            return None
        change = x - prev
        gain, loss = max(change, 0.0), max(-change, 0.0)
        n = self.n
        self._count += 1
        if self._count <= n:
            self._gain += gain / n
            self._loss += loss / n
            if self._count < n:
                return None
        else:
            self._gain = (self._gain * (n - 1) + gain) / n
            self._loss = (self._loss * (n - 1) + loss) / n
        if self._loss == 0:
            return 100.0 if self._gain > 0 else 50.0
        rs = self._gain / self._loss
        return 100.0 - 100.0 / (1.0 + rs)


class EMA:
    """Exponential moving average with alpha = 2 / (n + 1), seeded by the first ``n``-bar SMA."""

    __slots__ = ("n", "alpha", "_seed", "_value")

    def __init__(self, n: int) -> None:
        if n <= 0:
            raise ValueError("window must be positive")
        self.n = n
        self.alpha = 2.0 / (n + 1)
        self._seed = RollingMean(n)
        self._value: float | None = None

    def update(self, x: float) -> float | None:
        if self._value is None:
            self._value = self._seed.update(x)
            return self._value
        self._value += self.alpha * (x - self._value)
        return self._value


class ATR:
    """Wilder's average true range over ``n`` bars (the first value is the mean of ``n``)."""

    __slots__ = ("n", "_prev_close", "_count", "_value")

    def __init__(self, n: int) -> None:
        if n <= 0:
            raise ValueError("window must be positive")
        self.n = n
        self._prev_close: float | None = None
        self._count = 0
        self._value = 0.0

    def update(self, high: float, low: float, close: float) -> float | None:
        prev, self._prev_close = self._prev_close, close
        if prev is None:
            return None  # a true range needs the previous close
        tr = max(high - low, abs(high - prev), abs(low - prev))
        n = self.n
        self._count += 1
        if self._count <= n:
            self._value += tr / n
            return self._value if self._count == n else None
        self._value = (self._value * (n - 1) + tr) / n
        return self._value
