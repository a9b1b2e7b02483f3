"""Bad configuration gives a message naming the file and the key path, never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from trader.engine.config import ConfigError, load_config, load_yaml

ROOT = Path(__file__).resolve().parents[3]
TRADER = Path(sys.executable).with_name("trader")


def base_config() -> dict:
    return {
        "name": "t",
        "instruments": [
            {"id": "SPY", "symbol": "SPY", "venue": "ARCA", "asset_class": "equity",
             "data": {"path": str(ROOT / "data/spy_1d.parquet"), "timeframe": "1d"}},
            {"id": "BTC", "symbol": "BTC/USD", "venue": "CB", "asset_class": "crypto",
             "lot_step": 0.0001, "min_quantity": 0.0001,
             "data": {"path": str(ROOT / "data/btcusd_1h.parquet"), "timeframe": "1h"}},
        ],
        "models": [
            {"name": "a", "model": "SmaCross", "budget": 0.5, "instruments": ["SPY"],
             "timeframe": "1d", "params": {"fast": 5, "slow": 20}},
            {"name": "b", "model": "CryptoMomentum", "budget": 0.3, "instruments": ["BTC"],
             "timeframe": "4h", "params": {"rebalance_every": 6}},
        ],
    }


def spoil(cfg: dict, path: str, value=None, delete: bool = False) -> dict:
    keys = path.split(".")
    node = cfg
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if delete:
        del node[last]
    else:
        node[last] = value
    return cfg


CASES = [
    # (what, path to change, value or DELETE, expected fragments of the message)
    ("unknown key", "execution", {"slipage_bps": 1},
     ["at execution.slipage_bps", "unknown key"]),
    ("unknown nested key", "models.0.budgett", 0.1, ["at models.0.budgett", "unknown key"]),
    ("missing key", "models.1.budget", "DELETE", ["at models.1.budget", "required key is missing"]),
    ("missing instrument field", "instruments.0.venue", "DELETE",
     ["at instruments.0.venue", "required key is missing"]),
    ("wrong type", "portfolio", {"initial_cash": "lots"},
     ["at portfolio.initial_cash", "valid number", "'lots'"]),
    ("wrong type in list", "models.0.instruments", "SPY",
     ["at models.0.instruments", "valid list"]),
    ("bad enum", "instruments.0.asset_class", "stock", ["at instruments.0.asset_class"]),
    ("bad stage", "models.0.stage", "prod", ["at models.0.stage"]),
    ("bad timeframe", "models.0.timeframe", "fortnight", ["at models.0.timeframe", "fortnight"]),
    ("unknown model class", "models.0.model", "SmaCrosss",
     ["at models.0.model", "unknown model class 'SmaCrosss'", "SmaCross"]),
    ("bad params value", "models.0.params", {"fast": 30, "slow": 20},
     ["at models.0.params", "fast (30) must be shorter than slow (20)"]),
    ("bad params type", "models.1.params", {"rebalance_every": "often"},
     ["at models.1.params.rebalance_every", "'often'"]),
    ("unknown param", "models.1.params", {"rebalance_evry": 3},
     ["at models.1.params.rebalance_evry", "unknown parameter"]),
    ("unknown instrument", "models.0.instruments", ["SPY", "TSLA"],
     ["at models.0.instruments", "unknown instrument 'TSLA'"]),
    ("budgets over 1", "models.1.budget", 0.6, ["budget", "sum to 1.1000, which exceeds 1"]),
    ("budget over 1", "models.0.budget", 1.5, ["at models.0.budget", "1.5"]),
    ("timeframe not buildable", "models.1.timeframe", "90m",
     ["at models.1.timeframe", "not a multiple", "1h"]),
    ("bad on_bad_row", "data", {"on_bad_row": "ignore"}, ["at data.on_bad_row", "'ignore'"]),
    ("stop out of range", "models.0.orders", {"exits": {"stop_pct": 2}},
     ["at models.0.orders.exits.stop_pct", "less than 1"]),
    ("two stops", "models.0.orders", {"exits": {"stop_pct": 0.1, "stop_atr": 2}},
     ["at models.0.orders.exits", "set stop_pct or stop_atr, not both"]),
    ("sizing without amount", "models.0.orders", {"sizing": {"by": "notional"}},
     ["at models.0.orders.sizing", "needs sizing.notional"]),
    ("bad gate", "models.0.gates", {"quantile": 1.5}, ["at models.0.gates.quantile"]),
    ("bad schedule", "execution", {"commission_schedule": "flat"},
     ["at execution.commission_schedule", "'flat'"]),
    ("cost of unknown instrument", "execution", {"instruments": {"TSLA": {"spread_bps": 1}}},
     ["execution.instruments.TSLA: unknown instrument"]),
    ("unknown strategy class", "models.0.model", "nosuchmod:Thing",
     ["at models.0.model", "cannot import module 'nosuchmod'"]),
]


@pytest.mark.parametrize(("what", "path", "value", "fragments"), CASES, ids=[c[0] for c in CASES])
def test_bad_config_message_names_file_and_key(tmp_path: Path, what, path, value,
                                                fragments) -> None:
    cfg = base_config()
    spoil(cfg, path, delete=value == "DELETE", value=value)
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    with pytest.raises(ConfigError) as exc:
        load_config(f)
    msg = str(exc.value)
    assert msg.startswith(f"{f}: ")
    for frag in fragments:
        assert frag in msg, f"{what}: {frag!r} not in {msg!r}"


def test_good_base_config_loads(tmp_path: Path) -> None:
    f = tmp_path / "ok.yaml"
    f.write_text(yaml.safe_dump(base_config()))
    cfg = load_config(f)
    assert [m.model for m in cfg.models] == ["SmaCross", "CryptoMomentum"]


def test_unreadable_and_non_mapping_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    (tmp_path / "list.yaml").write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping at the top level"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "broken.yaml").write_text("name: [unclosed\n")
    with pytest.raises(ConfigError, match=r"broken.yaml: not valid YAML at line"):
        load_config(tmp_path / "broken.yaml")


@pytest.mark.parametrize("text", ["a: [1, 2\nb: 3\n", "a: b: c\n", "a:\n  - 1\n - 2\n"])
def test_yaml_errors_read_the_same_with_either_parser(tmp_path: Path, text: str) -> None:
    # libyaml words these three differently; the message is the pure-Python parser's.
    (tmp_path / "bad.yaml").write_text(text)
    with pytest.raises(ConfigError) as got:
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(yaml.YAMLError) as plain:
        yaml.load(text, Loader=yaml.SafeLoader)
    assert str(got.value).endswith(f": {plain.value.problem}")


def test_shipped_configs_parse_to_the_same_values_with_either_parser() -> None:
    for path in sorted((ROOT / "config").glob("*.yaml")):
        text = path.read_text()
        assert load_yaml(path) == yaml.load(text, Loader=yaml.SafeLoader), path


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    return subprocess.run([str(TRADER), *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize(
    ("path", "value", "fragment"),
    [
        ("models.0.budgett", 0.1, "at models.0.budgett: unknown key"),
        ("models.0.model", "Nope", "at models.0.model: unknown model class 'Nope'"),
        ("models.1.budget", "DELETE", "at models.1.budget: required key is missing"),
        ("models.0.params", {"fast": "x"}, "at models.0.params.fast"),
    ],
)
def test_cli_exits_non_zero_with_the_message_and_no_traceback(tmp_path: Path, path, value,
                                                               fragment) -> None:
    cfg = spoil(base_config(), path, value=value, delete=value == "DELETE")
    f = tmp_path / "bad.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = run_cli("backtest", str(f), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert str(f) in out and fragment in out
    assert not (tmp_path / "out").exists()


def test_cli_reports_bad_data_without_traceback(tmp_path: Path) -> None:
    csv = tmp_path / "spy.csv"
    csv.write_text("ts,open,high,low,close,volume\n"
                   "2024-01-02T00:00:00Z,10,11,9,10.5,100\n"
                   "2024-01-03T00:00:00Z,10,9,11,10.5,100\n")
    cfg = base_config()
    cfg["instruments"][0]["data"]["path"] = str(csv)
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = run_cli("backtest", str(f), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    out = r.stdout + r.stderr
    assert "Traceback" not in out
    assert f"{csv}: row 2: high < low" in out.replace("\n", "")


def test_cli_skip_mode_runs_and_reports_the_skipped_rows(tmp_path: Path) -> None:
    csv = tmp_path / "spy.csv"
    csv.write_text("ts,open,high,low,close,volume\n"
                   "2024-01-02T00:00:00Z,10,11,9,10.5,100\n"
                   "2024-01-03T00:00:00Z,10,9,11,10.5,100\n"
                   "2024-01-03T00:00:00Z,10,11,9,10.5,100\n"
                   "2024-01-04T00:00:00Z,10,11,9,10.5,100\n")
    cfg = {"data": {"on_bad_row": "skip"},
           "instruments": [{"id": "SPY", "symbol": "SPY", "venue": "ARCA",
                            "asset_class": "equity",
                            "data": {"path": str(csv), "timeframe": "1d"}}]}
    f = tmp_path / "c.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = run_cli("backtest", str(f), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    out = (r.stdout + r.stderr).replace("\n", " ")
    # The warning is a JSON log line on stderr naming the row.
    assert "bad_bar_skipped" in r.stderr and '"row": 2' in r.stderr
    assert "SPY: skipped 1 bad rows of 4 (high < low: 1)" in out


def test_cli_names_the_file_for_problems_found_while_wiring(tmp_path: Path) -> None:
    cfg = base_config()
    del cfg["instruments"][0]["data"]  # SPY is traded by model "a" but has no history
    f = tmp_path / "nodata.yaml"
    f.write_text(yaml.safe_dump(cfg))
    r = run_cli("backtest", str(f), "--out", str(tmp_path / "out"), cwd=tmp_path)
    assert r.returncode == 2
    out = (r.stdout + r.stderr).replace("\n", " ")
    assert "Traceback" not in out
    assert f"{f}: instruments: 'SPY' is traded by a model but has no data" in out


def test_replay_routes_every_model_to_the_simulator(tmp_path: Path) -> None:
    from trader.engine.build import build_engine

    cfg = base_config()
    cfg["models"][0]["gateway"] = "alpaca"  # meant for paper/live; a replay simulates it
    f = tmp_path / "gw.yaml"
    f.write_text(yaml.safe_dump(cfg))
    engine = build_engine(load_config(f))
    assert engine.pipeline.gateway_of == {"SPY": "sim", "BTC": "sim"}
    with pytest.raises(ConfigError, match=r"models.0.gateway: no gateway named 'alpaca'"):
        build_engine(load_config(f), gateways={"sim": engine.gateways["sim"]})
