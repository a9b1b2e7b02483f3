"""A user's model from a strategies folder and one from a package's entry point, run as a
user runs them: ``trader backtest`` (replay) and ``trader run --mode paper``, whose journal
replays to identical orders."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from daemon_harness import (
    events,
    log_lines,
    register_stages,
    run_cli,
    start_daemon,
    wait_for_exit,
    write_config,
)
from test_loading import install_entry_point

from trader.live.journal_replay import replay_journal

FLIP = '''
from models.base import Model


class {cls}(Model):
    """Long for {n} bars, flat for {n}: trades often, deterministically."""

    def __init__(self, *a, **k):
        super().__init__(*a, **k)
        self.count = 0

    def on_bar(self, bar):
        self.count += 1
        if self.count % {n} == 0:
            return {{bar.instrument_id: 1.0 if (self.count // {n}) % 2 else 0.0}}
        return None
'''


def user_setup(tmp: Path) -> tuple[Path, dict[str, str]]:
    strategies = tmp / "my_strategies"
    strategies.mkdir()
    (strategies / "flipper.py").write_text(FLIP.format(cls="Flipper", n=5))
    site = tmp / "site"
    site.mkdir()
    (site / "plugin_flip.py").write_text(FLIP.format(cls="PluginFlip", n=3))
    install_entry_point(site, "PluginFlip", "plugin_flip:PluginFlip")
    cfg = write_config(tmp, register=False, models=[
        {"name": "folder_model", "model": "Flipper", "stage": "paper", "budget": 0.3,
         "instruments": ["BTCUSD"], "timeframe": "4h"},
        {"name": "plugin_model", "model": "PluginFlip", "stage": "paper", "budget": 0.3,
         "instruments": ["SPY"], "timeframe": "1d"},
    ])
    raw = yaml.safe_load(cfg.read_text())
    raw["strategies"] = "my_strategies"  # relative to the config's folder
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    env = {"PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")])}
    return cfg, env


def test_user_models_run_in_replay_and_paper_and_the_journal_replays(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg, env = user_setup(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))  # the entry point, for this process

    res = run_cli("backtest", str(cfg), "--out", str(tmp_path / "bt"), env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    metrics = json.loads((tmp_path / "bt" / "metrics.json").read_text())
    assert set(metrics["model_pnl"]) >= {"folder_model", "plugin_model"}
    assert metrics["trades"] > 4

    register_stages(cfg)  # the same lifecycle registry as shipped models
    proc, log = start_daemon(cfg, env=env)
    wait_for_exit(proc, log)
    submitted = events(log_lines(log), "order_submitted")
    assert {x["instrument"] for x in submitted} == {"BTCUSD", "SPY"}
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json", env=env).stdout)
    outcome = replay_journal(snap["journal"])
    assert outcome.identical and len(outcome.replay_orders) == len(submitted)


def test_a_missing_strategies_folder_is_an_operator_error(tmp_path: Path) -> None:
    cfg, env = user_setup(tmp_path)
    raw = yaml.safe_load(cfg.read_text())
    raw["strategies"] = "nowhere"
    cfg.write_text(yaml.safe_dump(raw, sort_keys=False))
    res = run_cli("backtest", str(cfg), env=env)
    assert res.returncode == 2
    assert "strategies: no folder nowhere" in res.stderr
