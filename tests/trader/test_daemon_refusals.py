"""Unsafe starts are refused with a clear message and a non-zero exit, before anything runs."""

from __future__ import annotations

from daemon_harness import run_cli, write_config


def test_live_without_confirm_is_refused(tmp_path):
    cfg = write_config(tmp_path, models=[
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
         "instruments": ["SPY"], "timeframe": "1d", "gateway": "binance"}])
    res = run_cli("run", "--config", str(cfg), "--mode", "live", "--confirm")
    assert res.returncode != 0
    msg = " ".join(res.stderr.split())
    assert "spy_paper (stage paper)" in msg
    assert "btc_live" not in msg  # only the offending model is named
    assert not (tmp_path / "data").exists()


def test_paper_with_a_research_model_is_refused(tmp_path):
    cfg = write_config(tmp_path, models=[
        {"name": "idea", "model": "SmaCross", "stage": "research", "budget": 0.4,
         "instruments": ["BTCUSD"], "timeframe": "1h"}])
    res = run_cli("run", "--config", str(cfg), "--mode", "paper")
    assert res.returncode != 0
    assert "idea (stage research)" in " ".join(res.stderr.split())


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
    assert res.returncode != 0
    assert "--mode must be 'paper' or 'live'" in res.stderr


def test_a_broker_gateway_that_cannot_be_built_is_never_simulated(tmp_path):
    cfg = write_config(tmp_path, models=[
        {"name": "btc", "model": "SmaCross", "stage": "paper", "budget": 0.5,
         "instruments": ["BTCUSD"], "timeframe": "1h", "gateway": "nobroker"}])
    res = run_cli("run", "--config", str(cfg), "--mode", "paper")
    assert res.returncode != 0
    assert "['nobroker']" in " ".join(res.stderr.split())
