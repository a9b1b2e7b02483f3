"""A session and the replay of its journal book a venue's fill corrections alike."""

from __future__ import annotations

from daemon_harness import write_config
from structlog.testing import capture_logs

from trader.core.clock import ReplayClock
from trader.core.events import Bar, Fill, FillCorrection, Side
from trader.engine.config import load_config
from trader.live.session import build_session, replay_records, restore_state
from trader.live.start_state import capture_state, load_state

DAY = 86_400 * 10**9


def _records() -> list:
    bar = Bar(10 * DAY, "SPY", DAY, 9 * DAY, 280.0, 283.0, 279.0, 282.0, 1e6)
    return [
        bar,
        Fill(10 * DAY + 1, "X-1", "e-1", "SPY", Side.BUY, 10.0, 282.0, 0.0),
        Fill(10 * DAY + 2, "X-2", "e-2", "SPY", Side.SELL, 4.0, 283.0, 0.0),
        FillCorrection(10 * DAY + 3, "e-1", "X-1", commission=1.0),
        FillCorrection(10 * DAY + 4, "e-2", "X-2", price=282.5, commission=0.4),
    ]


def test_a_journal_with_corrections_replays_to_the_same_books(tmp_path) -> None:
    cfg = load_config(write_config(tmp_path))
    live = build_session(cfg, ReplayClock(), mode="paper", id_prefix="T")
    replay = build_session(cfg, ReplayClock(), mode="paper", id_prefix="T")
    for session in (live, replay):  # as behind a venue (the simulated exchange corrects nothing)
        session.engine.portfolio.remember_fills = True
    for rec in _records():  # the daemon's live dispatch, one event at a time
        live.engine.kernel.dispatch(rec)
    replay.engine.kernel.run(replay_records(replay, _records()))
    state = capture_state(live)
    assert state == capture_state(replay)
    acct = live.engine.portfolio.account
    assert acct.commission == 1.4
    assert acct.cash == cfg.portfolio.initial_cash - 10 * 282.0 + 4 * 282.5 - 1.4


def test_a_correction_of_a_fill_from_before_the_start_is_unknown_to_both(tmp_path) -> None:
    """The daemon restores earlier fills, then loads its start state back, as the replay of
    its journal loads it: neither may apply a correction of an earlier fill."""
    cfg = load_config(write_config(tmp_path))
    live = build_session(cfg, ReplayClock(), mode="paper", id_prefix="T")
    restore_state(live, [Fill(1, "P-1", "e-0", "SPY", Side.BUY, 5.0, 280.0, 0.0)])
    state = capture_state(live)
    load_state(live, state)
    replay = build_session(cfg, ReplayClock(), mode="paper", id_prefix="T")
    load_state(replay, state)
    fix = FillCorrection(2, "e-0", "P-1", commission=2.0)
    with capture_logs() as logs:
        live.engine.kernel.dispatch(fix)
        replay.engine.kernel.run(replay_records(replay, [fix]))
    assert capture_state(live) == capture_state(replay) == state
    assert [e["event"] for e in logs].count("fill_correction_for_unknown_trade") == 2
