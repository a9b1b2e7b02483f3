"""Risk seams of the paper daemon end to end: `trader run/status/kill/backtest` as a user runs them.

* warm-up never trades and never triggers risk, even with a restored position marked
  through a >20% fall of the warm-up bars;
* a drawdown halt is persisted (flag file, store) before its flatten, flattens once,
  survives restarts, shows in ``trader status``, and only ``trader kill --release``
  lets trading resume; the high-water mark is carried across sessions;
* a target formed in warm-up is traded right after READY (or, with
  ``daemon.trade_on_ready: false``, not), and the journal replays to the same orders.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import yaml
from daemon_harness import (
    DATA,
    events,
    log_lines,
    run_cli,
    start_daemon,
    wait_for_exit,
    write_config,
)

from trader.store import open_store

BUDGET = 0.35


def _btc_model(**params: Any) -> list[dict[str, Any]]:
    return [{"name": "btc", "model": "SmaCross", "stage": "paper", "budget": BUDGET,
             "instruments": ["BTCUSD"], "timeframe": "1h",
             "params": {"fast": 5, "slow": 20, **params}}]


def _config(tmp: Path, *, risk: dict[str, Any] | None = None, **kw: Any) -> Path:
    path = write_config(tmp, models=_btc_model(), **kw)
    if risk is not None:
        raw = yaml.safe_load(path.read_text())
        raw["risk"] = risk
        path.write_text(yaml.safe_dump(raw, sort_keys=False))
    return path


def _run(cfg: Path, name: str) -> list[dict[str, Any]]:
    proc, log_path = start_daemon(cfg, log_path=cfg.parent / f"{name}.log")
    wait_for_exit(proc, log_path)
    return log_lines(log_path)


def _status(cfg: Path) -> dict[str, Any]:
    res = run_cli("status", "--config", str(cfg), "--json")
    assert res.returncode == 0, res.stdout + res.stderr
    return json.loads(res.stdout)


def _split_at_ready(lines: list[dict[str, Any]]) -> tuple[list[dict], list[dict]]:
    ready = [i for i, x in enumerate(lines) if x.get("event") == "ready_notified"]
    assert len(ready) == 1, [x.get("event") for x in lines]
    return lines[:ready[0]], lines[ready[0] + 1:]


def _risk_row(data_dir: Path) -> dict[str, Any]:
    with open_store(None, data_dir, migrate=False) as store:
        row = store.load_risk_state()
    assert row is not None
    return row


def _journal_replays_identically(journal: str, tmp: Path) -> None:
    res = run_cli("backtest", "--journal", journal, "--out", str(tmp / "replay"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "identical orders" in res.stdout, res.stdout


# -- 1. warm-up ------------------------------------------------------------------------------


def test_warm_up_on_a_crash_with_a_restored_position_neither_trades_nor_halts(tmp_path):
    risk = {"drawdown": {"trigger": 0.03, "halt": 0.05}}
    # Session 1 buys BTC in July 2018's rise and stops holding it.
    cfg = _config(tmp_path, risk=risk, data_start="2018-07-10", start="2018-07-16",
                  data_end="2018-07-18")
    _run(cfg, "one")
    held = _status(cfg)["positions"].get("BTCUSD", 0.0)
    assert held > 0

    # Session 2 warms up from December 2017's top: the restored position is marked
    # through BTC's fall from ~19,000 to ~6,000 before the live bars of July 2018.
    cfg = _config(tmp_path, risk=risk, data_start="2017-12-17", start="2018-07-16",
                  data_end="2018-07-19")
    peak_before = _risk_row(tmp_path / "data")["drawdown_peak"]
    lines = _run(cfg, "two")
    warm = events(lines, "warmup_done")[0]
    closes = pd.read_parquet(DATA / "btcusd_1h.parquet").set_index("ts")["close"]
    opens = closes.index  # the file labels bars by their open time
    window = closes[(opens >= pd.Timestamp("2017-12-17", tz="UTC"))
                    & (opens < pd.Timestamp(warm["until"]))]
    top = window.max()
    bottom = window[window.idxmax():].min()
    assert bottom < 0.8 * top  # the warm-up market fell by more than 20%
    # Had warm-up marks counted, the restored position alone would breach the 5% halt.
    nav_at_top = 100_000 + held * (top - window.iloc[-1])
    assert held * (top - bottom) / nav_at_top > 0.05

    restored = events(lines, "state_restored")[0]["positions"]
    assert restored == {"BTCUSD": held}
    before, after = _split_at_ready(lines)
    names = {x["event"] for x in before}
    assert "warmup_done" in names
    assert not names & {"order_submitted", "fill", "risk_halt_persisted", "kill_switch_engaged",
                        "risk_drawdown_derisk", "risk_drawdown_halt", "risk_order_rejected"}
    assert not [x for x in events(before, "risk_trading_state") if x["state"] == "HALTED"]
    # Nor afterwards: at READY the book is marked at today's price, not 2017's.
    assert not [x for x in events(after, "risk_trading_state") if x["state"] == "HALTED"]
    assert not events(lines, "risk_halt_persisted")

    snap = _status(cfg)
    assert snap["risk_state"] == "ACTIVE" and snap["kill_switch"] is False
    assert snap["store"]["kill_switch"]["engaged"] is False
    assert not (tmp_path / "data" / "kill_switch.json").exists()
    # The persisted high-water mark never saw the warm-up's (2017) marks.
    row = _risk_row(tmp_path / "data")
    assert row["state"] == "ACTIVE" and not row["halted"]
    assert peak_before <= row["drawdown_peak"] < (100_000 + nav_at_top) / 2


# -- 2. a drawdown halt, persisted, restarted, released --------------------------------------


def test_a_drawdown_halt_is_persisted_first_survives_restarts_and_only_kill_release_ends_it(
        tmp_path):
    risk = {"drawdown": {"trigger": 0.01, "halt": 0.02}}
    cfg = _config(tmp_path, risk=risk, data_start="2018-07-20", start="2018-07-25",
                  data_end="2018-08-12")
    data_dir = tmp_path / "data"
    lines = _run(cfg, "one")

    # The halt: state change, then persisted, then exactly one flatten for the position.
    halted = [i for i, x in enumerate(lines)
              if x.get("event") == "risk_trading_state" and x["state"] == "HALTED"]
    assert len(halted) == 1
    h = halted[0]
    persisted = [i for i, x in enumerate(lines) if x.get("event") == "risk_halt_persisted"]
    assert len(persisted) == 1 and persisted[0] > h
    bought = sum(x["quantity"] * (1 if x["side"] == "BUY" else -1)
                 for x in events(lines[:h], "fill"))
    assert bought > 0  # long when it halted
    after_halt = events(lines[h:], "order_submitted")
    assert [(o["instrument"], o["side"], o["reduce_only"]) for o in after_halt] == [
        ("BTCUSD", "SELL", True)]
    assert after_halt[0]["quantity"] == pytest.approx(bought)
    assert lines.index(after_halt[0]) > persisted[0]  # persisted before the flatten is sent
    assert events(lines[h:], "risk_order_rejected")  # the model kept trying

    flag = json.loads((data_dir / "kill_switch.json").read_text())
    assert flag["engaged"] is True and flag["who"] == "risk-engine"
    assert "drawdown_halt" in flag["reason"]
    row = _risk_row(data_dir)
    assert row["state"] == "HALTED" and row["halted"] and row["kill_switch"]
    peak = row["drawdown_peak"]
    assert f"from peak {peak:,.2f}" in lines[h]["detail"]
    snap = _status(cfg)
    assert snap["risk_state"] == "HALTED" and snap["kill_switch"] is True
    assert snap["store"]["kill_switch"]["engaged"] is True
    assert snap["store"]["kill_switch"]["reason"] == flag["reason"]
    assert snap["positions"] == {}

    # A restart is still halted: the high-water mark comes back, no order goes out.
    cfg = _config(tmp_path, risk=risk, data_start="2018-07-20", start="2018-07-25",
                  data_end="2018-08-20")
    lines = _run(cfg, "two")
    assert events(lines, "risk_state_restored")[0]["drawdown_peak"] == peak
    assert events(lines, "kill_switch_engaged_at_start")
    assert not events(lines, "order_submitted")
    assert events(lines, "risk_order_rejected")  # the model did want to trade
    snap = _status(cfg)
    assert snap["risk_state"] == "HALTED" and snap["kill_switch"] is True
    assert snap["store"]["kill_switch"]["engaged"] is True
    assert _risk_row(data_dir)["state"] == "HALTED"

    # Released by the operator while stopped: the next session trades again.
    res = run_cli("kill", "--config", str(cfg), "--release", "--reason", "test: drawdown reviewed")
    assert res.returncode == 0, res.stdout + res.stderr
    assert _status(cfg)["store"]["kill_switch"]["engaged"] is False
    cfg = _config(tmp_path, risk=risk, data_start="2018-07-20", start="2018-07-25",
                  data_end="2018-08-28")
    lines = _run(cfg, "three")
    resumed = [x for x in events(lines, "risk_trading_state") if x["state"] == "ACTIVE"]
    assert resumed and "test: drawdown reviewed" in resumed[0]["reason"]
    orders = events(lines, "order_submitted")
    assert [o for o in orders if not o["reduce_only"]]
    assert not events(lines, "risk_order_rejected")
    snap = _status(cfg)
    assert snap["risk_state"] == "ACTIVE" and snap["kill_switch"] is False
    assert _risk_row(data_dir)["state"] == "ACTIVE"
    assert not json.loads((data_dir / "kill_switch.json").read_text())["engaged"]
    # Restored de-risked budgets size its orders; its journal's replay starts from the same.
    assert _risk_row(data_dir)["budget_scale"] == 0.5
    _journal_replays_identically(snap["journal"], tmp_path)


# -- 4. targets formed in warm-up --------------------------------------------------------------


@pytest.mark.parametrize("trade_on_ready", [True, False])
def test_a_target_formed_in_warm_up_is_traded_at_ready_unless_told_not_to(tmp_path,
                                                                          trade_on_ready):
    # SmaCross(5, 20) on BTC hourly turns long on 2018-07-16 ~06:00 and stays long
    # until the evening of 2018-07-18: long when the live bars begin on the 17th.
    cfg = _config(tmp_path, data_start="2018-07-10", start="2018-07-17", data_end="2018-07-20",
                  daemon={"trade_on_ready": trade_on_ready})
    lines = _run(cfg, "one")
    until = events(lines, "warmup_done")[0]["until"]
    assert until == "2018-07-17T00:00:00Z"
    before, after = _split_at_ready(lines)
    assert not events(before, "order_submitted") and not events(before, "fill")
    orders = events(after, "order_submitted")
    assert orders
    first = orders[0]
    if trade_on_ready:
        assert first["decided"] == until  # the warm-up's target, at READY's prices
        assert (first["side"], first["reduce_only"]) == ("BUY", False)
        assert after.index(first) < after.index(events(after, "fill")[0])
    else:
        assert first["decided"] > until  # waited for the model's next signal
        assert all(o["decided"] != until for o in orders)
    _journal_replays_identically(_status(cfg)["journal"], tmp_path)
