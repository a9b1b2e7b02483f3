"""The tear sheet: metrics.json's figures, and report.html rendered in headless Chromium."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser import browser_page, save_screenshot

from trader.replay import analytics
from trader.replay.tearsheet import fmt

ROOT = Path(__file__).resolve().parents[3]
TRADER = Path(sys.executable).with_name("trader")
CONFIG = ROOT / "config" / "backtest.yaml"
MODELS = {"spy_trend", "qqq_sma", "iwm_meanrev", "btc_momentum", "eurusd_sma"}
SECTIONS = ("metrics", "equity-section", "drawdown", "returns", "rolling", "exposure", "models",
            "instruments", "trades", "risk", "costs")
DAY = 86_400 * 10**9


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("tear") / "run"
    env = {**os.environ, "NO_COLOR": "1", "TRADER_DATA_DIR": str(out.parent / "data")}
    env.pop("TRADER_DATABASE_URL", None)
    r = subprocess.run([str(TRADER), "backtest", str(CONFIG), "--out", str(out)], env=env,
                       capture_output=True, text=True, timeout=300, cwd=out.parent)
    assert r.returncode == 0, r.stderr
    return out


def test_metrics_json_holds_the_tear_sheets_figures(run_dir: Path) -> None:
    m = json.loads((run_dir / "metrics.json").read_text())
    assert set(m["per_model"]) >= MODELS
    for name in MODELS:
        pm = m["per_model"][name]
        for key in ("sharpe", "sortino", "cagr", "max_drawdown", "win_rate", "trades", "pnl",
                    "contribution"):
            assert key in pm, (name, key)
        assert pm["pnl"] == pytest.approx(m["model_pnl"][name])
        assert 0 <= pm["win_rate"] <= 1 and pm["trades"] > 0
    # One model per instrument in the shipped config: each instrument's net PnL is its
    # model's, and the pieces add up to the run's PnL.
    inst = m["per_instrument"]
    assert inst["SPY"]["pnl"] == pytest.approx(m["per_model"]["spy_trend"]["pnl"], rel=1e-6)
    total = sum(v["pnl"] for v in inst.values())
    assert total == pytest.approx(m["final_nav"] - 100_000.0, rel=1e-6)
    # Months chain to years, years to the total return.
    years = 1.0
    for r in m["yearly_returns"].values():
        years *= 1 + r
    assert years - 1 == pytest.approx(m["total_return"], rel=1e-6)
    months = 1.0
    for r in m["monthly_returns"].values():
        months *= 1 + r
    assert months - 1 == pytest.approx(m["total_return"], rel=1e-6)
    worst = m["drawdown_periods"][0]
    assert worst["depth"] == pytest.approx(m["max_drawdown"], rel=1e-6)
    assert m["benchmark"]["instrument"] == "SPY" and m["benchmark"]["max_drawdown"] > 0
    assert len(m["config_hash"]) == 64
    assert m["cost_model"]["commission_paid"] == pytest.approx(
        sum(v["commission"] for v in inst.values()))


def test_report_renders_offline_with_every_section(run_dir: Path) -> None:
    m = json.loads((run_dir / "metrics.json").read_text())
    with browser_page() as (page, blocked):
        page.goto((run_dir / "report.html").as_uri())
        page.wait_for_function("document.querySelectorAll('.js-plotly-plot').length >= 10")
        for sid in SECTIONS:
            assert page.locator(f"section#{sid}").count() == 1, sid
        sharpe = page.locator('#metrics-table td[data-key="sharpe"]').inner_text()
        assert sharpe == fmt("sharpe", m["sharpe"])
        assert page.locator('#metrics-table td[data-key="max_drawdown"]').inner_text() == \
            fmt("max_drawdown", m["max_drawdown"])
        assert "SPY buy and hold" in page.locator("#metrics-table").inner_text()
        rows = page.locator("#models-table tr").all_inner_texts()
        for name in MODELS:
            row = next(r for r in rows if r.startswith(name))
            assert fmt("sharpe", m["per_model"][name]["sharpe"]) in row
        assert page.locator("#drawdown-table tr").count() == len(m["drawdown_periods"]) + 1
        heat = page.evaluate("document.getElementById('monthly-heatmap').data[0].z.length")
        assert heat == len(m["yearly_returns"])
        assert page.locator("[id^=trades-]").count() == 5
        markers = page.evaluate("Array.from(document.querySelectorAll('[id^=trades-]'))"
                                ".map(d => d.data.slice(1).reduce((n, t) => n + t.x.length, 0))"
                                ".reduce((a, b) => a + b, 0)")
        assert markers == m["trades"]  # every fill is a marker
        assert m["config_hash"] in page.locator("#costs-table").inner_text()
        # linear/log switch of the equity chart
        assert page.evaluate("document.getElementById('equity').layout.yaxis.type") != "log"
        page.get_by_text("log", exact=True).first.click()
        page.wait_for_function("document.getElementById('equity').layout.yaxis.type === 'log'")
        save_screenshot(page, "tear_sheet")
    assert blocked == []  # nothing fetched from the network


def test_drawdown_periods_and_period_returns() -> None:
    ts = [i * DAY for i in range(7)]
    navs = [100.0, 110.0, 99.0, 104.5, 111.0, 100.0, 105.0]
    periods = analytics.drawdown_periods(ts, navs, top=5)
    assert [round(p.depth, 4) for p in periods] == [0.1, round(1 - 100 / 111, 4)]  # deepest first
    assert (periods[0].peak, periods[0].trough, periods[0].recovery) == \
        ("1970-01-02", "1970-01-03", "1970-01-05")
    assert periods[0].days == 3
    assert periods[1].recovery is None and periods[1].days == 2  # to the end of the run
    ret = analytics.period_returns([0, DAY * 40, DAY * 70], [100.0, 110.0, 99.0], "%Y-%m")
    assert ret == pytest.approx({"1970-01": 0.0, "1970-02": 0.1, "1970-03": -0.1})


def test_buy_and_hold_is_cash_until_its_first_close() -> None:
    closes = [(2 * DAY, 10.0), (3 * DAY, 12.0)]
    assert analytics.buy_and_hold(closes, [DAY, 2 * DAY, 3 * DAY, 4 * DAY], 1000.0) == \
        [1000.0, 1000.0, 1200.0, 1200.0]


def test_rolling_windows_fill_after_the_window() -> None:
    navs = [100.0, 101.0, 99.0, 102.0, 103.0]
    sh, vol = analytics.rolling(navs, 2, 252.0)
    assert sh[:2] == [None, None] and vol[:2] == [None, None]
    assert all(v is not None and v > 0 for v in vol[2:])
