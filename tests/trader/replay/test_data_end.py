"""An instrument whose data ends before the backtest does: warned once, stated in the report."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from structlog.testing import capture_logs

from trader.engine.config import AppConfig
from trader.replay.backtest import run_backtest

NS = 1_000_000_000
DAY = 86_400
T0 = 1_704_067_200  # 2024-01-01


def write(path: Path, n: int, base: float) -> Path:
    ts = pa.array([(T0 + i * DAY) * NS for i in range(n)]).cast(pa.timestamp("ns", tz="UTC"))
    close = [base + (i % 5) for i in range(n)]
    pq.write_table(pa.table({"ts": ts, "open": close, "high": [c + 1 for c in close],
                             "low": [c - 1 for c in close], "close": close,
                             "volume": [1.0] * n}), path)
    return path


def config(tmp_path: Path, on_data_end: str = "hold") -> AppConfig:
    return AppConfig.model_validate({
        "data": {"on_data_end": on_data_end},
        "instruments": [
            {"id": "LONG", "symbol": "L", "venue": "X", "asset_class": "crypto",
             "data": {"path": str(write(tmp_path / "l.parquet", 60, 100.0)), "timeframe": "1d"}},
            {"id": "SHORT", "symbol": "S", "venue": "X", "asset_class": "crypto",
             "data": {"path": str(write(tmp_path / "s.parquet", 20, 50.0)), "timeframe": "1d"}},
        ],
        "models": [{"name": "m", "model": "SmaCross", "budget": 0.5,
                    "instruments": ["LONG", "SHORT"], "params": {"fast": 2, "slow": 3}}],
    })


def test_an_early_end_is_warned_once_and_reported(tmp_path: Path) -> None:
    with capture_logs() as logs:
        res = run_backtest(config(tmp_path))
    ended = [e for e in logs if e["event"] == "data_ended_early"]
    assert len(ended) == 1
    assert ended[0]["instrument"] == "SHORT" and ended[0]["last_bar"] == "2024-01-20T00:00:00Z"
    info = res.metrics["data"]
    assert "ended_early" not in info["LONG"]
    end = info["SHORT"]["ended_early"]
    assert end == {"last_bar": "2024-01-20T00:00:00Z", "run_end": "2024-03-01T00:00:00Z",
                   "on_data_end": "hold",
                   "position_at_end": res.engine.portfolio.position("SHORT")}
    assert info["SHORT"]["source"] == "file" and info["SHORT"]["prices"] == "as in the file"
    assert end["position_at_end"] > 0  # held: still long, marked at the last close


def test_on_data_end_close_sells_at_the_last_price_through_risk(tmp_path: Path) -> None:
    held = run_backtest(config(tmp_path)).engine
    res = run_backtest(config(tmp_path, "close"))
    engine = res.engine
    assert engine.portfolio.position("SHORT") == 0
    assert res.metrics["data"]["SHORT"]["ended_early"]["on_data_end"] == "close"
    last_close = 50.0 + 19 % 5
    fills = [f for f in engine.gateways["sim"].fills if f.instrument_id == "SHORT"]
    close_fill = fills[-1]
    slip = engine.cfg.execution.slippage_bps / 10_000
    assert close_fill.ts == (T0 + 20 * DAY) * NS  # the last bar's close: no later price used
    assert close_fill.price == last_close * (1 - slip)
    assert close_fill.quantity == held.portfolio.position("SHORT")
    # the run goes on for LONG, and SHORT is never traded again
    assert any(f.instrument_id == "LONG" and f.ts > close_fill.ts
               for f in engine.gateways["sim"].fills)
    assert all(f.ts <= close_fill.ts for f in fills)
