"""The journal header stays small (a stored start state, not every fill) and holds no secret."""

from __future__ import annotations

import json

import msgspec
import pytest
import yaml
from daemon_harness import events, log_lines, run_cli, start_daemon, wait_for_exit, write_config

from trader.engine.config import ConfigError, load_config, without_secrets
from trader.live.journal import JournalWriter, read_journal
from trader.live.journal_replay import replay_journal
from trader.store import open_store


def _session(cfg, name):
    proc, log_path = start_daemon(cfg, log_path=cfg.parent / name)
    wait_for_exit(proc, log_path)
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    return log_lines(log_path), snap


@pytest.fixture(scope="module")
def two_sessions(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("hdr")
    cfg = write_config(tmp, data_end="2018-08-20")
    first = _session(cfg, "one.log")
    cfg = write_config(tmp, data_end="2018-09-15")  # more data arrived: the second resumes
    second = _session(cfg, "two.log")
    return tmp, first, second


def test_restarted_header_references_a_stored_compact_state(two_sessions):
    tmp, (lines1, _), (_, snap2) = two_sessions
    assert events(lines1, "fill")
    header = read_journal(snap2["journal"]).header
    assert header.version == 2 and header.fills == []  # no earlier fill is copied in
    acct = header.state["account"]
    assert acct["positions"] and len(acct["positions"]) <= 2  # O(instruments)
    with open_store(None, tmp / "data", migrate=False) as store:
        stored = store.restored_state(header.state_id)
    assert stored is not None and stored["content_hash"] == header.state_hash
    assert stored["state"] == header.state
    outcome = replay_journal(snap2["journal"])
    assert outcome.identical and outcome.session_orders


def test_old_format_header_with_fills_still_replays(two_sessions, tmp_path):
    tmp, _, (_, snap2) = two_sessions
    read = read_journal(snap2["journal"])
    prefix = read.header.id_prefix
    with open_store(None, tmp / "data", migrate=False) as store:
        fills = store.session_fills("paper", ["sim"])
    # What a version-1 daemon wrote: every fill of the sessions before this one.
    first_fills = [f for f in fills if not f.client_order_id.startswith(f"{prefix}-")]
    assert first_fills
    old = msgspec.structs.replace(read.header, version=1, state={}, state_id=None,
                                  state_hash="", fills=first_fills)
    w = JournalWriter(tmp_path / "old.journal", old)
    for rec in read.records:
        w.append(rec)
    w.close()
    outcome = replay_journal(tmp_path / "old.journal")
    assert outcome.identical and outcome.session_orders


def _config_with(tmp_path, gateways):
    path = write_config(tmp_path)
    raw = yaml.safe_load(path.read_text())
    raw["gateways"] = gateways
    path.write_text(yaml.safe_dump(raw))
    return path


def test_a_secret_in_a_gateway_section_is_refused_naming_the_key(tmp_path):
    path = _config_with(tmp_path, {"binance": {"options": {"apiKey": "AKIA-do-not-echo"}}})
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert "gateways.binance.options.apiKey" in str(err.value)
    assert "AKIA-do-not-echo" not in str(err.value)
    r = run_cli("run", "--config", str(path), "--mode", "paper")
    assert r.returncode == 2 and "gateways.binance.options.apiKey" in r.stdout + r.stderr


def test_credential_references_are_not_secrets(tmp_path):
    path = _config_with(tmp_path, {"binance": {"credentials": {"api_key_env": "K",
                                                               "secret_file": "/run/s"}}})
    load_config(path)


def test_header_config_is_redacted_defensively():
    dumped = {"gateways": {"x": {"password": "p", "options": {"secret": "s", "rate": 1},
                                 "api_key_env": "E"}}, "name": "n"}
    assert without_secrets(dumped) == {"gateways": {"x": {"options": {"rate": 1},
                                                          "api_key_env": "E"}}, "name": "n"}
