"""Unsafe starts are refused with a clear message and a non-zero exit, before anything runs."""

from __future__ import annotations

from daemon_harness import run_cli, write_config

# A broker section that would connect to nothing (closed loopback port): a refusal must
# come before any connection is tried.
BINANCE = {"binance": {"exchange": "binance", "symbols": {"BTC/USDT": "BTCUSD"},
                       "market_data": False,
                       "urls": {"api": {"public": "http://127.0.0.1:1/api/v3",
                                        "private": "http://127.0.0.1:1/api/v3"}}}}


def test_live_without_confirm_is_refused(tmp_path):
    cfg = write_config(tmp_path, register=False, models=[
        {"name": "btc", "model": "SmaCross", "stage": "live", "budget": 0.5,
         "instruments": ["BTCUSD"], "timeframe": "1h", "gateway": "binance"}])
    res = run_cli("run", "--config", str(cfg), "--mode", "live")
    assert res.returncode != 0
    assert "--confirm" in res.stderr
    assert not (tmp_path / "data").exists()  # refused before opening anything


def test_live_with_a_paper_stage_model_is_refused(tmp_path):
    cfg = write_config(tmp_path, models=[
        {"name": "btc_live", "model": "SmaCross", "stage": "live", "budget": 0.4,
         "instruments": ["BTCUSD"], "timeframe": "1h", "gateway": "binance"},
        {"name": "spy_paper", "model": "SmaCross", "stage": "paper", "budget": 0.4,
         "instruments": ["SPY"], "timeframe": "1d", "gateway": "binance"}],
        gateways=BINANCE)
    res = run_cli("run", "--config", str(cfg), "--mode", "live", "--confirm")
    assert res.returncode == 2, res.stderr
    msg = " ".join(res.stderr.split())
    assert "model 'spy_paper' is at stage paper in the lifecycle registry" in msg
    assert "trader models promote spy_paper --config" in msg  # the command that fixes it
    assert "btc_live" not in msg  # only the offending model is named
    assert "Traceback" not in res.stderr


def test_paper_with_an_unregistered_model_is_refused(tmp_path):
    cfg = write_config(tmp_path, register=False, models=[
        {"name": "idea", "model": "SmaCross", "stage": "paper", "budget": 0.4,
         "instruments": ["BTCUSD"], "timeframe": "1h"}])
    (tmp_path / "data").mkdir()
    res = run_cli("run", "--config", str(cfg), "--mode", "paper")
    assert res.returncode == 2
    msg = " ".join(res.stderr.split())
    # The YAML says paper; only the registry counts.
    assert "model 'idea' is not registered in the lifecycle registry" in msg
    assert "trader models promote idea" in msg


def test_yaml_stage_live_never_makes_a_model_live(tmp_path):
    cfg = write_config(tmp_path, register=False, models=[
        {"name": "btc", "model": "SmaCross", "stage": "live", "budget": 0.4,
         "instruments": ["BTCUSD"], "timeframe": "1h", "gateway": "binance"}],
        gateways=BINANCE)
    (tmp_path / "data").mkdir()
    res = run_cli("run", "--config", str(cfg), "--mode", "live", "--confirm")
    assert res.returncode == 2
    assert "model 'btc' is not registered" in " ".join(res.stderr.split())
    assert "connect" not in res.stderr.lower()  # refused before any gateway was built


def test_a_demoted_model_is_refused_by_the_next_paper_session(tmp_path):
    cfg = write_config(tmp_path)  # the three models registered at paper
    res = run_cli("models", "demote", "btc_fast", "--config", str(cfg), "--reason", "misbehaves")
    assert res.returncode == 0, res.stderr
    res = run_cli("models", "demote", "btc_fast", "--config", str(cfg), "--reason", "again")
    assert res.returncode == 0, res.stderr
    res = run_cli("run", "--config", str(cfg), "--mode", "paper")
    assert res.returncode == 2
    assert "model 'btc_fast' is at stage research" in " ".join(res.stderr.split())


def test_promoting_a_model_the_config_does_not_run_is_refused(tmp_path):
    cfg = write_config(tmp_path)
    res = run_cli("models", "promote", "nosuch", "--config", str(cfg), "--reason", "x",
                  "--operator", "ana", "--force")
    assert res.returncode == 2
    assert "model 'nosuch' is not in" in " ".join(res.stderr.split())


def test_live_on_the_simulator_is_refused(tmp_path):
    cfg = write_config(tmp_path, models=[
        {"name": "btc", "model": "SmaCross", "stage": "live", "budget": 0.5,
         "instruments": ["BTCUSD"], "timeframe": "1h"}])
    res = run_cli("run", "--config", str(cfg), "--mode", "live", "--confirm")
    assert res.returncode != 0
    assert "broker execution gateway" in " ".join(res.stderr.split())


def test_unknown_mode_is_refused(tmp_path):
    cfg = write_config(tmp_path)
    res = run_cli("run", "--config", str(cfg), "--mode", "yolo")
    # --mode is a choice: the parser refuses it (exit 2) and names the choices.
    assert res.returncode == 2
    assert "'yolo' is not one of 'paper', 'live'" in res.stderr
    assert "Traceback" not in res.stderr


def test_a_broker_gateway_that_cannot_be_built_is_never_simulated(tmp_path):
    cfg = write_config(tmp_path, models=[
        {"name": "btc", "model": "SmaCross", "stage": "paper", "budget": 0.5,
         "instruments": ["BTCUSD"], "timeframe": "1h", "gateway": "nobroker"}])
    res = run_cli("run", "--config", str(cfg), "--mode", "paper")
    assert res.returncode != 0
    assert "['nobroker']" in " ".join(res.stderr.split())
