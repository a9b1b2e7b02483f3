"""IB gateway pieces without a socket: config, conversions, error codes, pacing, redaction."""

from __future__ import annotations

import datetime as dt
import logging
from types import SimpleNamespace

import pytest

from gateways.base import GatewayConfigError, GatewayContext
from gateways.ib import convert, errors
from gateways.ib.config import load_account, parse_config
from gateways.ib.errors import Kind
from gateways.ib.pacing import HistoryPacer, delay_for
from gateways.ib.redact import MASK, redact_ib_logs
from gateways.registry import build
from gateways.testing.clock import ManualClock
from trader.core.events import OrderRequest, OrderStatus, OrderType, Side
from trader.core.instruments import Instrument

NS = 1_000_000_000


def section(**over: object) -> dict[str, object]:
    base: dict[str, object] = {"mode": "paper", "client_id": 1,
                               "contracts": {"SPY": {"symbol": "SPY"}}}
    base.update(over)
    return base


# -- config --------------------------------------------------------------------------------
def test_port_follows_mode_and_program_and_is_never_guessed() -> None:
    assert parse_config(section()).resolved_port == 4002
    assert parse_config(section(mode="live")).resolved_port == 4001
    assert parse_config(section(api="tws")).resolved_port == 7497
    assert parse_config(section(api="tws", mode="live")).resolved_port == 7496
    with pytest.raises(GatewayConfigError, match=r"gateways\.ib\.port: .*7496 is IB's default "
                                                 "live port but mode is paper"):
        parse_config(section(port=7496))
    with pytest.raises(GatewayConfigError, match=r"gateways\.ib\.mode: "):
        parse_config({"client_id": 1, "contracts": {"SPY": {"symbol": "SPY"}}})


def test_unknown_keys_and_bad_contracts_are_named() -> None:
    with pytest.raises(GatewayConfigError, match=r"gateways\.acct\.clientid: unknown key"):
        parse_config(section(clientid=3), "gateways.acct")
    with pytest.raises(GatewayConfigError, match=r"gateways\.ib\.contracts\.ES\..*expiry"):
        parse_config(section(contracts={"ES": {"symbol": "ES", "sec_type": "FUT",
                                               "exchange": "CME"}}))
    with pytest.raises(GatewayConfigError, match="IDEALPRO"):
        parse_config(section(contracts={"EURUSD": {"symbol": "EUR", "sec_type": "CASH"}}))
    with pytest.raises(GatewayConfigError, match=r"contracts\.SPY\.what_to_show"):
        parse_config(section(contracts={"SPY": {"symbol": "SPY", "what_to_show": "ASK"}}))
    fx = parse_config(section(contracts={"EURUSD": {"symbol": "EUR", "sec_type": "CASH",
                                                    "exchange": "IDEALPRO"}}))
    assert fx.contracts["EURUSD"].show == "MIDPOINT"


def test_account_comes_from_env_or_file_only(tmp_path) -> None:  # noqa: ANN001
    cfg = parse_config(section(account_env="IB_ACCT"))
    assert load_account(cfg, {"IB_ACCT": " DU42 "}) == "DU42"
    with pytest.raises(GatewayConfigError, match=r"account_env: environment variable IB_ACCT"):
        load_account(cfg, {})
    path = tmp_path / "acct"
    path.write_text("DU43\n")
    assert load_account(parse_config(section(account_file=str(path))), {}) == "DU43"
    with pytest.raises(GatewayConfigError, match="unknown key"):
        parse_config(section(account="DU44"))  # never in YAML


def test_registry_builds_ib_and_checks_instruments() -> None:
    spy = Instrument(id="SPY", symbol="SPY", venue="ARCA", asset_class="equity")
    gw = build("broker1", {"broker": "ib", **section()},
               GatewayContext(instruments={"SPY": spy}))
    assert gw.name == "broker1" and gw.capabilities.modify and gw.capabilities.bracket
    with pytest.raises(GatewayConfigError, match=r"gateways\.broker1\.contracts\.QQQ: not an "):
        build("broker1", {"broker": "ib", **section(contracts={"QQQ": {"symbol": "QQQ"}})},
              GatewayContext(instruments={"SPY": spy}))


def test_front_month_rolls_before_expiry() -> None:
    from gateways.ib.contracts import front_expiry

    expiries = ["20261218", "20260918", "202703"]
    assert front_expiry(expiries, dt.date(2026, 9, 1), 5) == "20260918"
    assert front_expiry(expiries, dt.date(2026, 9, 14), 5) == "20261218"  # rolled
    assert front_expiry(expiries, dt.date(2027, 3, 20), 5) == "202703"  # month = its last day
    assert front_expiry(expiries, dt.date(2027, 3, 28), 5) is None
    with pytest.raises(GatewayConfigError, match=r"contracts\.ES\.expiry: 'Z6' is neither"):
        parse_config(section(contracts={"ES": {"symbol": "ES", "sec_type": "FUT",
                                               "exchange": "CME", "expiry": "Z6"}}))


