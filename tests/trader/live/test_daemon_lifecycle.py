"""The daemon under a stand-in systemd: READY, WATCHDOG, STATUS, SIGTERM -> STOPPING, exit 0."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import pytest
from daemon_harness import (
    NotifyListener,
    events,
    log_lines,
    run_cli,
    start_daemon,
    write_config,
)

from trader.live.journal import read_journal
from trader.live.journal_replay import replay_journal


def test_ready_watchdog_stopping_and_clean_exit(tmp_path):
    # Slow enough that the session is still streaming when SIGTERM arrives.
    cfg = write_config(tmp_path, speed=200_000, exit_at_end=False, data_end=None,
                       daemon={"metrics_port": 0})
    listener = NotifyListener()
    try:
        proc, log_path = start_daemon(cfg, env={"NOTIFY_SOCKET": listener.address,
                                                "WATCHDOG_USEC": "200000"})
        try:
            t_ready = listener.wait_for("READY=1", timeout=20)
            ready_msg = next(m for _, m in listener.messages if "READY=1" in m.split("\n"))
            assert "STATUS=mode=paper state=trading" in ready_msg
            time.sleep(1.0)
            # WATCHDOG_USEC=0.2 s -> a ping every 0.1 s; allow for a slow CI machine.
            assert listener.count("WATCHDOG=1", since=t_ready) >= 5
            assert any(m.startswith("STATUS=") and "nav=" in m for _, m in listener.messages)
            # trader status works while the daemon runs.
            st = run_cli("status", "--config", str(cfg), "--json")
            assert st.returncode == 0, st.stderr
            snap = json.loads(st.stdout)
            assert snap["running"] is True and snap["state"] == "trading"
            assert snap["mode"] == "paper" and snap["trading"] is True
            assert set(snap["last_bar"]) == {"BTCUSD", "SPY"}
            assert run_cli("status", "--config", str(cfg), "--check").returncode == 0
            # Prometheus /metrics, on loopback only.
            address = events(log_lines(log_path), "metrics_listening")[0]["address"]
            assert address.startswith("127.0.0.1:")
            body = urllib.request.urlopen(f"http://{address}/metrics", timeout=5).read().decode()
            assert "trader_nav " in body and "trader_trading 1.0" in body
            # Whether market data failed, and each gateway stream's health, are exported too.
            assert "trader_market_data_failed 0.0" in body
            assert "# TYPE trader_gateway_health gauge" in body
            # Event counters and latency histograms follow the kernel.
            assert "# TYPE trader_submit_ack_seconds histogram" in body
            assert "# TYPE trader_risk_rejections_total counter" in body
            assert 'trader_bar_age_seconds{instrument="BTCUSD"}' in body

            t_term = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=15)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert code == 0
        assert time.monotonic() - t_term < 10
        listener.wait_for("STOPPING=1", timeout=1)
    finally:
        listener.close()

    lines = log_lines(log_path)
    order = [x["event"] for x in lines]
    assert order.index("reconciled") < order.index("warmup_done") < order.index("ready_notified")
    assert events(lines, "daemon_stopped")[0]["exit_code"] == 0

    # Consistent afterwards: the status snapshot says stopped, and the journal (fully
    # flushed, no torn record) replays to the same orders and the same positions.
    st = run_cli("status", "--config", str(cfg), "--json")
    snap = json.loads(st.stdout)
    assert snap["running"] is False and snap["state"] == "stopped" and snap["trading"] is False
    assert run_cli("status", "--config", str(cfg), "--check").returncode == 1
    read = read_journal(snap["journal"])
    assert not read.torn_tail
    outcome = replay_journal(snap["journal"])
    assert outcome.identical
    assert snap["orders_submitted"] > 0
    assert len(outcome.session_orders) == snap["orders_submitted"]
    replay_positions = {k: p.quantity
                        for k, p in outcome.engine.portfolio.account.positions.items()
                        if p.quantity}
    assert replay_positions == snap["positions"]
    # The store (SQLite in the data dir) agrees: same positions, same open orders, and the
    # session row is closed.
    stored = snap["store"]
    assert "error" not in stored, stored
    assert stored["positions"] == pytest.approx(snap["positions"], abs=1e-9)
    assert sorted(o["client_order_id"] for o in stored["open_orders"]) == sorted(
        o["client_order_id"] for o in snap["open_orders"])
    from trader.store import open_store

    with open_store(None, tmp_path / "data", migrate=False) as store:
        sessions = [store.session(i) for i in range(1, 3)]
        assert sessions[0] is not None and sessions[0]["ended_ts"] is not None
        assert sessions[1] is None
        assert store.count_orders() == snap["orders_submitted"]


def test_sigint_twice_exits_at_once(tmp_path):
    cfg = write_config(tmp_path, speed=50_000, exit_at_end=False, data_end=None,
                       daemon={"shutdown_timeout": 30})
    listener = NotifyListener(abstract=True)  # '@' names: the abstract namespace
    try:
        proc, _ = start_daemon(cfg, env={"NOTIFY_SOCKET": listener.address})
        try:
            listener.wait_for("READY=1", timeout=20)
            proc.send_signal(signal.SIGINT)
            proc.send_signal(signal.SIGINT)
            code = proc.wait(timeout=5)
        finally:
            if proc.poll() is None:
                proc.kill()
        # Either the first SIGINT finished the clean stop first (0) or the second cut it short.
        assert code in (0, 130)
    finally:
        listener.close()
