"""Daemon level: a paper session trades EURUSD and an index CFD through the MT5 gateway.

``trader run --mode paper`` runs as a child process; bars come from the
replay-as-live feed (the shipped EURUSD daily file, and the SPY daily file as
the price history of the US30 index CFD); orders go through the MT5 gateway
and the real mt5linux client to the stand-in terminal served by a child
process of this test.  Session one loses its terminal connection (the terminal
drops every client) and is then killed with SIGKILL while an ``order_send`` is
stalled at the terminal, which executes it: the daemon never hears the answer.
Session two starts on the same data directory, reconciles with the terminal
(the deal is found by deal ticket, the order by its booked record) and trades
on.  In the end every order reached the terminal once, the store's fills are
exactly the terminal's deals by ticket, and each session's journal replays to
identical orders.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from pathlib import Path
from typing import Any

import yaml
from daemon_harness import events, log_lines, register_stages, start_daemon, wait_for_exit

from gateways.testing.harness import wait_for
from gateways.testing.mt5_server import Mt5Server
from gateways.testing.mt5_terminal import fresh_login
from trader.engine.config import load_config
from trader.live.journal_replay import order_key, replay_journal
from trader.store import open_store

REPO = Path(__file__).resolve().parents[2]
MAGIC = 424_242
PASSWORD = secrets.token_urlsafe(12)  # the stand-in terminal's, fresh per run
LOGIN = fresh_login()  # and its account number
ENV = {"TEST_MT5_LOGIN": str(LOGIN), "TEST_MT5_PASSWORD": PASSWORD,
       "TEST_MT5_SERVER": "StandIn-Demo"}


def write_config(tmp: Path, server: Mt5Server) -> Path:
    data = REPO / "data"
    cfg = {
        "name": "mt5-paper",
        "portfolio": {"initial_cash": 100000},
        "data": {"start": "2018-01-01", "end": "2018-12-31"},
        "instruments": [
            {"id": "EURUSD", "symbol": "EURUSD", "venue": "MT5", "asset_class": "fx",
             "tick_size": 0.00001, "lot_step": 0.01, "min_quantity": 0.01,
             "multiplier": 100000,
             "data": {"path": str(data / "eurusd_1d.parquet"), "timeframe": "1d"}},
            {"id": "US30", "symbol": "US30", "venue": "MT5", "asset_class": "index",
             "tick_size": 0.1, "lot_step": 0.1, "min_quantity": 0.1,
             "data": {"path": str(data / "spy_1d.parquet"), "timeframe": "1d"}},
        ],
        "models": [
            {"name": "eurusd_daily", "model": "SmaCross", "stage": "paper", "budget": 0.3,
             "instruments": ["EURUSD"], "timeframe": "1d", "params": {"fast": 3, "slow": 8},
             "gateway": "mt5"},
            {"name": "us30_daily", "model": "SmaCross", "stage": "paper", "budget": 0.3,
             "instruments": ["US30"], "timeframe": "1d", "params": {"fast": 3, "slow": 8},
             "gateway": "mt5"},
        ],
        "gateways": {
            "mt5": {
                "backend": "mt5linux", "host": server.host, "port": server.port,
                "symbols": {"EURUSD": "EURUSD", "US30": "US30"},
                "server_timezone": "Etc/GMT-2", "magic": MAGIC, "market_data": False,
                "state_file": str(tmp / "data" / "mt5-book.sqlite"),
                "credentials": {"login_env": "TEST_MT5_LOGIN",
                                "password_env": "TEST_MT5_PASSWORD",
                                "server_env": "TEST_MT5_SERVER"},
                "timing": {"poll_interval_s": 0.1, "request_timeout_s": 30.0,
                           "reconnect_initial_s": 0.1, "reconnect_max_s": 0.5,
                           "unknown_settle_s": 0.5},
            },
        },
        "daemon": {"data_dir": str(tmp / "data"),
                   # 20 daily bars a second: a session long enough to cut it mid-way
                   "replay": {"speed": 20 * 86400, "start": "2018-06-01",
                              "exit_at_end": True},
                   "status_interval": 0.2, "shutdown_timeout": 10},
    }
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    register_stages(path)
    return path


def placements(server: Mt5Server) -> list[dict[str, Any]]:
    return [s for s in server.control("_state")["sends"] if s.get("action") in (1, 5)]


def test_paper_session_on_mt5_survives_disconnect_and_crash_and_replays(
        tmp_path: Path) -> None:
    server = Mt5Server()
    try:
        server.control("_reset", wall_clock=True, login=LOGIN, password=PASSWORD)
        server.control("_add_symbol", "EURUSD", 1.16, 0.0002)
        server.control("_add_symbol", "US30", 270.0, 1.0, contract_size=1.0, digits=1,
                       volume_min=0.1, volume_step=0.1, volume_max=10_000.0)
        cfg = write_config(tmp_path, server)

        proc, log1 = start_daemon(cfg, env=ENV, log_path=tmp_path / "session1.log")
        try:
            wait_for(lambda: len(placements(server)) >= 2, 60, "two orders at the terminal")
            assert server.control("_drop_clients") == 1  # the terminal restarts
            wait_for(lambda: any(e.get("state") == "resynced"
                                 for e in events(log_lines(log1), "gateway_health")),
                     30, "the gateway back after the drop")
            # the next order_send executes at the terminal, but its answer never comes back
            server.control("_script", "stall", placed=True, delay=120.0)
            before = len(placements(server))
            wait_for(lambda: len(placements(server)) > before, 60, "the stalled order_send")
            time.sleep(0.3)  # the daemon's poll queues behind it; nothing else can be sent
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        finally:
            if proc.poll() is None:
                proc.kill()
        stalled = placements(server)[before]["comment"]
        assert len(placements(server)) == before + 1
        # the stalled order executed at the terminal
        assert stalled in {c for (c, _state) in server.control("_state")[
            "history_orders"].values()}

        proc, log2 = start_daemon(cfg, env=ENV, log_path=tmp_path / "session2.log")
        wait_for_exit(proc, log2, timeout=120)

        # the daemon closes its store before its gateways: a deal of an order decided on
        # the very last bar may arrive during shutdown; the next start reconciles it
        proc, log3 = start_daemon(cfg, env=ENV, log_path=tmp_path / "session3.log")
        wait_for_exit(proc, log3, timeout=120)

        text = log1.read_text() + log2.read_text() + log3.read_text()
        assert PASSWORD not in text  # the password never reaches a log
        lines1, lines2 = log_lines(log1), log_lines(log2)
        health = [e["state"] for e in events(lines1, "gateway_health")]
        assert health.index("disconnected") < health.index("resynced")
        [rec] = events(lines2, "reconciliation_consistent")
        assert rec["adopted_fills"] >= 1

        submitted = events(lines1, "order_submitted") + events(lines2, "order_submitted")
        assert events(log_lines(log3), "order_submitted") == []  # nothing left to trade
        sent = [s["comment"] for s in placements(server)]
        # every order reached the terminal at most once, never re-sent after the crash;
        # the ones still queued behind the stalled call at the kill never left the host
        decided = [x["client_order_id"] for x in submitted]
        assert len(sent) == len(set(sent)) >= 5 and set(sent) <= set(decided)
        assert stalled in sent
        never_sent = set(decided) - set(sent)

        # the store's fills are the terminal's deals, ticket for ticket
        app = load_config(cfg)
        store = open_store(app.store, tmp_path / "data")
        try:
            fills = store.fill_rows()
            by_order = {r["client_order_id"]: r for r in store.order_rows()}
        finally:
            store.close()
        deals = server.control("_state")["deals"]
        assert sorted(str(f["trade_id"]) for f in fills) == sorted(str(d[0]) for d in deals)
        assert by_order[stalled]["status"] == "FILLED"
        assert {by_order[c]["status"] for c in never_sent} <= {"REJECTED"}
        assert all(c.startswith("p1-") for c in never_sent)

        journals = sorted((tmp_path / "data").rglob("*.journal*"))
        assert journals, sorted(p.name for p in (tmp_path / "data").rglob("*"))
        for journal in journals:
            outcome = replay_journal(journal)
            assert [order_key(o) for o in outcome.session_orders] == [
                order_key(o) for o in outcome.replay_orders], journal
    finally:
        server.close()
