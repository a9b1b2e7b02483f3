"""Daemon level: a paper session trades through the IB gateway on the stand-in TWS.

``trader run --mode paper`` runs as a child process; bars are the replay-as-live
feed of the shipped SPY hourly file, orders go through the IB gateway (``broker:
ib``, account id from an env var) over the socket protocol to the stand-in TWS
served from a thread of this process.  On the way the stand-in loses IB
(1100) while an order executes and comes back (1102), then restarts like IB
Gateway does at night with its order id sequence rolled back.  Every order must
reach the venue once, every execution must reach the daemon once, a second
start must reconcile without a difference, and the journal must replay to
identical orders.

A second session has every commission report arrive after the gateway stopped
waiting for it: each is a ``FillCorrection``, which must reach the daemon's
books (cash equal to TWS's), its store (the next start reconciles without a
difference) and its journal (the replay books the same cash).
"""

from __future__ import annotations

import asyncio
import json
import signal
import threading
import time
from pathlib import Path
from typing import Any

import yaml
from daemon_harness import events, log_lines, register_stages, run_cli, start_daemon, wait_for_exit

from gateways.testing.tws import Listing, TwsStandin
from trader.live.journal_replay import order_key, replay_journal
from trader.live.status import read_snapshot
from trader.store import Store

REPO = Path(__file__).resolve().parents[2]
ACCOUNT = "DU7654321"


