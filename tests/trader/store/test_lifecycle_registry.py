"""Lifecycle: gates pass and fail as configured, forced moves are on record, modes filter models."""

from __future__ import annotations

import math

import pytest
from typer.testing import CliRunner

from models.lifecycle import (
    DAY_NS,
    LifecycleConfig,
    LifecycleError,
    StageRefused,
    backtest_checks,
    check_mode,
    live_checks,
    refused_models,
)
from trader.core.clock import ReplayClock
from trader.core.events import Fill, OrderRequest, Side
from trader.engine.orders import Order
from trader.store import Store
from trader.store.lifecycle import Lifecycle

GATES = LifecycleConfig()
GOOD = {"sharpe": 1.0, "max_drawdown": 0.20, "cagr": 0.10, "trades": 10}


# -- the gates as pure functions ------------------------------------------------------
def test_candidate_gate_passes_exactly_at_the_default_thresholds() -> None:
    assert all(c.passed for c in backtest_checks(GOOD, GATES))


@pytest.mark.parametrize("key,value", [("sharpe", 0.99), ("max_drawdown", 0.2001),
                                       ("cagr", 0.0999), ("trades", 9), ("sharpe", math.nan)])
def test_candidate_gate_fails_on_each_condition(key: str, value: float) -> None:
    checks = {c.name: c for c in backtest_checks({**GOOD, key: value}, GATES)}
    assert not checks[key].passed
    assert all(c.passed for n, c in checks.items() if n != key)


def test_gates_are_configurable() -> None:
    strict = LifecycleConfig(candidate_min_sharpe=2.0, live_min_paper_days=60)
    assert not all(c.passed for c in backtest_checks(GOOD, strict))
    assert all(c.passed for c in live_checks(30, 10, 1.0, GATES))
    assert not all(c.passed for c in live_checks(30, 10, 1.0, strict))


@pytest.mark.parametrize("days,trades,slip,failing", [
    (29.9, 10, 1.0, "days_in_paper"), (30, 9, 1.0, "paper_trades"),
    (30, 10, 10.01, "mean_slippage"), (30, 10, None, "mean_slippage"),
])
def test_live_gate_fails_on_each_condition(days: float, trades: int, slip: float | None,
                                           failing: str) -> None:
    checks = {c.name: c.passed for c in live_checks(days, trades, slip, GATES)}
    assert [n for n, ok in checks.items() if not ok] == [failing]


# -- the registry in the store --------------------------------------------------------------
def _lc(store: Store, t0: int = 1_000 * DAY_NS) -> tuple[Lifecycle, ReplayClock]:
    clock = ReplayClock(t0)
    return Lifecycle(store, GATES, clock), clock


def _run(store: Store, models: list[str], metrics: dict) -> int:
    return store.record_run("backtest", "bt", "h", models, 1, 2, metrics)


def _paper_trades(store: Store, model: str, n: int, ts: int, slip_bps: float) -> None:
    session = store.begin_session("paper", "paper", ts)
    journal = store.journal(session, marks={"AAA": 100.0})
    for i in range(n):
        req = OrderRequest(ts + i, f"{session.prefix}-{i + 1}", "AAA", Side.BUY, 1)
        order = Order(req, model_tags=(model,))
        journal.order_created(order)
        journal.fill_received(order, Fill(ts + i, req.client_order_id, f"x{session.id}-{i}",
                                          "AAA", Side.BUY, 1, 100.0 * (1 + slip_bps / 1e4)))


def test_promotion_to_candidate_needs_a_passing_backtest(store: Store) -> None:
    lc, _ = _lc(store)
    with pytest.raises(LifecycleError, match="no stored backtest run of m1"):
        lc.promote("m1", "looks good", "ana")
    _run(store, ["m1", "m2"], GOOD)  # several models, no per-model metrics: does not count
    with pytest.raises(LifecycleError, match="no stored backtest run"):
        lc.promote("m1", "looks good", "ana")
    _run(store, ["m1"], {**GOOD, "sharpe": 0.5})
    with pytest.raises(LifecycleError, match=r"\[FAIL\] sharpe: 0.500"):
        lc.promote("m1", "looks good", "ana")
    assert lc.stage("m1") == "research" and lc.history("m1") == []
    rid = _run(store, ["m1", "m2"], {"sharpe": 0.1, "per_model": {"m1": GOOD}})
    row = lc.promote("m1", "backtest passes", "ana")
    assert (row["from_stage"], row["to_stage"], row["forced"]) == ("research", "candidate", False)
    assert f"run #{rid}" in row["gate_report"]
    assert lc.stage("m1") == "candidate"


