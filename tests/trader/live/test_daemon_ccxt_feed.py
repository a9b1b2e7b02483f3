"""The daemon on live bars from a ccxt gateway (``daemon.market_data: <gateway>``).

``trader run`` runs as a child process; its bars come from an exchange stand-in
served from a thread of this process over loopback (real ccxt, real wire format).
The session warms up from the stand-in's candle history (paginated ``fetch_ohlcv``),
reports READY, then trades on the candles the test pushes through the websocket.
Paper sessions execute on the simulated exchange (the gateway is market data only);
the live session sends its orders to the same stand-in.  Each journal must replay to
identical orders through ``trader backtest --journal``.
"""

from __future__ import annotations

import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from daemon_harness import NotifyListener, events, log_lines, register_stages, run_cli, start_daemon

from gateways.testing.harness import (
    ANCHOR_MS,
    FAST_TIMING,
    MINUTE_MS,
    VenueThread,
    candle,
    wait_for,
)
from gateways.testing.standin import MarketSpec
from trader.core.events import ns_to_iso
from trader.engine.config import ConfigError, base_timeframes, load_config, replay_source
from trader.live.journal_replay import order_key, replay_journal

WARMUP_BARS = 20
PAGE = 8  # fetch_ohlcv page size: the warm-up needs three pages
# A falling history (the fast average below the slow one), then a rally and a slide:
# a fast SmaCross buys on the way up and sells on the way down.
HISTORY = [130.0 - i for i in range(WARMUP_BARS + 10)]
LIVE = [104.0, 112.0, 120.0, 128.0, 136.0, 140.0, 120.0, 100.0, 80.0, 70.0, 65.0]


def write_config(tmp: Path, venue: VenueThread, *, mode: str = "paper",
                 gateway: dict[str, Any] | None = None,
                 daemon: dict[str, Any] | None = None) -> Path:
    """One instrument with no data file, streamed by the venue's gateway."""
    h = venue.h
    live = mode == "live"
    section = {
        "exchange": h.venue, "symbols": {h.symbol: h.instrument_id}, "timeframe": "1m",
        "urls": venue.standin.urls(), "rate_limit": False,
        # small history pages: the warm-up paginates; trading defaults to on (paper turns it off)
        "timing": FAST_TIMING.model_copy(update={"history_page_limit": PAGE}).model_dump(),
    }
    if live:
        section["credentials"] = {"api_key_env": "TEST_VENUE_KEY",
                                  "secret_env": "TEST_VENUE_SECRET"}
    section.update(gateway or {})
    cfg = {
        "name": f"ccxt-feed-{h.venue}",
        "portfolio": {"initial_cash": 100000},
        "execution": {"slippage_bps": 2, "commission_bps": 1, "fee_per_order": 1.0},
        "instruments": [
            {"id": h.instrument_id, "symbol": h.symbol, "venue": h.venue.upper(),
             "tick_size": 0.1, "lot_step": 0.001, "min_quantity": 0.001,
             "asset_class": "crypto"},
        ],
        "models": [
            {"name": "fast", "model": "SmaCross", "stage": "live" if live else "paper",
             "budget": 0.3, "instruments": [h.instrument_id], "timeframe": "1m",
             "params": {"fast": 2, "slow": 5}, "gateway": h.venue if live else "sim"},
        ],
        "gateways": {h.venue: section},
        "daemon": {"data_dir": str(tmp / "data"), "market_data": h.venue,
                   "warmup_bars": WARMUP_BARS, "status_interval": 0.2,
                   "shutdown_timeout": 10, **(daemon or {})},
    }
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    register_stages(path)
    return path


