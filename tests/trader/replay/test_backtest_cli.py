"""`trader backtest` end to end: reports, their contents, and byte-for-byte determinism."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
TRADER = Path(sys.executable).with_name("trader")
CONFIG = ROOT / "config" / "backtest.yaml"

METRIC_KEYS = {
    "total_return", "cagr", "annual_volatility", "sharpe", "sortino", "max_drawdown", "calmar",
    "win_rate", "profit_factor", "trades", "exposure", "bps",
}


def backtest(out: Path, cwd: Path, hash_seed: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONHASHSEED": hash_seed, "NO_COLOR": "1", "COLUMNS": "200"}
    r = subprocess.run([str(TRADER), "backtest", str(CONFIG), "--out", str(out)], cwd=cwd,
                       env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return r


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    base = tmp_path_factory.mktemp("bt")
    # Different hash seeds and working directories: neither may change a byte.
    first = backtest(base / "one", cwd=base, hash_seed="1")
    backtest(base / "two", cwd=ROOT, hash_seed="12345")
    return base / "one", base / "two", first.stdout


def test_writes_all_reports(runs) -> None:
    one, _, stdout = runs
    for name in ("metrics.json", "trades.csv", "equity.csv", "report.html"):
        assert (one / name).stat().st_size > 0, name
    assert "Backtest summary" in stdout and "bps" in stdout


def test_metrics_hold_every_key_and_bps_is_the_stated_blend(runs) -> None:
    m = json.loads((runs[0] / "metrics.json").read_text())
    assert METRIC_KEYS <= m.keys()
    expected = 0.4 * m["sharpe"] + 0.3 * m["cagr"] + 0.2 * m["win_rate"] - 0.1 * abs(
        m["max_drawdown"])
    assert m["bps"] == pytest.approx(expected, abs=1e-9)
    assert 0 <= m["win_rate"] <= 1 and 0 <= m["max_drawdown"] < 1 and 0 < m["exposure"] <= 1
    with open(runs[0] / "trades.csv") as fh:
        assert m["trades"] == sum(1 for _ in fh) - 1


def test_every_model_trades(runs) -> None:
    with open(runs[0] / "trades.csv") as fh:
        rows = list(csv.DictReader(fh))
    traded = {r["instrument_id"] for r in rows}
    # One model per instrument in the shipped config.
    assert traded == {"SPY", "QQQ", "IWM", "BTCUSD", "EURUSD"}
    m = json.loads((runs[0] / "metrics.json").read_text())
    assert set(m["model_pnl"]) >= {"spy_trend", "qqq_sma", "iwm_meanrev", "btc_momentum",
                                   "eurusd_sma"}
    assert all(m["model_pnl"][k] != 0 for k in ("spy_trend", "qqq_sma", "iwm_meanrev",
                                                "btc_momentum", "eurusd_sma"))
    # The FX model may go short: some EURUSD sell must take the position below zero.
    pos = 0.0
    lowest = 0.0
    for r in rows:
        if r["instrument_id"] == "EURUSD":
            pos += float(r["quantity"]) * (1 if r["side"] == "BUY" else -1)
            lowest = min(lowest, pos)
    assert lowest < 0


def test_equity_curve_is_daily_and_ends_at_final_nav(runs) -> None:
    with open(runs[0] / "equity.csv") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == ["ts", "nav", "cash", "gross_exposure", "drawdown"]
    days = [r["ts"][:10] for r in rows[1:]]
    assert days == sorted(days) and len(set(days)) == len(days)
    m = json.loads((runs[0] / "metrics.json").read_text())
    assert float(rows[-1]["nav"]) == pytest.approx(m["final_nav"], rel=1e-12)
    assert float(rows[0]["nav"]) == 100000.0


@pytest.mark.parametrize("name", ["metrics.json", "trades.csv", "equity.csv"])
def test_same_backtest_twice_is_byte_identical(runs, name: str) -> None:
    one, two, _ = runs
    assert (one / name).read_bytes() == (two / name).read_bytes()


def test_trades_csv_gains_reasons_and_cost_split_when_costs_or_intents_are_used(
        tmp_path: Path) -> None:
    """Per fill: why the order was sent and what it paid; metrics state the cost model and
    the totals; a config without either keeps the original columns."""
    import csv

    import yaml

    from trader.engine.config import load_config
    from trader.replay.backtest import run_backtest

    raw = yaml.safe_load((ROOT / "config" / "backtest.yaml").read_text())
    raw["data"]["start"] = "2018-01-01"
    raw["models"] = [m for m in raw["models"] if m["name"] == "qqq_sma"]
    raw["models"][0]["params"] = {"fast": 5, "slow": 20}
    raw["models"][0]["orders"] = {"exits": {"stop_pct": 0.03, "take_profit_pct": 0.06}}
    raw["execution"].update({"spread_bps": 4, "commission_schedule": "per_share",
                             "per_share": 0.005, "per_share_min": 1.0})
    for inst in raw["instruments"]:
        inst["data"]["path"] = str(ROOT / inst["data"]["path"])
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(raw))
    res = run_backtest(load_config(path), tmp_path / "out")
    rows = list(csv.DictReader((tmp_path / "out" / "trades.csv").open()))
    assert rows and {"reason", "spread_cost", "slippage_cost"} <= set(rows[0])
    reasons = {r["reason"] for r in rows}
    assert "signal" in reasons and reasons & {"stop", "target"}
    for r in rows:  # spread: 2 bps of the price per unit, half of the 4 bps spread
        qty, price = float(r["quantity"]), float(r["price"])
        assert float(r["spread_cost"]) == pytest.approx(qty * price * 2e-4, rel=1e-3)
        assert float(r["commission"]) >= 1.0 - 1e-9  # the per-order minimum
    m = res.metrics
    described = m["cost_model"]["description"]
    assert "spread 4 bps" in described and "min 1" in described
    assert m["costs"]["spread"] == pytest.approx(sum(float(r["spread_cost"]) for r in rows))
    assert m["costs"]["commission"] == pytest.approx(sum(float(r["commission"]) for r in rows))
    assert sum(m["exit_reasons"].values()) == len(rows)
    assert "slippage fixed 2 bps; spread 4 bps" in (tmp_path / "out" / "report.html").read_text()

    plain = yaml.safe_load((ROOT / "config" / "backtest.yaml").read_text())
    plain["data"]["start"] = "2018-01-01"
    for inst in plain["instruments"]:
        inst["data"]["path"] = str(ROOT / inst["data"]["path"])
    path.write_text(yaml.safe_dump(plain))
    res = run_backtest(load_config(path), tmp_path / "plain")
    header = (tmp_path / "plain" / "trades.csv").read_text().splitlines()[0]
    assert header.endswith("commission,realized_pnl") and "costs" not in res.metrics