def test_candidate_to_paper_then_live_with_confirm(store: Store) -> None:
    lc, clock = _lc(store)
    _run(store, ["m1"], GOOD)
    lc.promote("m1", "bt ok", "ana")
    lc.promote("m1", "ready for paper", "ana")
    assert lc.stage("m1") == "paper"
    entered = clock.now()
    _paper_trades(store, "m1", 12, entered + DAY_NS, slip_bps=3.0)
    _paper_trades(store, "other", 5, entered + DAY_NS, slip_bps=50.0)  # not m1's
    clock.advance(entered + 10 * DAY_NS)
    with pytest.raises(LifecycleError, match="needs --confirm"):
        lc.promote("m1", "go live", "ana")
    with pytest.raises(LifecycleError, match=r"\[FAIL\] days_in_paper: 10.0 days"):
        lc.promote("m1", "go live", "ana", confirm=True)
    clock.advance(entered + 30 * DAY_NS)
    gate = lc.check_gate("m1", "live")
    assert gate.passed, gate.report()
    assert "12 (need >= 10)" in gate.report() and "3.00 bps" in gate.report()
    lc.promote("m1", "30 days clean", "ana", confirm=True)
    assert lc.stage("m1") == "live"
    with pytest.raises(LifecycleError, match="already at stage live"):
        lc.promote("m1", "more", "ana", confirm=True)


def test_live_gate_counts_only_paper_fills_and_measures_slippage(store: Store) -> None:
    lc, clock = _lc(store)
    lc.promote("m1", "skip", "ana", force=True)
    lc.promote("m1", "paper", "ana")
    entered = clock.now()
    _paper_trades(store, "m1", 10, entered + 1, slip_bps=25.0)
    clock.advance(entered + 31 * DAY_NS)
    trades, slip = lc.paper_record("m1", entered)
    assert trades == 10 and slip == pytest.approx(25.0)
    with pytest.raises(LifecycleError, match=r"\[FAIL\] mean_slippage: 25.00 bps"):
        lc.promote("m1", "go", "ana", confirm=True)


def test_forced_promotion_is_recorded_and_needs_a_reason(store: Store) -> None:
    lc, _ = _lc(store)
    with pytest.raises(LifecycleError, match="needs a reason"):
        lc.promote("m1", "  ", "ana", force=True)
    row = lc.promote("m1", "hand-checked research", "ana", force=True)
    assert row["forced"] is True and "FAIL" in row["gate_report"]
    hist = lc.history("m1")
    assert len(hist) == 1
    h = hist[0]
    assert (h["from_stage"], h["to_stage"], h["operator"], h["reason"], h["forced"]) == (
        "research", "candidate", "ana", "hand-checked research", True)
    assert "no stored backtest run" in h["gate_report"]
    # Force does not replace the explicit confirmation for live.
    lc.promote("m1", "x", "ana")
    with pytest.raises(LifecycleError, match="needs --confirm"):
        lc.promote("m1", "x", "ana", force=True)


def test_demotion_and_full_history(store: Store) -> None:
    lc, clock = _lc(store)
    lc.promote("m1", "a", "ana", force=True)
    clock.advance(clock.now() + 5)
    lc.promote("m1", "b", "bob")
    clock.advance(clock.now() + 5)
    lc.demote("m1", "slippage too high", "carl")
    with pytest.raises(LifecycleError, match="needs a reason"):
        lc.demote("m1", "", "carl")
    lc.demote("m1", "back to research", "carl")
    with pytest.raises(LifecycleError, match="already at stage research"):
        lc.demote("m1", "again", "carl")
    hist = [(h["from_stage"], h["to_stage"], h["operator"], h["forced"]) for h in lc.history("m1")]
    assert hist == [("research", "candidate", "ana", True), ("candidate", "paper", "bob", False),
                    ("paper", "candidate", "carl", False), ("candidate", "research", "carl", False)]
    ts = [h["ts"] for h in lc.history("m1")]
    assert ts == sorted(ts) and ts[0] < ts[-1]
    assert lc.stages() == {"m1": "research"}


