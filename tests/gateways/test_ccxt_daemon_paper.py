"""Daemon level: a paper session executes on the Binance stand-in and its journal replays.

``trader run --mode paper`` runs as a child process; market data is the replay-as-live
feed from the shipped BTC hourly file, execution goes through the ccxt gateway named
``binance`` (``gateways.binance`` in the YAML, credentials from env vars) to the
stand-in served from a thread of this process.  The journal must replay to identical
orders, and every order the session sent reached the stand-in exactly once.
"""

from __future__ import annotations

import asyncio
import json
import threading
from pathlib import Path
from typing import Any

import yaml
from daemon_harness import events, log_lines, register_stages, run_cli, start_daemon, wait_for_exit

from gateways.testing.binance import BinanceStandin
from gateways.testing.standin import MarketSpec
from trader.live.journal_replay import order_key, replay_journal

REPO = Path(__file__).resolve().parents[2]


class ThreadedStandin:
    """The stand-in on its own event loop in a thread (the test's thread blocks on a child)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        spec = MarketSpec("BTCUSDT", "BTC", "USDT", 0.01, 0.00001, 0.00001, 5.0, 6_500.0)
        self.standin = BinanceStandin(markets=[spec])
        self.standin.balances["USDT"] = 10_000_000.0
        self._run(self.standin.start())

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    def close(self) -> None:
        self._run(self.standin.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


def write_config(tmp: Path, urls: dict[str, Any]) -> Path:
    cfg = {
        "name": "ccxt-paper",
        "portfolio": {"initial_cash": 100000},
        "data": {"start": "2018-06-01", "end": "2018-08-15"},
        "instruments": [
            {"id": "BTCUSD", "symbol": "BTC/USDT", "venue": "BINANCE", "tick_size": 0.01,
             "lot_step": 0.0001, "min_quantity": 0.0001, "asset_class": "crypto",
             "data": {"path": str(REPO / "data" / "btcusd_1h.parquet"), "timeframe": "1h"}},
        ],
        "models": [
            {"name": "btc_fast", "model": "SmaCross", "stage": "paper", "budget": 0.3,
             "instruments": ["BTCUSD"], "timeframe": "1h", "params": {"fast": 3, "slow": 8},
             "gateway": "binance"},
        ],
        "gateways": {
            "binance": {
                "exchange": "binance",
                "symbols": {"BTC/USDT": "BTCUSD"},
                "urls": urls,
                "market_data": False,
                "rate_limit": False,
                "credentials": {"api_key_env": "TEST_BINANCE_KEY",
                                "secret_env": "TEST_BINANCE_SECRET"},
            },
        },
        "daemon": {"data_dir": str(tmp / "data"),
                   "replay": {"speed": "max", "start": "2018-08-01", "exit_at_end": True},
                   "status_interval": 0.2, "shutdown_timeout": 10},
    }
    path = tmp / "session.yaml"
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    register_stages(path)
    return path


def test_paper_session_on_binance_standin_replays_to_identical_orders(tmp_path: Path) -> None:
    server = ThreadedStandin()
    try:
        s = server.standin
        cfg = write_config(tmp_path, s.urls())
        env = {"TEST_BINANCE_KEY": s.api_key, "TEST_BINANCE_SECRET": s.secret}
        proc, log_path = start_daemon(cfg, env=env)
        wait_for_exit(proc, log_path, timeout=90)
        text = log_path.read_text()
        assert s.secret not in text and s.api_key not in text  # credentials never logged
        lines = log_lines(log_path)
        submitted = events(lines, "order_submitted")
        assert len(submitted) >= 3, text[-3000:]
        # every order reached the venue once, under the session's client order id
        sent = [r.params["newClientOrderId"] for r in s.received("/api/v3/order", "POST")]
        assert sorted(sent) == sorted(x["client_order_id"] for x in submitted)
        assert all(r.signed_ok for r in s.received("/api/v3/order", "POST"))
        assert len(s.trades) == len(sent)

        snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
        outcome = replay_journal(Path(snap["journal"]))
        assert [order_key(o) for o in outcome.session_orders] == [
            order_key(o) for o in outcome.replay_orders]
        assert len(outcome.replay_orders) == len(submitted)
    finally:
        server.close()