def run_session(tmp: Path, venue: VenueThread, *, mode: str = "paper"
                ) -> tuple[list[dict[str, Any]], str, Path]:
    """Start, warm up, push LIVE candles until the orders are in, SIGTERM; return the log."""
    s = venue.standin
    history = [candle(ANCHOR_MS - (len(HISTORY) - i) * MINUTE_MS, p) for i, p in enumerate(HISTORY)]
    s.set_series(venue.h.venue_id, history)
    cfg = write_config(tmp, venue, mode=mode)
    env = {"TEST_VENUE_KEY": s.api_key, "TEST_VENUE_SECRET": s.secret}
    listener = NotifyListener()
    extra = ["--confirm"] if mode == "live" else []
    proc, log_path = start_daemon(cfg, mode=mode, extra_args=extra,
                                  env={"NOTIFY_SOCKET": listener.address, **env})
    try:
        try:
            listener.wait_for("READY=1", timeout=30)
        except AssertionError:
            raise AssertionError(log_path.read_text()[-4000:]) from None
        lines = log_lines(log_path)
        warm = events(lines, "warmup_done")
        assert len(warm) == 1 and warm[0]["bars"] == WARMUP_BARS, lines[-10:]
        assert warm[0]["until"] == ns_to_iso(ANCHOR_MS * 1_000_000)  # the last closed candle
        pages = [r for r in s.requests if "klines" in r.path or "OHLC" in r.path]
        assert len(pages) >= -(-WARMUP_BARS // PAGE)
        # READY came after the warm-up, and nothing was traded on history
        assert not events(lines, "order_submitted")
        wait_for(lambda: bool(s.market_ws) and bool(s.subscriptions), 10, "bar subscription")
        time.sleep(0.1)
        for k, price in enumerate(LIVE):
            venue.push(ANCHOR_MS + k * MINUTE_MS, price)
            time.sleep(0.05)
        # the last pushed candle is still forming: LIVE[:-1] close as bars
        wait_for(lambda: len(events(log_lines(log_path), "order_submitted")) >= 2
                 and len(events(log_lines(log_path), "fill")) >= 2, 20, "two orders filled")
        time.sleep(0.3)
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(timeout=15)
        assert listener.count("STOPPING=1") >= 1
    finally:
        if proc.poll() is None:
            proc.kill()
        listener.close()
    text = log_path.read_text()
    assert code == 0, text[-4000:]
    assert s.secret not in text and s.api_key not in text
    return log_lines(log_path), text, cfg


def assert_fills_on_streamed_bars(submitted: list[dict[str, Any]],
                                  fills: list[dict[str, Any]]) -> None:
    """Decisions carry the close time of a streamed bar (the venue's clock, not the wall
    clock), and the simulator fills each at the open of the next streamed bar (+2 bps)."""
    closes = {ns_to_iso((ANCHOR_MS + (k + 1) * MINUTE_MS) * 1_000_000): k
              for k in range(len(LIVE) - 1)}
    fill_of = {f["client_order_id"]: f for f in fills}
    for order in submitted:
        k = closes[order["decided"]]
        sign = 1 if order["side"] == "BUY" else -1
        fill = fill_of[order["client_order_id"]]
        assert fill["price"] == pytest.approx(LIVE[k + 1] * (1 + sign * 2e-4)), (order, fill)


def assert_replays(tmp: Path, cfg: Path, submitted: list[dict[str, Any]]) -> None:
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    outcome = replay_journal(Path(snap["journal"]))
    assert [order_key(o) for o in outcome.session_orders] == [
        order_key(o) for o in outcome.replay_orders]
    assert [o.client_order_id for o in outcome.replay_orders] == [
        x["client_order_id"] for x in submitted]
    res = run_cli("backtest", "--journal", snap["journal"], "--out", str(tmp / "replay"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "identical orders" in res.stdout


@pytest.mark.parametrize("venue_name", ["binance", "kraken"])
def test_paper_session_trades_on_streamed_bars_and_replays(tmp_path: Path,
                                                           venue_name: str) -> None:
    venue = VenueThread(venue_name)
    try:
        lines, _text, cfg = run_session(tmp_path, venue)
        submitted = events(lines, "order_submitted")
        inst = venue.h.instrument_id
        assert [x["side"] for x in submitted[:2]] == ["BUY", "SELL"], submitted
        assert all(x["instrument"] == inst and x["gateway"] == "sim" for x in submitted)
        assert_fills_on_streamed_bars(submitted, events(lines, "fill"))
        # market data only (its section leaves trading on; paper turns it off): no order,
        # no private stream, no signed request reached the venue
        assert venue.standin.received(venue.h.create_path) == []
        assert venue.standin.private_subscriptions() == 0
        assert not any(r.signed_ok is not None for r in venue.standin.requests)
        streaming = events(lines, "market_data_streaming")
        assert streaming and streaming[0]["gateway"] == venue_name
        assert_replays(tmp_path, cfg, submitted)
    finally:
        venue.close()


def test_live_session_sends_orders_to_the_streaming_venue(tmp_path: Path) -> None:
    spec = MarketSpec("BTCUSDT", "BTC", "USDT", 0.1, 0.001, 0.001, 5.0, 100.0)
    venue = VenueThread("binance", markets=[spec])
    venue.standin.balances.update({"USDT": 10_000_000.0, "BTC": 0.0})
    try:
        lines, _text, cfg = run_session(tmp_path, venue, mode="live")
        submitted = events(lines, "order_submitted")
        assert [x["side"] for x in submitted[:2]] == ["BUY", "SELL"], submitted
        sent = [venue.h.client_id_param(r) for r in venue.standin.received(
            venue.h.create_path, "POST")]
        assert sorted(sent) == sorted(x["client_order_id"] for x in submitted)
        assert len(venue.standin.trades) == len(sent)
        assert_replays(tmp_path, cfg, submitted)
    finally:
        venue.close()


def test_market_data_key_names_unknown_or_silent_gateways(tmp_path: Path) -> None:
    venue = VenueThread("binance")
    try:
        cfg = write_config(tmp_path, venue, daemon={"market_data": "bitstamp"})
        with pytest.raises(ConfigError, match=r"daemon\.market_data: no gateway named 'bitstamp'"):
            load_config(cfg)
        cfg = write_config(tmp_path, venue, gateway={"market_data": False})
        with pytest.raises(ConfigError, match=r"daemon\.market_data: .*market_data is false"):
            load_config(cfg)
        cfg = write_config(tmp_path, venue, gateway={"symbols": {"ETH/USDT": "ETHUSDT.BINANCE"}})
        with pytest.raises(ConfigError, match=r"models\.0\.instruments: .*not streamed"):
            load_config(cfg)
        # the CLI refuses with the key and exit code 2, before connecting anything
        cfg = write_config(tmp_path, venue, daemon={"market_data": "bitstamp"})
        res = run_cli("run", "--config", str(cfg), "--mode", "paper")
        assert res.returncode == 2 and "daemon.market_data" in res.stdout + res.stderr
    finally:
        venue.close()


def test_silent_gateway_feed_goes_stale_after_its_timeframe(tmp_path: Path) -> None:
    """Staleness counts the gateway's bar length (1m) in real time: 0.03 x 60 s = 1.8 s."""
    venue = VenueThread("binance")
    try:
        s = venue.standin
        s.set_series(venue.h.venue_id, [candle(ANCHOR_MS - (WARMUP_BARS - i) * MINUTE_MS, 100.0)
                                        for i in range(WARMUP_BARS)])
        cfg = write_config(tmp_path, venue, daemon={"stale_after_intervals": 0.03})
        proc, log_path = start_daemon(cfg)
        try:
            wait_for(lambda: bool(events(log_lines(log_path), "feed_stale")), 20, "feed_stale")
            lines = log_lines(log_path)
            stale = events(lines, "feed_stale")[0]
            assert stale["instrument"] == venue.h.instrument_id
            assert stale["limit_s"] == pytest.approx(1.8)
            ready = next(i for i, x in enumerate(lines) if x["event"] == "ready_notified")
            assert lines.index(stale) > ready  # not during the warm-up
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
    finally:
        venue.close()


def test_a_second_streaming_gateway_is_refused(tmp_path: Path) -> None:
    """Bars from the named source and from an execution gateway would arrive twice."""
    venue = VenueThread("binance")
    try:
        cfg_path = write_config(tmp_path, venue)
        raw = yaml.safe_load(cfg_path.read_text())
        raw["daemon"]["market_data"] = "replay"
        raw["instruments"][0]["data"] = {"path": "bars.csv", "timeframe": "1m"}
        raw["models"][0]["gateway"] = "binance"
        cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        res = run_cli("run", "--config", str(cfg_path), "--mode", "paper")
        assert res.returncode == 2, res.stdout + res.stderr
        assert "gateways.binance.market_data" in res.stdout + res.stderr
    finally:
        venue.close()


def test_bar_lengths_come_from_the_gateway_live_and_from_files_in_a_backtest(
        tmp_path: Path) -> None:
    venue = VenueThread("binance")
    try:
        cfg_path = write_config(tmp_path, venue, gateway={"timeframe": "5m"})
        raw = yaml.safe_load(cfg_path.read_text())
        raw["instruments"][0]["data"] = {"path": "bars.csv", "timeframe": "1h"}
        raw["models"][0]["timeframe"] = "1h"
        cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        cfg = load_config(cfg_path)
        inst = venue.h.instrument_id
        assert base_timeframes(cfg) == {inst: 300}  # the daemon and its journal replay
        assert base_timeframes(replay_source(cfg)) == {inst: 3600}  # trader backtest CONFIG
        raw["models"][0]["timeframe"] = "7m"
        cfg_path.write_text(yaml.safe_dump(raw, sort_keys=False))
        with pytest.raises(ConfigError, match=r"models\.0\.timeframe: 7m .*gateways\.binance"):
            load_config(cfg_path)
    finally:
        venue.close()