# -- mode filter --------------------------------------------------------------------------
STAGES = {"r": "research", "c": "candidate", "p": "paper", "l": "live"}


def test_replay_runs_any_stage() -> None:
    check_mode("replay", STAGES, list(STAGES) + ["unregistered"])


def test_paper_runs_only_candidate_and_paper_models() -> None:
    check_mode("paper", STAGES, ["c", "p"])
    with pytest.raises(StageRefused) as err:
        check_mode("paper", STAGES, ["c", "r", "l", "new"])
    msg = str(err.value)
    assert "model 'r' is at stage research in the lifecycle registry" in msg
    assert "model 'l' is at stage live in the lifecycle registry" in msg
    assert "model 'new' is not registered in the lifecycle registry" in msg
    assert "'c'" not in msg


def test_live_runs_only_live_models() -> None:
    check_mode("live", STAGES, ["l"])
    assert refused_models("live", STAGES, ["p", "l", "c"], "--config x.yaml") == [
        "model 'p' is at stage paper in the lifecycle registry; --mode live runs only live "
        "models (promote it to live: `trader models promote p --config x.yaml --reason ...`)",
        "model 'c' is at stage candidate in the lifecycle registry; --mode live runs only "
        "live models (promote it to live: `trader models promote c --config x.yaml "
        "--reason ...`)",
    ]
    with pytest.raises(LifecycleError, match="unknown mode 'demo'"):
        check_mode("demo", STAGES, ["l"])


def test_mode_filter_reads_stages_from_the_store(store: Store) -> None:
    lc, _ = _lc(store)
    lc.promote("m1", "x", "ana", force=True)
    check_mode("paper", lc.stages(), ["m1"])
    with pytest.raises(StageRefused, match="model 'm1' is at stage candidate"):
        check_mode("live", lc.stages(), ["m1"])


# -- CLI ----------------------------------------------------------------------------------
def test_models_cli(db_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:
    from trader.cli import UserError, app

    monkeypatch.setenv("TRADER_DATABASE_URL", db_url)
    monkeypatch.setenv("TRADER_DATA_DIR", str(tmp_path))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("instruments: [{id: X, symbol: X, venue: V, asset_class: equity}]\n"
                   "models: [{name: m1, model: SmaCross, budget: 0.5, instruments: [X]}]\n")
    runner = CliRunner()
    res = runner.invoke(app, ["models", "promote", "m1", "--reason", "r", "--operator", "ana",
                              "--config", str(cfg)])
    assert isinstance(res.exception, UserError)
    assert "no stored backtest run of m1" in str(res.exception)
    res = runner.invoke(app, ["models", "promote", "m1", "--reason", "manual review",
                              "--operator", "ana", "--force", "--config", str(cfg)])
    assert res.exit_code == 0, res.output
    assert "research -> candidate (FORCED" in res.output
    res = runner.invoke(app, ["models", "demote", "m1", "--reason", "oops", "--operator", "bob"])
    assert res.exit_code == 0 and "candidate -> research" in res.output
    res = runner.invoke(app, ["models", "history", "m1"])
    assert res.exit_code == 0
    assert "manual review" in res.output and "yes" in res.output and "oops" in res.output
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0 and "m1" in res.output and "research" in res.output
    res = runner.invoke(app, ["db", "upgrade"])
    assert res.exit_code == 0 and "already at" in res.output


def test_enforce_mode_trusts_the_store_not_the_config(store: Store) -> None:
    from trader.store.lifecycle import enforce_mode

    lc, _ = _lc(store)
    enforce_mode("replay", ["anything"], lc)
    with pytest.raises(StageRefused, match="model 'm1' is not registered"):
        enforce_mode("live", ["m1"], lc)  # whatever a config file claims about m1
    lc.promote("m1", "x", "ana", force=True)
    lc.promote("m1", "x", "ana")
    enforce_mode("paper", ["m1"], lc)
