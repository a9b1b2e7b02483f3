"""The central promise: a paper session's journal replays to identical orders."""

from __future__ import annotations

import json

from daemon_harness import events, log_lines, run_cli, start_daemon, wait_for_exit, write_config

from trader.core.clock import ReplayClock
from trader.data.feed import feed_from_config, parse_time
from trader.engine.config import load_config
from trader.live.daemon import split_history
from trader.live.journal import JournalControl, read_journal
from trader.live.journal_replay import order_key, replay_journal
from trader.live.session import apply_control, build_session


def _session(tmp_path, **kw):
    cfg = write_config(tmp_path, **kw)
    proc, log_path = start_daemon(cfg)
    wait_for_exit(proc, log_path)
    lines = log_lines(log_path)
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    return cfg, lines, snap


def test_paper_session_replays_to_identical_orders(tmp_path):
    # As fast as possible through the live path (post -> inbox -> run_async), to the end.
    cfg, lines, snap = _session(tmp_path, speed="max")
    submitted = events(lines, "order_submitted")
    assert len(submitted) >= 10  # a session that trades, on three timeframes (1h, 4h, 1d)
    assert {x["instrument"] for x in submitted} == {"BTCUSD", "SPY"}

    journal = snap["journal"]
    outcome = replay_journal(journal)
    assert [order_key(o) for o in outcome.session_orders] == [
        order_key(o) for o in outcome.replay_orders]
    assert len(outcome.replay_orders) == len(submitted)
    # Decision timestamps are bar times from the data (2018), not the wall clock.
    assert all(o.ts < 1_600_000_000 * 10**9 for o in outcome.replay_orders)
    # Client order ids match too: same prefix and sequence.
    assert [o.client_order_id for o in outcome.replay_orders] == [
        x["client_order_id"] for x in submitted]

    # The CLI says so, and writes the replay's orders.
    res = run_cli("backtest", "--journal", journal, "--out", str(tmp_path / "replay"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "identical orders" in res.stdout
    rows = (tmp_path / "replay" / "orders.csv").read_text().splitlines()
    assert len(rows) == 1 + len(submitted)


def test_session_matches_replay_of_the_original_data_files(tmp_path):
    """Independent of the journal: the data files through the replay kernel (warm-up, then
    trading from the live start) give the orders the live path gave."""
    cfg_path, _lines, snap = _session(tmp_path, speed="max")
    session_orders = replay_journal(snap["journal"]).session_orders
    cfg = load_config(cfg_path)
    header = read_journal(snap["journal"]).header
    replay = build_session(cfg, ReplayClock(), mode="paper", id_prefix=header.id_prefix)
    history, live = split_history(feed_from_config(cfg), parse_time(cfg.daemon.replay.start))
    replay.engine.kernel.run(history)
    # READY, as the daemon's control record does it: risk arms, warm-up targets trade.
    apply_control(replay, JournalControl(history[-1].ts, "trading", True))
    replay.engine.kernel.run(live)
    assert session_orders
    assert [order_key(o) for o in replay.engine.orders] == [order_key(o) for o in session_orders]


def test_torn_journal_tail_still_replays(tmp_path):
    _cfg, _lines, snap = _session(tmp_path, speed="max")
    path = snap["journal"]
    full = replay_journal(path)
    data = open(path, "rb").read()
    torn = tmp_path / "torn.journal"
    torn.write_bytes(data[:-5])  # a crash in the middle of the last record
    outcome = replay_journal(torn)
    assert outcome.torn_tail
    assert outcome.identical  # the tolerated tail loses only the last record
    assert outcome.events <= full.events
