"""The kill switch: mid-replay by API, by flag file and by the ``trader kill`` CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from risk_fixtures import T0, Scripted, bar, hold, make_config, path_bars

from risk.killswitch import (
    FileBackend,
    KillSwitch,
    KillSwitchError,
    KillSwitchRecord,
    MemoryBackend,
)
from trader.core.events import OrderStatus
from trader.engine.build import build_engine

REPO = Path(__file__).resolve().parents[2]


def alternate(bar, n):
    return {"AAA": 1.0 if n % 2 == 0 else 0.5}


def replay_with(risk: dict, actions: dict[int, callable], n_bars: int = 40):
    """Replay a gently rising path; ``actions[k](engine)`` runs right after bar k."""
    cfg = make_config(dict({"instrument_exposure": {"limit": 1.0}}, **risk),
                      models=[{"name": "m", "model": "SmaCross", "budget": 1.0,
                               "instruments": ["AAA"], "timeframe": "1m"}])
    engine = build_engine(cfg, models=[Scripted("m", ["AAA"], "1m", alternate)])
    trace = []

    def feed():
        for k, b in enumerate(path_bars("AAA", [100.0 + 0.1 * i for i in range(n_bars)])):
            yield b
            # The kernel has fully dispatched bar k when the generator resumes.
            trace.append((k, b.ts, engine.portfolio.position("AAA"),
                          list(engine.router.active), engine.risk.kill_switch.engaged))
            if k in actions:
                actions[k](engine)

    engine.kernel.run(feed())
    return engine, trace


@pytest.mark.parametrize("flatten", [False, True])
def test_kill_switch_mid_replay(flatten):
    captured = {}

    def engage(engine):
        captured["open"] = list(engine.router.active)
        captured["pos"] = engine.portfolio.position("AAA")
        engine.risk.kill_switch.engage("operator: strange fills")

    engine, trace = replay_with({"kill_switch": {"flatten": flatten}},
                                {10: engage, 30: lambda e: e.risk.kill_switch.release("ok")})
    assert captured["open"], "an order was working when the switch was engaged"
    for coid in captured["open"]:
        assert engine.router.order(coid).status is OrderStatus.CANCELED
    engaged = [t for t in trace if 10 < t[0] <= 30]
    assert all(t[4] for t in engaged[:-1])  # stays engaged until released
    positions = [t[2] for t in engaged]
    if flatten:
        assert positions[-1] == 0 and all(p == 0 for p in positions[1:])
    else:
        assert all(p == captured["pos"] for p in positions)  # no new exposure, nothing else
    during = [o for o in engine.orders if trace[10][1] <= o.ts <= trace[29][1]
              and o.client_order_id not in captured["open"]]
    assert all(o.reduce_only for o in during)
    assert len(during) == (1 if flatten and captured["pos"] else 0)
    assert engine.risk.counts["kill_switch"] >= 10
    # After release the model trades again.
    assert any(o.ts > trace[30][1] and not o.reduce_only for o in engine.orders)


def test_poll_picks_up_the_flag_file_and_cli(tmp_path):
    state = tmp_path / "state"
    state.mkdir()
    env = dict(os.environ, TRADER_DATA_DIR=str(state), PYTHONPATH=str(REPO))

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "trader.cli", "kill", *args], env=env,
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)

    def engage(engine):
        r = cli("--reason", "broker outage")
        assert r.returncode == 0, r.stderr
        assert "ENGAGED" in r.stdout
        engage.open = list(engine.router.active)

    def release(engine):
        r = cli("--release", "--reason", "broker back")
        assert r.returncode == 0, r.stderr

    flag = state / "kill_switch.json"
    engine, trace = replay_with(
        {"kill_switch": {"backend": "file", "path": str(flag), "flatten": False,
                         "poll_seconds": 0}},
        {10: engage, 20: release}, n_bars=30)
    assert engage.open
    # Picked up at the next bar's poll: the working order was canceled, not filled.
    for coid in engage.open:
        assert engine.router.order(coid).status is OrderStatus.CANCELED
    assert [t[4] for t in trace[11:21]] == [True] * 10
    assert not trace[21][4]
    assert not [o for o in engine.orders if trace[10][1] < o.ts <= trace[20][1]]
    assert engine.risk.counts["kill_switch_engaged"] == 1
    assert engine.risk.counts["kill_switch_released"] == 1
    rec = json.loads(flag.read_text())
    assert rec["engaged"] is False and rec["reason"] == "broker back" and "@" in rec["who"]


def test_cli_data_dir_option_status_and_missing_reason(tmp_path):
    env = dict(os.environ, PYTHONPATH=str(REPO))
    env.pop("TRADER_DATA_DIR", None)

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "trader.cli", "kill", *args], env=env,
                              capture_output=True, text=True, cwd=tmp_path, timeout=60)

    r = cli("--reason", "test")
    # The default data dir ./var does not exist: nothing is engaged where no daemon looks.
    assert r.returncode == 2 and "var does not exist" in r.stderr, r.stderr
    assert not (tmp_path / "var").exists()
    (tmp_path / "var").mkdir()
    r = cli()
    assert r.returncode == 2 and "reason" in (r.stderr + r.stdout)
    r = cli("--reason", "test")
    assert r.returncode == 0, r.stderr
    assert "no daemon has ever used data directory var" in r.stderr
    assert json.loads((tmp_path / "var" / "kill_switch.json").read_text())["engaged"] is True
    (tmp_path / "other").mkdir()
    r = cli("--data-dir", str(tmp_path / "other"), "--reason", "x", "--release")
    assert r.returncode == 0
    assert json.loads((tmp_path / "other" / "kill_switch.json").read_text())["engaged"] is False
    r = cli("--status")
    assert r.returncode == 0 and "ENGAGED" in r.stdout and "test" in r.stdout


def test_engaged_switch_survives_a_restart(tmp_path):
    path = tmp_path / "ks.json"
    KillSwitch(FileBackend(path)).engage("before restart", who="ops")
    cfg = make_config({"kill_switch": {"backend": "file", "path": str(path)}})
    engine = build_engine(cfg, models=[])
    assert engine.risk.kill_switch.engaged
    assert engine.risk.kill_switch.record.who == "ops"
    # A position found at start-up (reconciliation) is flattened from the first bar.
    engine.kernel.run([bar("AAA", T0, 100.0)])
    hold(engine, "AAA", 7)
    engine.kernel.run([bar("AAA", T0 + 60 * 10**9, 100.0)])
    assert [(o.side.value, o.quantity, o.reduce_only) for o in engine.orders] == [
        ("SELL", 7, True)]


def test_file_backend_atomic_json_and_errors(tmp_path):
    path = tmp_path / "d" / "ks.json"
    backend = FileBackend(path)
    assert backend.load() is None and backend.version() is None
    ks = KillSwitch(backend, who="me")
    rec = ks.engage("why")
    assert backend.load() == rec
    data = json.loads(path.read_text())
    assert set(data) == {"engaged", "reason", "ts", "who", "time"}
    assert data["time"].endswith("Z")
    assert sorted(p.name for p in path.parent.iterdir()) == ["ks.json"]  # no temp files left
    path.write_text("{not json")
    with pytest.raises(KillSwitchError, match=str(path)):
        backend.load()


def test_reason_required_and_release_only_by_release(tmp_path):
    ks = KillSwitch(MemoryBackend())
    with pytest.raises(KillSwitchError, match="reason is required"):
        ks.engage("  ")
    changes = []
    ks.listeners.append(changes.append)
    ks.engage("a")
    ks.engage("b")  # re-engaging updates the reason but is not a change
    assert [c.engaged for c in changes] == [True]
    # A vanished flag file is not a release.
    path = tmp_path / "ks.json"
    fks = KillSwitch(FileBackend(path))
    fks.engage("x")
    path.unlink()
    assert fks.poll() is False and fks.engaged
    # Another process releasing it is.
    FileBackend(path).save(KillSwitchRecord(False, "fixed", 1, "other"))
    assert fks.poll() is True and not fks.engaged
