"""Kill -9 the daemon at many points; after restart and reconciliation nothing is lost or doubled.

The broker is the SimulatedGateway in its own process behind loopback HTTP, so
its record (orders received, fills, positions, cash) outlives every crash of
the daemon process.  The daemon is ``crash_daemon.py``; it stops at a named
point and this test kills it there with SIGKILL, then starts it again.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from trader.store import Store

HERE = Path(__file__).resolve().parent
ORDERS = 24
# (crash point, how many times it is passed first) for each life before the last.
LIVES = [
    ("write_ahead", 1), ("submitted", 0), ("fill", 1), ("fill_stored", 0), ("write_ahead", 0),
    ("fill", 0), ("submitted", 2), ("fill_stored", 2), ("timer", 0), ("timer", 0),
]


def _start(args: list[str]) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=HERE.parents[2])


def _read_until(proc: subprocess.Popen[str], prefixes: tuple[str, ...],
                timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    assert proc.stdout is not None
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"daemon ended without {prefixes}: rc={proc.wait()} {err[-2000:]}")
        if line.startswith(prefixes):
            return line.strip()
    raise AssertionError(f"timed out waiting for {prefixes}")


def _get(base: str, path: str) -> object:
    with urllib.request.urlopen(base + path, timeout=10) as resp:
        return json.loads(resp.read())


@pytest.fixture
def broker() -> str:
    proc = _start([str(HERE / "crash_broker.py")])
    assert proc.stdout is not None
    port = int(proc.stdout.readline())
    yield f"http://127.0.0.1:{port}"
    proc.kill()
    proc.wait()


def test_sigkill_at_every_point_loses_no_fill_and_sends_no_order_twice(
    db_url: str, broker: str
) -> None:
    rng = random.Random(7)
    daemon = [str(HERE / "crash_daemon.py"), "--db", db_url, "--broker", broker,
              "--orders", str(ORDERS)]
    reached = []
    for point, k in LIVES:
        if point == "timer":
            proc = _start(daemon)
            _read_until(proc, ("RECONCILED",))
            time.sleep(rng.uniform(0.005, 0.05))  # wherever it happens to be
        else:
            proc = _start([*daemon, "--crash", f"{point}:{k}"])
            line = _read_until(proc, ("AT ", "DONE"))
            reached.append(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert proc.returncode == -signal.SIGKILL
    assert reached.count("AT fill") == 2 and reached.count("AT write_ahead") == 2
    assert reached.count("AT submitted") == 2 and reached.count("AT fill_stored") == 2

    proc = _start(daemon)
    reconciled = json.loads(_read_until(proc, ("RECONCILED",)).split(" ", 1)[1])
    done = json.loads(_read_until(proc, ("DONE",)).split(" ", 1)[1])
    assert proc.wait(timeout=30) == 0
    assert reconciled["position_diffs"] == {} and reconciled["cash_diffs"] == {}

    broker_fills = _get(broker, "/fills?since=0")
    submitted = _get(broker, "/submitted")
    account = _get(broker, "/account")
    with Store.open(db_url) as store:
        stored = store.fill_rows()
        # Every broker fill is in the store exactly once, and nothing else is.
        assert Counter(f["trade_id"] for f in stored) == Counter(
            f["trade_id"] for f in broker_fills)
        assert len(stored) == len(broker_fills) > 0
        # No client order id reached the broker twice; every one was written ahead first.
        assert len(submitted) == len(set(submitted))
        rows = {r["client_order_id"]: r for r in store.order_rows()}
        assert set(submitted) <= set(rows)
        assert len(rows) == ORDERS
        # Orders that never reached the broker were closed, not re-sent.
        never_sent = set(rows) - set(submitted)
        assert len(never_sent) >= 2
        assert all(rows[c]["status"] == "REJECTED" for c in never_sent)
        assert {c: r["status"] for c, r in rows.items() if c in submitted} == {
            c: "FILLED" for c in submitted}
        # Positions and cash agree: store, the restarted daemon's portfolio, the broker.
        assert store.positions() == pytest.approx(account["positions"])
        assert done["positions"] == pytest.approx(account["positions"])
        assert done["cash"] == pytest.approx(account["cash"]["USD"])
        # Client order ids are unique across the eleven process lives.
        assert len({r["session_id"] for r in rows.values()}) >= 3
