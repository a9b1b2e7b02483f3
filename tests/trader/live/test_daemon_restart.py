"""A restart continues from the store: fills restored, new order ids, parity per session."""

from __future__ import annotations

import json

import pytest
from daemon_harness import events, log_lines, run_cli, start_daemon, wait_for_exit, write_config

from trader.live.journal_replay import replay_journal
from trader.store import open_store


def _run(cfg, log_name):
    proc, log_path = start_daemon(cfg, log_path=cfg.parent / log_name)
    wait_for_exit(proc, log_path)
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    return log_lines(log_path), snap


def test_second_session_restores_the_first_and_both_replay_identically(tmp_path):
    cfg = write_config(tmp_path, speed="max", data_end="2018-08-25")
    lines1, snap1 = _run(cfg, "one.log")
    # The second session resumes the feed after the first's last bar: give it new data.
    cfg = write_config(tmp_path, speed="max", data_end="2018-09-15")
    lines2, snap2 = _run(cfg, "two.log")
    fills1 = events(lines1, "fill")
    assert fills1 and events(lines2, "fill")
    restored = events(lines2, "state_restored")
    assert restored and restored[0]["fills"] == len(fills1)
    # Each session has its own client order id prefix: nothing can be sent twice.
    ids1 = {x["client_order_id"] for x in events(lines1, "order_submitted")}
    ids2 = {x["client_order_id"] for x in events(lines2, "order_submitted")}
    assert ids1 and ids2 and not ids1 & ids2
    # Parity holds for the restarted session too (its header carries the restored state).
    for snap in (snap1, snap2):
        outcome = replay_journal(snap["journal"])
        assert outcome.identical and outcome.session_orders
    outcome2 = replay_journal(snap2["journal"])
    replay_pos = {k: p.quantity for k, p in outcome2.engine.portfolio.account.positions.items()
                  if p.quantity}
    # The store agrees with the daemon's last snapshot and with the replay.
    stored = snap2["store"]
    assert stored["open_orders"] == []
    # (equal up to float summation order: the store adds fills up in its own order)
    assert stored["positions"] == pytest.approx(snap2["positions"], abs=1e-9)
    assert snap2["positions"] == replay_pos
    with _store(tmp_path) as store:
        assert len(store.fills()) == len(fills1) + len(events(lines2, "fill"))


def _store(tmp_path):

    return open_store(None, tmp_path / "data", migrate=False)
