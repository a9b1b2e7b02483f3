"""README "Regimes and regime budgets": its command on a fresh clone, and its YAML is the
shipped config's."""

from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from test_readme_flows import README, REPO, bash_blocks, clone, run, trader_commands  # noqa: F401

__all__ = ["clone"]


def _section() -> str:
    return README.split("## Regimes and regime budgets", 1)[1].split("\n## ", 1)[0]


def test_regimes_backtest_reports_time_and_performance_per_state(clone: Path) -> None:  # noqa: F811
    block = next(b for b in bash_blocks() if "trader backtest config/regimes.yaml" in b)
    (cmd,) = trader_commands(block)
    res = run(cmd, clone)
    assert res.returncode == 0, res.stderr[-3000:]
    out = clone / "runs" / "sample-regimes"
    metrics = json.loads((out / "metrics.json").read_text())
    regimes = metrics["regimes"]
    assert set(regimes) == {"equity_trend", "equity_vol", "crypto_trend"}
    for r in regimes.values():
        assert r["changes"] > 0
        shares = [s["time_share"] for s in r["states"].values()]
        assert abs(sum(shares) - 1.0) < 1e-6
    assert {"up", "down", "drawdown"} <= set(regimes["equity_trend"]["states"])
    assert 'id="regimes"' in (out / "report.html").read_text()
    # The same config without regimes is the sample backtest: regimes changed the run.
    plain = run([*cmd[:-1], "config/backtest.yaml"], clone)
    assert plain.returncode == 0, plain.stderr[-3000:]
    base = json.loads((clone / "runs" / "sample-multi-asset" / "metrics.json").read_text())
    assert "regimes" not in base
    assert base["final_nav"] != metrics["final_nav"]


def test_readme_yaml_is_the_shipped_example() -> None:
    (block,) = re.findall(r"```yaml\n(.*?)```", _section(), flags=re.S)
    shown = yaml.safe_load(block)
    shipped = yaml.safe_load((REPO / "config" / "regimes.yaml").read_text())
    assert shown["regimes"] == shipped["regimes"]
    assert shown["regime_budgets"] == shipped["regime_budgets"]
