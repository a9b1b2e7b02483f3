"""Pure MT5 rules: server time zone, rates records, requests, retcodes, config, constants."""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gateways.base import GatewayConfigError, GatewayContext
from gateways.mt5 import convert as cv
from gateways.mt5.config import Mt5ConfigError, Mt5Credentials, load_account, parse_config
from gateways.mt5.factory import build
from gateways.mt5.retcodes import Verdict, describe, verdict
from gateways.testing import mt5_terminal
from trader.core.events import OrderType, Side

ATHENS = ZoneInfo("Europe/Athens")  # the usual "New York close" broker zone: UTC+2 / UTC+3


def test_server_time_converts_with_daylight_saving() -> None:
    winter_utc = 1_704_067_200  # 2024-01-01 00:00 UTC -> 02:00 on the server
    summer_utc = 1_719_792_000  # 2024-07-01 00:00 UTC -> 03:00 on the server
    assert cv.utc_to_server_s(winter_utc * cv.NS, ATHENS) == winter_utc + 7200
    assert cv.utc_to_server_s(summer_utc * cv.NS, ATHENS) == summer_utc + 10800
    assert cv.server_to_utc_ns(winter_utc + 7200, ATHENS) == winter_utc * cv.NS
    assert cv.server_to_utc_ns(summer_utc + 10800, ATHENS) == summer_utc * cv.NS


def test_rate_record_is_a_bar_stamped_at_its_close_in_utc() -> None:
    rec = (1_704_074_400, 1.1, 1.2, 1.0, 1.15, 42, 3, 0)  # 02:00 server = 00:00 UTC
    bar = cv.rate_to_bar(rec, "EURUSD.MT5", 60, ATHENS)
    assert bar.ts_open == 1_704_067_200 * cv.NS and bar.ts == bar.ts_open + 60 * cv.NS
    assert (bar.open, bar.close, bar.volume) == (1.1, 1.15, 42.0)  # tick volume for FX
    with pytest.raises(cv.Mt5MessageError, match="EURUSD.MT5"):
        cv.rate_to_bar(("x", 1, 1, 1, 1, 1, 1, 1), "EURUSD.MT5", 60, ATHENS)


def test_requests_and_filling_modes() -> None:
    req = cv.order_request(symbol="US30", side=Side.SELL, order_type=OrderType.STOP,
                           volume=0.5, price=36_900.0, magic=7, comment="C1", deviation=10,
                           filling=cv.filling_for(2, market=False), stop_price=37_000.0)
    assert (req["action"], req["type"], req["price"], req["stoplimit"]) == (
        cv.TRADE_ACTION_PENDING, cv.ORDER_TYPE_SELL_STOP_LIMIT, 37_000.0, 36_900.0)
    assert cv.filling_for(1 | 2, market=True) == cv.ORDER_FILLING_FOK
    assert cv.filling_for(2, market=True) == cv.ORDER_FILLING_IOC
    assert cv.filling_for(0, market=True) == cv.ORDER_FILLING_RETURN
    assert cv.comment_for("X" * 40) == "X" * 31
    assert cv.comment_matches("P2601011230ab-1"[:16], "P2601011230ab-17")
    assert not cv.comment_matches("#123 by broker", "P2601011230ab-17")


def test_retcode_verdicts() -> None:
    assert verdict(10009) is Verdict.DONE and verdict(10008) is Verdict.PLACED
    assert verdict(10004) is Verdict.REPRICE and verdict(10024) is Verdict.BUSY
    assert verdict(10019) is Verdict.REJECTED and verdict(99999) is Verdict.REJECTED
    assert describe(10018) == "MT5 retcode 10018: market is closed"


def test_config_refuses_unknown_keys_and_names_them(tmp_path: Path) -> None:
    base = {"symbols": {"EURUSD": "EURUSD.MT5"}, "magic": 1, "state_file": tmp_path / "b"}
    with pytest.raises(Mt5ConfigError, match=r"gateways\.fx\.colour"):
        parse_config({**base, "colour": 1}, "gateways.fx")
    with pytest.raises(Mt5ConfigError, match=r"gateways\.fx\.backend"):
        parse_config({**base, "backend": "wine"}, "gateways.fx")
    with pytest.raises(Mt5ConfigError, match=r"gateways\.fx\.server_timezone"):
        parse_config({**base, "server_timezone": "Mars/Olympus"}, "gateways.fx")
    with pytest.raises(Mt5ConfigError, match="state_file"):
        parse_config({"symbols": {"EURUSD": "E"}, "magic": 1}, "gateways.fx")
    with pytest.raises(GatewayConfigError, match=r"gateways\.fx\.magic"):
        build("fx", {"symbols": {"EURUSD": "E"}}, GatewayContext())


def test_account_comes_from_env_and_never_shows_the_password() -> None:
    creds = Mt5Credentials(login_env="L", password_env="P", server_env="S")
    acct = load_account(creds, {"L": "5001234", "P": "s3cret-pw", "S": "Demo"})
    assert acct.initialize_kwargs() == {"login": 5001234, "password": "s3cret-pw",
                                        "server": "Demo"}
    assert "s3cret-pw" not in repr(acct)
    with pytest.raises(Mt5ConfigError, match="credentials.password_env"):
        load_account(creds, {"L": "5001234", "S": "Demo"})


def test_stand_in_constants_match_the_client_library() -> None:
    from mt5linux.constants import Constants

    names = [n for n in dir(mt5_terminal) if n.isupper() and n.split("_")[0] in (
        "TIMEFRAME", "ORDER", "TRADE", "DEAL", "POSITION", "RES", "ACCOUNT")]
    assert len(names) > 50
    for n in names:
        assert getattr(mt5_terminal, n) == getattr(Constants, n), n
    for n in [n for n in dir(cv) if n.isupper() and hasattr(Constants, n)]:
        assert getattr(cv, n) == getattr(Constants, n), n


def test_example_config_validates() -> None:
    import yaml

    path = Path(__file__).resolve().parents[2] / "config" / "gateways" / "mt5_demo.yaml"
    cfg = parse_config(yaml.safe_load(path.read_text())["gateway"], path.name)
    assert cfg.symbols == {"EURUSD": "EURUSD", "US30": "US30"} and cfg.timeframe_seconds == 60
    assert cfg.credentials.password_env and "password" not in path.read_text().replace(
        "password_env", "")


def test_volume_rules_of_the_symbol() -> None:
    info = {"name": "US30", "volume_min": 0.1, "volume_max": 50.0, "volume_step": 0.1}
    assert cv.volume_violation(0.3, info) is None
    assert "minimum" in (cv.volume_violation(0.05, info) or "")
    assert "maximum" in (cv.volume_violation(51.0, info) or "")
    assert "volume step" in (cv.volume_violation(0.25, info) or "")