# -- conversions ---------------------------------------------------------------------------
def test_bar_is_stamped_at_its_close() -> None:
    t = dt.datetime(2024, 1, 2, 14, 30, tzinfo=dt.UTC)
    b = SimpleNamespace(date=t, open=1.0, high=2.0, low=0.5, close=1.5, volume=10.0)
    bar = convert.bar_from_ib(b, "SPY", 60)
    assert bar.ts_open == int(t.timestamp()) * NS and bar.ts == bar.ts_open + 60 * NS
    daily = convert.bar_from_ib(SimpleNamespace(date=dt.date(2024, 1, 2), open=1.0, high=1.0,
                                                low=1.0, close=1.0, volume=0.0), "SPY", 86_400)
    assert daily.ts_open == int(dt.datetime(2024, 1, 2, tzinfo=dt.UTC).timestamp()) * NS
    with pytest.raises(convert.BrokerMessageError, match="naive"):
        convert.to_ns(dt.datetime(2024, 1, 2))


def test_status_side_exec_id_and_order_fields() -> None:
    assert convert.status_from_ib("Submitted") is OrderStatus.ACCEPTED
    assert convert.status_from_ib("ApiCancelled") is OrderStatus.CANCELED
    assert convert.status_from_ib("PendingSubmit") is None
    with pytest.raises(convert.BrokerMessageError, match="Weird"):
        convert.status_from_ib("Weird")
    assert convert.side_from_ib("SLD") is Side.SELL
    assert convert.exec_base("0000e0d5.0001.01.02") == "0000e0d5.0001.01"
    stop = OrderRequest(1, "S-1", "SPY", Side.SELL, 5, OrderType.STOP, 99.5, 100.0)
    assert convert.order_fields(stop) == {"action": "SELL", "totalQuantity": 5.0,
                                          "orderType": "STP LMT", "orderRef": "S-1",
                                          "auxPrice": 100.0, "lmtPrice": 99.5}
    assert convert.bar_size(300) == "5 mins" and convert.duration(90_000) == "2 D"
    with pytest.raises(ValueError, match="no 7-second bars"):
        convert.bar_size(7)


# -- error codes ---------------------------------------------------------------------------
@pytest.mark.parametrize(("code", "kind"), [
    (201, Kind.REJECTED), (202, Kind.CANCELLED), (110, Kind.REJECTED),
    (103, Kind.DUPLICATE_ID), (10147, Kind.UNKNOWN_ORDER), (10148, Kind.UNKNOWN_ORDER),
    (2109, Kind.WARNING), (1100, Kind.LINK_LOST), (1101, Kind.LINK_RESTORED_DATA_LOST),
    (1102, Kind.LINK_RESTORED), (2103, Kind.FARM_DOWN), (2104, Kind.FARM_OK),
    (2105, Kind.FARM_DOWN), (2106, Kind.FARM_OK), (2107, Kind.FARM_OK), (2108, Kind.FARM_OK),
    (162, Kind.PACING), (200, Kind.NOT_LISTED), (326, Kind.CLIENT_ID_IN_USE),
    (4242, Kind.INFO)])
def test_error_codes_are_classified(code: int, kind: Kind) -> None:
    assert errors.classify(code) is kind


def test_reason_keeps_code_and_text() -> None:
    assert errors.reason(201, "Order rejected - reason:X") == \
        "IB 201 (order rejected): Order rejected - reason:X"
    assert errors.reason(4242, "odd") == "IB 4242: odd"


# -- pacing --------------------------------------------------------------------------------
def test_pacing_rules() -> None:
    from collections import deque

    sent = deque([(100.0, "a")])
    assert delay_for(105.0, "a", sent, 0.0) == pytest.approx(10.0)  # identical within 15 s
    assert delay_for(105.0, "b", sent, 0.0) == 0.0
    assert delay_for(105.0, "b", sent, 120.0) == pytest.approx(15.0)  # after a 162
    full = deque((float(t), t) for t in range(60))
    assert delay_for(100.0, "z", full, 0.0) == pytest.approx(500.0)  # 61st in 10 minutes


async def test_pacer_waits_on_its_clock() -> None:
    clock = ManualClock(auto=True)
    pacer = HistoryPacer(clock=clock, sleep=clock.sleep, window_max=3)
    for k in range(4):
        await pacer.wait(("SPY", k))
    assert pacer.waited_s == pytest.approx(600.0)  # the 4th waited for the window
    await pacer.wait(("SPY", 3))
    assert pacer.waited_s == pytest.approx(615.0)  # identical to the last one: 15 s more


# -- redaction -----------------------------------------------------------------------------
def test_account_id_is_masked_in_ib_async_logs(caplog: pytest.LogCaptureFixture) -> None:
    redact_ib_logs("DU5550001")
    with caplog.at_level(logging.WARNING, logger="ib_async"):
        logging.getLogger("ib_async.wrapper").warning("Canceled order: %s",
                                                      "Order(account='DU5550001')")
    assert "DU5550001" not in caplog.text and MASK in caplog.text