class ThreadedTws:
    """The stand-in TWS on its own loop in a thread; faults keyed to the order flow."""

    def __init__(self, *, faults: bool = True) -> None:
        self.faults = faults
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.tws = TwsStandin([Listing(756733, "SPY", primary="ARCA")], accounts=(ACCOUNT,))
        self.tws.set_series("SPY", [(0, 282.0, 283.0, 281.0, 282.0, 1.0)])
        self.tws.on_request = self._on_request
        self.placed = 0
        self.gap_orders: list[str] = []
        self.restarted = False
        self._run(self.tws.start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def _on_request(self, msg: list[str]) -> None:
        """Runs on the stand-in's loop before the message is handled."""
        if msg[0] != "3" or not self.faults:
            return
        existing = {o.order_ref for o in self.tws.orders}
        if msg[26] in existing:
            return  # a modify, not a new order
        self.placed += 1
        if self.placed == 2:  # IB is lost while this order executes: nobody is told
            self.loop.create_task(self.tws.connectivity_lost())
            self.tws.connectivity_ok = False
            self.gap_orders.append(msg[26])
            self.loop.call_later(0.5, lambda: self.loop.create_task(
                self.tws.connectivity_restored(data_lost=False)))
        elif self.placed == 4:  # after this order, the nightly restart with id rollback
            self.loop.call_later(0.2, lambda: self.loop.create_task(self._restart()))

    async def _restart(self) -> None:
        await self.tws.restart(next_order_id=1)
        self.restarted = True

    def close(self) -> None:
        self._run(self.tws.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def write_config(tmp: Path, port: int, *, replay_start: str = "2018-08-01",
                 exit_at_end: bool = True) -> Path:
    cfg = {
        "name": "ib-paper",
        "portfolio": {"initial_cash": 100000},
        "data": {"start": "2018-06-01", "end": "2018-08-15"},
        "instruments": [
            {"id": "SPY", "symbol": "SPY", "venue": "ARCA", "tick_size": 0.01, "lot_step": 1,
             "min_quantity": 1, "asset_class": "equity",
             "data": {"path": str(REPO / "data" / "spy_1h.parquet"), "timeframe": "1h"}},
        ],
        "models": [
            {"name": "spy_fast", "model": "SmaCross", "stage": "paper", "budget": 0.3,
             "instruments": ["SPY"], "timeframe": "1h", "params": {"fast": 2, "slow": 5},
             "gateway": "ib"},
        ],
        "gateways": {
            "ib": {
                "broker": "ib", "mode": "paper", "host": "127.0.0.1", "port": port,
                "client_id": 3, "account_env": "TEST_IB_ACCOUNT", "market_data": False,
                "contracts": {"SPY": {"symbol": "SPY", "primary_exchange": "ARCA"}},
                "timing": {"ack_timeout_s": 1.0, "reconnect_initial_s": 0.1,
                           "reconnect_max_s": 0.5, "unknown_settle_s": 0.5,
                           "connect_attempts": 20},
            },
        },
        "daemon": {"data_dir": str(tmp / "data"),
                   "replay": {"speed": 400_000, "start": replay_start,
                              "exit_at_end": exit_at_end},
                   "status_interval": 0.2, "shutdown_timeout": 10},
    }
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    register_stages(path)
    return path


def test_paper_session_on_the_tws_standin_survives_1100_and_a_restart(tmp_path: Path) -> None:
    server = ThreadedTws()
    try:
        tws = server.tws
        cfg = write_config(tmp_path, tws.port)
        env = {"TEST_IB_ACCOUNT": ACCOUNT}
        proc, log_path = start_daemon(cfg, env=env)
        wait_for_exit(proc, log_path, timeout=120)
        text = log_path.read_text()
        assert ACCOUNT not in text  # the account id is a credential: never logged
        lines = log_lines(log_path)
        submitted = events(lines, "order_submitted")
        assert len(submitted) >= 5 and server.restarted, text[-3000:]
        # every order reached TWS once, under the session's client order id
        refs = [o.order_ref for o in tws.orders]
        assert sorted(refs) == sorted(x["client_order_id"] for x in submitted)
        # every execution reached the daemon once, the one during the 1100 gap included
        daemon_fills = events(lines, "fill")
        assert len(daemon_fills) == len(tws.execs)
        assert server.gap_orders[0] in {f["client_order_id"] for f in daemon_fills}
        signed = sum(f["quantity"] * (1 if f["side"] == "BUY" else -1) for f in daemon_fills)
        assert signed == tws.positions.get(756733, (0.0, 0.0))[0]
        health = [e for e in lines if e.get("event") == "gateway_health"]
        assert any("1100" in e.get("reason", "") for e in health)
        assert tws.connected_ever >= 2  # the restart was survived by reconnecting

        snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
        outcome = replay_journal(Path(snap["journal"]))
        assert [order_key(o) for o in outcome.session_orders] == [
            order_key(o) for o in outcome.replay_orders]
        assert len(outcome.replay_orders) == len(submitted)

        # a second start reconciles against TWS: positions and cash agree exactly
        proc, log_path = start_daemon(cfg, env=env)
        wait_for_exit(proc, log_path, timeout=120)
        again = log_lines(log_path)
        assert events(again, "reconciliation_consistent"), log_path.read_text()[-3000:]
        assert not events(again, "reconciliation_adopted_broker_truth")
    finally:
        server.close()


def test_late_commissions_reach_the_books_the_store_and_the_next_start(tmp_path: Path) -> None:
    server = ThreadedTws(faults=False)
    try:
        tws = server.tws
        tws.commission_delay_s = 0.4  # past the gateway's wait: every commission is late
        cfg = write_config(tmp_path, tws.port, replay_start="2018-08-08", exit_at_end=False)
        env = {"TEST_IB_ACCOUNT": ACCOUNT}
        proc, log_path = start_daemon(cfg, env=env)
        try:
            # The replay's last bar is in and every late commission has been booked: the
            # daemon's cash is TWS's to the cent (off by the commissions otherwise).
            deadline, snap = time.monotonic() + 30, None
            while time.monotonic() < deadline:
                lines = log_lines(log_path)
                snap = read_snapshot(tmp_path / "data")
                if (events(lines, "replay_feed_finished") and tws.execs and snap is not None
                        and len(events(lines, "fill_corrected")) == len(tws.execs)
                        and abs(snap["cash"] - tws.cash) < 1e-6):
                    break
                time.sleep(0.1)
            else:
                raise AssertionError(f"cash {snap and snap.get('cash')} != TWS {tws.cash}: "
                                     f"{log_path.read_text()[-3000:]}")
        finally:
            proc.send_signal(signal.SIGTERM)
            wait_for_exit(proc, log_path, timeout=30)
        lines = log_lines(log_path)
        fills = events(lines, "fill")
        assert len(fills) == len(tws.execs) >= 2
        assert all(f["commission"] == 0.0 for f in fills)  # each fill left without it
        assert {e["commission"] for e in events(lines, "fill_corrected")} == {1.0}
        store = Store.open(f"sqlite:///{tmp_path / 'data' / 'trader.db'}")
        try:
            assert [r["commission"] for r in store.fill_rows()] == [1.0] * len(fills)
        finally:
            store.close()
        # The journal holds the corrections: its replay books the same cash.
        outcome = replay_journal(Path(snap["journal"]))
        replayed = outcome.engine.portfolio.account
        assert replayed.cash == snap["cash"] or abs(replayed.cash - snap["cash"]) < 1e-6
        assert replayed.commission == len(fills)

        # The next start restores its books from the stored, corrected fills: TWS agrees.
        proc, log_path = start_daemon(write_config(tmp_path, tws.port, replay_start="2018-08-08"),
                                      env=env)
        wait_for_exit(proc, log_path, timeout=60)
        again = log_lines(log_path)
        assert events(again, "state_restored")[0]["fills"] == len(fills)
        assert events(again, "reconciliation_consistent"), log_path.read_text()[-3000:]
        assert not events(again, "reconciliation_adopted_broker_truth")
    finally:
        server.close()
