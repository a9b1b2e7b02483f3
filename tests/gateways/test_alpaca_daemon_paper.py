"""Daemon level: paper sessions on the Alpaca stand-in, stocks and crypto, bars and orders.

``trader run --mode paper`` runs as a child process against the stand-in served from
a thread of this process (real alpaca-py, real wire formats).  The gateway named
``alpaca`` is both the market data source (``daemon.market_data``: warm-up from paged
REST bars, then the msgpack bar stream) and the execution venue of both models (the
paper account).  The first session survives a stream drop (the gap is backfilled,
never duplicated) and stops with an equity order still working; the venue fills it
while the daemon is down; the second session reconciles to the venue's record
exactly.  Every order reached the venue once, and each journal replays to identical
orders.  A second test runs a model on SPY daily bars: it decides once, at the
session close, never on the forming day.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
from pathlib import Path
from typing import Any

import pytest
import yaml
from daemon_harness import NotifyListener, events, log_lines, register_stages, run_cli, start_daemon

from gateways.testing.alpaca_harness import FAST_TIMING, MINUTE_MS, AlpacaThread
from gateways.testing.harness import wait_for
from trader.core.events import Bar, ns_to_iso
from trader.live.journal import read_journal
from trader.live.journal_replay import order_key, replay_journal

BTC, AAPL, SPY = "BTCUSD.ALPACA", "AAPL.ALPACA", "SPY.ALPACA"
SYMBOL = {BTC: "BTC/USD", AAPL: "AAPL", SPY: "SPY"}
WARMUP = 20
HISTORY = [130.0 - i for i in range(WARMUP + 10)]  # falling: the fast average below the slow
LIVE = [104.0, 112.0, 120.0, 128.0, 136.0, 140.0, 136.0, 132.0, 128.0, 125.0, 122.0]
DAY_MS = 86_400_000


def at(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp() * 1000)


T0 = at("2024-01-03T15:00:00")  # a Wednesday, 10:00 in New York: the equity session is open


def write_config(tmp: Path, venue: AlpacaThread, instruments: list[str], *,
                 timeframe: str = "1m", warmup: int = WARMUP, name: str = "alpaca-paper") -> Path:
    timing = FAST_TIMING.model_copy(update={"request_timeout_s": 3.0, "unknown_settle_s": 1.0,
                                            "poll_interval_s": 0.1})
    inst_rows = [
        {"id": i, "symbol": SYMBOL[i], "venue": "ALPACA",
         "asset_class": "crypto" if "/" in SYMBOL[i] else "equity", "tick_size": 0.01,
         **({"lot_step": 0.0001, "min_quantity": 0.0001} if "/" in SYMBOL[i]
            else {"lot_step": 1, "min_quantity": 1})}
        for i in instruments]
    cfg = {
        "name": name,
        "portfolio": {"initial_cash": 100_000},
        "instruments": inst_rows,
        "models": [
            {"name": f"fast_{i.split('.')[0].lower()}", "model": "SmaCross", "stage": "paper",
             "budget": 0.3, "instruments": [i], "timeframe": timeframe,
             "params": {"fast": 2, "slow": 5}, "gateway": "alpaca"} for i in instruments],
        "gateways": {"alpaca": {
            "paper": True, "symbols": {SYMBOL[i]: i for i in instruments},
            "timeframe": timeframe, "urls": venue.standin.urls(),
            "timing": timing.model_dump(), "bar_band": 5.0,
            "credentials": {"api_key_env": "TEST_ALPACA_KEY", "secret_env": "TEST_ALPACA_SECRET"},
        }},
        "daemon": {"data_dir": str(tmp / "data"), "market_data": "alpaca", "warmup_bars": warmup,
                   "status_interval": 0.2, "shutdown_timeout": 15},
    }
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    register_stages(path)
    return path


def start(cfg: Path, venue: AlpacaThread, log_name: str) -> tuple[Any, Path, NotifyListener]:
    s = venue.standin
    listener = NotifyListener()
    proc, log_path = start_daemon(cfg, log_path=cfg.parent / log_name, env={
        "NOTIFY_SOCKET": listener.address, "TEST_ALPACA_KEY": s.api_key,
        "TEST_ALPACA_SECRET": s.secret})
    try:
        listener.wait_for("READY=1", timeout=60)
    except AssertionError:
        proc.kill()
        raise AssertionError(log_path.read_text()[-4000:]) from None
    return proc, log_path, listener


def stop(proc: Any, log_path: Path, listener: NotifyListener, venue: AlpacaThread) -> str:
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    text = log_path.read_text()
    assert code == 0, text[-4000:]
    s = venue.standin
    assert s.secret not in text and s.api_key not in text  # credentials never logged
    return text


def logged(log_path: Path, name: str) -> list[dict[str, Any]]:
    return events(log_lines(log_path), name)


def replays(cfg: Path, journal: Path) -> int:
    outcome = replay_journal(journal)
    assert [order_key(o) for o in outcome.session_orders] == [
        order_key(o) for o in outcome.replay_orders]
    return len(outcome.session_orders)


def test_paper_session_trades_stocks_and_crypto_survives_a_drop_and_a_restart(
        tmp_path: Path) -> None:
    venue = AlpacaThread()
    s = venue.standin
    try:
        venue.run(lambda: s.set_clock(T0 + 30_000))
        for inst in (BTC, AAPL):
            venue.run(lambda inst=inst: s.set_series(SYMBOL[inst], [
                [T0 - (len(HISTORY) - i) * MINUTE_MS, p, p + 2, p - 1, p + 1, 1.0]
                for i, p in enumerate(HISTORY)]))
        cfg = write_config(tmp_path, venue, [BTC, AAPL])
        proc, log1, listener = start(cfg, venue, "session1.log")
        try:
            [warm] = logged(log1, "warmup_done")
            assert warm["bars"] == 2 * WARMUP and warm["until"] == ns_to_iso(T0 * 1_000_000)
            assert not logged(log1, "order_submitted")  # nothing traded on history
            wait_for(lambda: len(s.subscriptions) >= 2 and len(s.private_ws) == 1, 15,
                     "bar and order streams")
            drops = 0
            for k, price in enumerate(LIVE[:-1]):
                if k == 2:  # the venue cuts every stream; two bars pass unstreamed
                    subs = len(s.subscriptions)
                    venue.call(s.drop_connections())
                    drops += 1
                if k == 4:
                    wait_for(lambda subs=subs: len(s.subscriptions) >= subs + 2, 15,
                             "resubscribed after the drop")
                if k == 6:  # from the slide on, AAPL orders queue unfilled at the venue
                    venue.run(lambda: setattr(s, "equity_open", False))
                for inst in (BTC, AAPL):
                    venue.push(SYMBOL[inst], T0 + k * MINUTE_MS, price)
            wait_for(lambda: any(o["instrument"] == AAPL and o["side"] == "SELL"
                                 for o in logged(log1, "order_submitted"))
                     and any(f["instrument"] == BTC and f["side"] == "SELL"
                             for f in logged(log1, "fill")), 30, "both sells decided")
        except BaseException:
            proc.kill()
            listener.close()
            raise
        stop(proc, log1, listener, venue)
        sub1 = logged(log1, "order_submitted")
        # every closed live bar was consumed once, the two missed during the drop included
        journal1 = sorted((tmp_path / "data" / "journal").glob("*.journal"))[0]
        live = [(b.instrument_id, b.ts_open) for b in read_journal(journal1).records
                if isinstance(b, Bar) and b.ts_open >= T0 * 1_000_000]
        assert sorted(live) == sorted((i, (T0 + k * MINUTE_MS) * 1_000_000)
                                      for i in (BTC, AAPL) for k in range(len(LIVE) - 1))
        # AAPL sells decided on the slide are still working (queued) at the venue
        working = [o.client_order_id for o in s.orders.values() if o.status == "accepted"]
        assert working and all(s.order_by_client_id(c).symbol == "AAPL" for c in working)

        # the daemon is down: the venue opens the auction and fills the first queued sell
        venue.run(lambda: setattr(s, "equity_open", True))
        down = venue.call(s.fill(working[0], notify=False))
        assert abs(s.balances["AAPL"]) < 1e-9 and abs(s.balances["BTC"]) < 1e-9  # flat
        venue.run(lambda: s.set_clock(T0 + len(LIVE) * MINUTE_MS + 30_000))

        proc, log2, listener = start(cfg, venue, "session2.log")
        try:
            # the store's working orders came back, the fill made while down was adopted,
            # and positions and cash agree with the venue exactly
            [rec] = logged(log2, "reconciled")
            assert rec["consistent"] and rec["restored_orders"] >= len(working)
            assert rec["adopted_fills"] == 1
            snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
            # what the daemon holds is what the venue holds: positions, cash, working orders
            venue_pos = {i: s.balances.get(SYMBOL[i].split("/")[0], 0.0) for i in (BTC, AAPL)}
            assert {i: snap["positions"].get(i, 0.0) for i in (BTC, AAPL)} == venue_pos
            assert snap["cash"] == pytest.approx(s.balances["USD"], abs=1e-6)
            assert sorted(o["client_order_id"] for o in snap["open_orders"]) == sorted(
                o.client_order_id for o in s.orders.values() if o.status == "accepted")
        finally:
            stop(proc, log2, listener, venue)
        sub2 = logged(log2, "order_submitted")

        # the venue's record: every order the sessions sent arrived once, under its id
        sent = [r.params["client_order_id"] for r in s.received("/v2/orders", "POST")]
        assert sorted(sent) == sorted(o["client_order_id"] for o in sub1 + sub2)
        assert len(sent) == len(set(sent)) >= 4
        assert {s.orders[oid].symbol for oid in s.orders} == {"BTC/USD", "AAPL"}
        assert down.trade_id in {t.trade_id for t in s.trades}

        journals = sorted((tmp_path / "data" / "journal").glob("*.journal"))
        assert len(journals) == 2
        assert replays(cfg, journals[0]) == len(sub1) >= 4
        assert replays(cfg, journals[1]) == len(sub2)
        snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
        assert Path(snap["journal"]) == journals[1]
        assert drops == 1
    finally:
        venue.close()


def test_spy_daily_model_decides_once_at_the_session_close(tmp_path: Path) -> None:
    venue = AlpacaThread()
    s = venue.standin
    try:
        # thirty sessions of a falling SPY, the last on Tue 2 Jan 2024; Wed 3 Jan is forming
        days = [d for d in range(at("2023-11-01T05:00:00"), at("2024-01-03T05:00:00"), DAY_MS)]
        from gateways.alpaca.convert import session_close_ns

        sessions = [d for d in days if session_close_ns(d * 1_000_000) is not None][-30:]
        rows = [[d, 500.0 - i, 502.0 - i, 499.0 - i, 500.0 - i, 1e6]
                for i, d in enumerate(sessions)]
        jan3 = at("2024-01-03T05:00:00")
        venue.run(lambda: s.set_clock(at("2024-01-03T15:00:30")))
        venue.run(lambda: s.set_series("SPY", [*rows, [jan3, 471.0, 472.0, 470.0, 471.5, 1e5]]))
        cfg = write_config(tmp_path, venue, [SPY], timeframe="1d", warmup=20, name="spy-daily")
        proc, log_path, listener = start(cfg, venue, "daily.log")
        try:
            [warm] = logged(log_path, "warmup_done")
            assert warm["until"] == ns_to_iso(at("2024-01-02T21:00:00") * 1_000_000)
            # the day goes on: the venue's bar for it rises far above the averages...
            for k in range(3):
                venue.run(lambda k=k: s.candles["SPY"].__setitem__(
                    -1, [jan3, 471.0, 520.0 + k, 470.0, 519.0 + k, 2e5 + k]))
                venue.call(s.push_daily("SPY", s.candles["SPY"][-1]))
            polls = len(s.received("/v2/stocks/bars"))
            wait_for(lambda: len(s.received("/v2/stocks/bars")) >= polls + 3, 15,
                     "the daemon's gateway reading the forming day again")
            assert not logged(log_path, "order_submitted")  # ...but a forming day decides nothing
            venue.run(lambda: s.set_clock(at("2024-01-03T21:00:05")))  # the session closes
            wait_for(lambda: bool(logged(log_path, "order_submitted")), 30, "the decision")
        except BaseException:
            proc.kill()
            listener.close()
            raise
        stop(proc, log_path, listener, venue)
        [order] = logged(log_path, "order_submitted")
        assert order["decided"] == ns_to_iso(at("2024-01-03T21:00:00") * 1_000_000)
        assert order["instrument"] == SPY and order["side"] == "BUY"
        journals = sorted((tmp_path / "data" / "journal").glob("*.journal"))
        assert replays(cfg, journals[-1]) == 1
    finally:
        venue.close()
