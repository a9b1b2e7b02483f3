"""Kill switch, trading state, snapshots, risk events and runs survive a reopen."""

from __future__ import annotations

import pytest

from risk.killswitch import DatabaseBackend, KillSwitch, KillSwitchError
from trader.core.clock import ReplayClock
from trader.store import Store


def _engaged(store: Store, scope: str = "default") -> tuple[bool, str]:
    rec = store.load_kill_switch(scope)
    return (bool(rec.engaged), rec.reason) if rec else (False, "")


def test_kill_switch_persists_and_is_released_only_explicitly(db_url: str) -> None:
    clock = ReplayClock(5)
    with Store.open(db_url) as st:
        ks = KillSwitch(DatabaseBackend(st), clock)
        assert _engaged(st) == (False, "")
        ks.engage("drawdown 12% beyond limit", who="risk-engine")
        assert _engaged(st) == (True, "drawdown 12% beyond limit")
    with Store.open(db_url) as st:  # a restart: still engaged
        ks = KillSwitch(DatabaseBackend(st), clock)
        assert ks.engaged and _engaged(st) == (True, "drawdown 12% beyond limit")
        # Another process (the CLI) sees the same row.
        with Store.open(db_url) as other:
            assert _engaged(other)[0] is True
            clock.advance(9)
            KillSwitch(DatabaseBackend(other), clock).release("reviewed, limits reset", who="ana")
        assert _engaged(st) == (False, "reviewed, limits reset")
        with pytest.raises(KillSwitchError, match="reason is required"):
            ks.engage(" ", who="x")
        events = [(e["kind"], e["ts"], e["detail"]["by"]) for e in st.risk_events()]
        assert events == [("kill_switch_engaged", 5, "risk-engine"),
                          ("kill_switch_released", 9, "ana")]


def test_kill_switch_scopes_are_independent(store: Store) -> None:
    a = KillSwitch(DatabaseBackend(store, "acct-a"), ReplayClock(1))
    KillSwitch(DatabaseBackend(store, "b"), ReplayClock(1))
    a.engage("halt a", who="ops")
    assert _engaged(store, "acct-a")[0] and not _engaged(store, "b")[0]


def test_trading_state_persists_with_its_history(db_url: str) -> None:
    with Store.open(db_url) as st:
        assert st.trading_state() == ("ACTIVE", "")
        st.set_trading_state("REDUCING", "drawdown 8%", "risk", 10)
        st.set_trading_state("HALTED", "drawdown 12%", "risk", 20)
    with Store.open(db_url) as st:
        assert st.trading_state() == ("HALTED", "drawdown 12%")
        assert [e["detail"]["state"] for e in st.risk_events("trading_state")] == [
            "REDUCING", "HALTED"]


def test_snapshots_and_risk_events(store: Store) -> None:
    store.snapshot_account(1, "portfolio", {"USD": 1000.0}, {"AAA": 3.0, "BBB": -1.0}, nav=1200.0,
                           avg_prices={"AAA": 50.0})
    store.snapshot_account(2, "portfolio", {"USD": 900.0}, {"AAA": 5.0})
    store.snapshot_account(3, "sim", {"USD": 1.0}, {})
    snap = store.latest_snapshot("portfolio")
    assert snap["ts"] == 2 and snap["cash"] == {"USD": 900.0} and snap["positions"] == {"AAA": 5.0}
    assert store.latest_snapshot("sim")["positions"] == {}
    assert store.latest_snapshot("nobody") is None
    store.record_risk_event(4, "order_rejected", "x" * 5000, {"client_order_id": "p1-1"})
    ev = store.risk_events("order_rejected")[0]
    assert len(ev["reason"]) == 1000 and ev["detail"] == {"client_order_id": "p1-1"}


def test_runs_keep_config_hash_models_and_metrics(store: Store) -> None:
    rid = store.record_run("backtest", "bt", "abc123", ["m1", "m2"], 1, 2,
                           {"sharpe": 1.5, "per_model": {"m1": {"trades": 3}}})
    session = store.begin_session("paper", "p", 3)
    rid2 = store.record_run("paper", "p", "def", ["m1"], 3, None, {}, session_id=session.id)
    runs = store.runs()
    assert [r["id"] for r in runs] == [rid, rid2]
    assert runs[0]["metrics"]["per_model"]["m1"]["trades"] == 3
    assert runs[0]["models"] == ["m1", "m2"] and runs[0]["config_hash"] == "abc123"
    assert store.runs("paper")[0]["session_id"] == session.id


def test_batch_mode_commits_in_groups_and_on_flush(db_url: str) -> None:
    st = Store.open(db_url, batch_size=3)
    reader = Store.open(db_url, migrate=False)
    for i in range(2):
        st.record_risk_event(i, "k")
    assert reader.count_orders() == 0 and len(reader.risk_events()) == 0  # not committed yet
    st.record_risk_event(2, "k")
    assert len(reader.risk_events()) == 3
    st.record_risk_event(3, "k")
    st.close()  # close flushes the rest
    assert len(reader.risk_events()) == 4
    reader.close()


def test_db_backend_plugs_into_the_risk_kill_switch(db_url: str) -> None:
    clock = ReplayClock(100)
    with Store.open(db_url) as st_daemon, Store.open(db_url) as st_cli:
        daemon = KillSwitch(DatabaseBackend(st_daemon), clock, who="daemon")
        assert daemon.engaged is False and daemon.poll() is False
        heard = []
        daemon.listeners.append(heard.append)
        # The operator engages it from another process (here: another store connection).
        cli = KillSwitch(DatabaseBackend(st_cli), ReplayClock(200), who="ops")
        cli.engage("broker outage")
        assert daemon.poll() is True and daemon.engaged is True
        assert heard[-1].reason == "broker outage" and heard[-1].who == "ops"
        assert daemon.poll() is False  # no change, no news
        daemon.release("outage over", "ana")
        assert _engaged(st_cli) == (False, "outage over")
        rec = st_cli.load_kill_switch()
        assert (rec.engaged, rec.who, rec.ts) == (False, "ana", 100)
    with Store.open(db_url) as st:  # a restart: the state is what was stored last
        assert KillSwitch(DatabaseBackend(st), clock).engaged is False
