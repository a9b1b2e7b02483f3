"""The run's observers sample once a day, lazily: the same samples as reading every bar."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from trader.core.events import Bar
from trader.engine.config import AppConfig
from trader.replay.backtest import run_backtest
from trader.replay.observers import DAY_NS, ModelCurves, RunTrace

NS = 1_000_000_000
T0 = 1_704_067_200  # 2024-01-01


def write(path: Path, n: int, step: int, base: float, trend: float = 0.0,
          gap: int = 0) -> Path:
    """``n`` bars ``step`` seconds apart; with ``gap``, the second half ``gap`` seconds later."""
    ts = pa.array([(T0 + i * step + (gap if i >= n // 2 else 0)) * NS
                   for i in range(n)]).cast(pa.timestamp("ns", tz="UTC"))
    close = [base + (i % 7) - (i % 3) + trend * i for i in range(n)]
    pq.write_table(pa.table({"ts": ts, "open": close, "high": [c + 1 for c in close],
                             "low": [c - 1 for c in close], "close": close,
                             "volume": [1.0] * n}), path)
    return path


def config(tmp_path: Path, timeframe: str, step: int, short_n: int, gap: int = 0) -> AppConfig:
    return AppConfig.model_validate({
        "data": {"on_data_end": "close"},
        "execution": {"borrow_bps_per_year": 300, "margin_bps_per_year": 500,
                      "slippage_bps": 20, "commission_bps": 10},
        "instruments": [
            {"id": "LONG", "symbol": "L", "venue": "X", "asset_class": "equity",
             "data": {"path": str(write(tmp_path / "l.parquet", 200, step, 100.0)),
                      "timeframe": timeframe}},
            {"id": "SHORT", "symbol": "S", "venue": "X", "asset_class": "equity",
             "data": {"path": str(write(tmp_path / "s.parquet", short_n, step, 50.0, 2.0, gap)),
                      "timeframe": timeframe}},
        ],
        "models": [
            {"name": "a", "model": "SmaCross", "budget": 0.4, "instruments": ["LONG", "SHORT"],
             "timeframe": timeframe, "params": {"fast": 2, "slow": 3, "allow_short": True}},
            {"name": "b", "model": "SmaCross", "budget": 0.4, "instruments": ["SHORT"],
             "timeframe": timeframe, "params": {"fast": 3, "slow": 5}},
        ],
    })


class EveryBar:
    """The reference: every base bar's NAVs read when its dispatch has ended."""

    def __init__(self, engine: Any, curves: ModelCurves) -> None:
        self.pf = engine.portfolio
        self.curves = curves
        self.ts: list[int] = []
        self.navs: dict[str, list[float]] = {m: [] for m in curves.capital}
        self.day: int | None = None
        self.pending: tuple[int, dict[str, float]] | None = None
        self.closes: dict[str, list[tuple[int, float]]] = {}
        engine.kernel.bus.subscribe(Bar, self.on_bar)  # last: the dispatch is over

    def on_bar(self, bar: Bar) -> None:
        if self.curves.bases.get(bar.instrument_id, bar.timeframe) == bar.timeframe:
            series = self.closes.setdefault(bar.instrument_id, [])
            if series and (series[-1][0] - 1) // DAY_NS == (bar.ts - 1) // DAY_NS:
                series[-1] = (bar.ts, bar.close)
            else:
                series.append((bar.ts, bar.close))
        if self.curves.bases.get(bar.instrument_id) != bar.timeframe:
            return
        day = bar.ts // DAY_NS
        if day != self.day and self.pending is not None:
            self.push()
        self.day = day
        self.pending = (bar.ts, {m: c + self.pf.model_book(m).equity(self.pf.marks)
                                 for m, c in self.curves.capital.items()})

    def push(self) -> None:
        assert self.pending is not None
        self.ts.append(self.pending[0])
        for m, v in self.pending[1].items():
            self.navs[m].append(v)
        self.pending = None


# The last case: one instrument's bars stop for three and a half days and resume mid-day,
# so its days and the other's part ways.
@pytest.mark.parametrize(("timeframe", "step", "short_n", "gap"), [("1d", 86_400, 40, 0),
                                                                   ("4h", 14_400, 90, 0),
                                                                   ("1h", 3_600, 77, 0),
                                                                   ("1h", 3_600, 120, 302_400)])
def test_daily_samples_match_reading_every_bar(tmp_path: Path, timeframe: str, step: int,
                                               short_n: int, gap: int) -> None:
    seen: dict[str, Any] = {}

    def on_engine(engine: Any) -> None:
        curves, trace = (c.__self__ for c in engine.kernel.consumers)
        assert isinstance(curves, ModelCurves) and isinstance(trace, RunTrace)
        seen["curves"], seen["trace"], seen["ref"] = curves, trace, EveryBar(engine, curves)

    res = run_backtest(config(tmp_path, timeframe, step, short_n, gap), on_engine=on_engine)
    curves, ref = seen["curves"], seen["ref"]
    ref.push()
    assert res.metrics["trades"] > 5  # the books moved, through fills and the early end
    assert res.metrics["exit_reasons"]["signal"] > 5
    closing = [o for o in res.engine.orders if o.instrument_id == "SHORT"][-1]
    # its end
    assert closing.side.value == "SELL" and closing.ts == (T0 + short_n * step + gap) * NS
    assert res.metrics["costs"]["financing"] > 0
    assert curves.ts == ref.ts and len(ref.ts) > 5
    assert curves.navs == ref.navs
    assert len(set(ref.navs["a"])) > 3 and len(set(ref.navs["b"])) > 3
    trace = seen["trace"]
    assert list(trace.closes) == list(ref.closes) == ["LONG", "SHORT"]
    assert trace.closes == ref.closes
    assert len(ref.closes["LONG"]) > len(ref.closes["SHORT"]) > 3
