"""Replay and the store: summary always, everything with ``--store``, same results either way."""

from __future__ import annotations

from pathlib import Path

from trader.engine.config import AppConfig
from trader.replay.backtest import run_backtest
from trader.store import Store
from trader.store.runs import config_hash
from trader.store.tables import EVENTS, FILLS, ORDERS

DATA = Path(__file__).resolve().parents[3] / "data" / "qqq_1d.parquet"


def _cfg() -> AppConfig:
    return AppConfig.model_validate({
        "name": "qqq-sma",
        "data": {"start": "2018-01-01", "end": "2021-01-01"},
        "instruments": [{"id": "QQQ", "symbol": "QQQ", "venue": "NASDAQ",
                         "asset_class": "equity", "data": {"path": str(DATA), "timeframe": "1d"}}],
        "models": [{"name": "qqq_sma", "model": "SmaCross", "budget": 0.5,
                    "instruments": ["QQQ"], "params": {"fast": 5, "slow": 20}}],
    })


def test_default_replay_stores_only_the_run_summary(db_url: str) -> None:
    cfg = _cfg()
    with Store.open(db_url) as st:
        res = run_backtest(cfg, store=st)
        assert st.count(ORDERS) == 0 and st.count(FILLS) == 0
        run = st.runs("backtest")[0]
    assert res.run_id == run["id"]
    assert run["models"] == ["qqq_sma"] and run["config_hash"] == config_hash(cfg)
    assert run["metrics"]["trades"] == res.metrics["trades"] > 5
    assert run["metrics"]["sharpe"] == res.metrics["sharpe"]


def test_store_flag_persists_every_order_and_fill_without_changing_results(db_url: str) -> None:
    cfg = _cfg()
    plain = run_backtest(cfg)
    with Store.open(db_url, batch_size=500) as st:
        stored = run_backtest(cfg, store=st, persist=True)
        orders = st.order_rows()
        fills = st.fills()
        n_events = st.count(EVENTS)
        snap = st.latest_snapshot("portfolio")
        session = st.session(st.runs()[0]["session_id"])
    assert stored.metrics == plain.metrics
    assert len(orders) == plain.metrics["orders"] == len(stored.engine.orders)
    assert len(fills) == plain.metrics["trades"]
    assert n_events >= 3 * len(orders)  # PENDING_SUBMIT, SUBMITTED, ACCEPTED, FILLED...
    assert all(o["status"] == "FILLED" for o in orders[:-1])
    assert all(o["model_tags"] == ",qqq_sma," for o in orders)
    assert all(o["ref_price"] for o in orders)
    assert session["mode"] == "replay" and session["ended_ts"]
    assert all(o["client_order_id"].startswith(session["id_prefix"] + "-") for o in orders)
    pf = stored.engine.portfolio
    assert snap["positions"] == {i: p.quantity for i, p in pf.account.positions.items()
                                 if p.quantity}


def test_two_stored_replays_in_one_database_keep_all_their_fills(db_url: str) -> None:
    cfg = _cfg()
    with Store.open(db_url, batch_size=500) as st:
        first = run_backtest(cfg, store=st, persist=True)
        second = run_backtest(cfg, store=st, persist=True)
        n_fills = st.count(FILLS)
        gateways = {r["gateway"] for r in st.fill_rows()}
    assert second.metrics == first.metrics
    assert n_fills == 2 * first.metrics["trades"]
    assert len(gateways) == 2 and all(g.startswith("sim@r") for g in gateways)


def test_backtest_cli_records_the_run_and_persists_with_store_flag(
    db_url: str, tmp_path: Path, monkeypatch
) -> None:
    import yaml
    from typer.testing import CliRunner

    from trader.cli import app

    monkeypatch.setenv("TRADER_DATABASE_URL", db_url)
    cfg_file = tmp_path / "bt.yaml"
    cfg_file.write_text(yaml.safe_dump(_cfg().model_dump(mode="json", exclude={"store"})))
    runner = CliRunner()
    res = runner.invoke(app, ["backtest", str(cfg_file), "--no-progress", "--out",
                              str(tmp_path / "a")])
    assert res.exit_code == 0, res.output
    assert "run #1 recorded" in res.output
    res = runner.invoke(app, ["backtest", str(cfg_file), "--no-progress", "--store", "--out",
                              str(tmp_path / "b")])
    assert res.exit_code == 0, res.output
    with Store.open(db_url) as st:
        runs = st.runs("backtest")
        assert [r["session_id"] is not None for r in runs] == [False, True]
        assert st.count(ORDERS) == runs[1]["metrics"]["orders"] > 0
    assert (tmp_path / "a" / "metrics.json").read_text() == (
        tmp_path / "b" / "metrics.json").read_text()


def test_multi_model_runs_store_each_models_own_metrics(db_url: str) -> None:
    from trader.store.lifecycle import Lifecycle

    base = _cfg().model_dump()
    spy = str(DATA.with_name("spy_1d.parquet"))
    base["instruments"].append({**base["instruments"][0], "id": "SPY", "symbol": "SPY",
                                "data": {"path": spy, "timeframe": "1d"}})
    base["models"].append({**base["models"][0], "name": "spy_sma", "instruments": ["SPY"],
                           "budget": 0.3})
    cfg = AppConfig.model_validate(base)
    alone = run_backtest(_cfg())  # qqq_sma with the same budget, by itself
    with Store.open(db_url) as st:
        res = run_backtest(cfg, store=st)
        run = st.runs("backtest")[0]
        per_model = run["metrics"]["per_model"]
        assert set(per_model) == {"qqq_sma", "spy_sma"}
        assert per_model["qqq_sma"]["trades"] + per_model["spy_sma"]["trades"] == \
            res.metrics["trades"]
        # Same orders as running alone (separate instruments), so the same trade count.
        assert per_model["qqq_sma"]["trades"] == alone.metrics["trades"]
        assert per_model["spy_sma"]["max_drawdown"] > 0
        gate = Lifecycle(st).check_gate("spy_sma", "candidate")
        assert gate.checks[0].name == "backtest_run" and gate.checks[0].passed
        assert f"{per_model['spy_sma']['sharpe']:.3f}" in gate.report()
