"""Alerts: the rules, the policy (aggregation, dedupe, rate limit), masking, and delivery
to loopback receivers (a JSON webhook, a Telegram Bot API stand-in, an SMTP server)."""

from __future__ import annotations

import io
import json
import threading

import pytest
from receivers import HttpReceiver, SmtpReceiver, wait_until

from risk.events import DrawdownEvent, KillSwitchChanged, OrderRiskEvent, TradingStateChanged
from trader.core.events import Fill, GatewayHealth, HealthState, Side
from trader.engine.config import AlertsConfig
from trader.live.alerts import (
    Alert,
    AlertPolicy,
    AlertSender,
    alert_for,
    read_urls,
    start_alerts,
    url_secrets,
)

BOT_TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw"


def _fill(trade_id: str = "t1", qty: float = 2.0) -> Fill:
    return Fill(10**18, "p1-1", trade_id, "SPY", Side.BUY, qty, 400.5)


def test_events_become_alerts() -> None:
    assert alert_for(_fill()).body.startswith("BUY 2 SPY @ 400.5")
    rej = OrderRiskEvent(1, "p1-2", "SPY", "BUY", 5.0, "reject", 0.0, "gross_leverage", "2.1x")
    assert alert_for(rej).title == "order rejected by risk: gross_leverage"
    scaled = OrderRiskEvent(1, "p1-2", "SPY", "BUY", 5.0, "scale", 2.0, "gross_leverage")
    assert alert_for(scaled) is None  # a scaled order is not an alert
    halt = alert_for(TradingStateChanged(1, "ACTIVE", "HALTED", "drawdown_halt"))
    assert halt.title == "trading state ACTIVE -> HALTED" and halt.severity == "warning"
    kill = alert_for(KillSwitchChanged(1, True, "stop", "ops"))
    assert kill.title == "kill switch ENGAGED" and kill.severity == "failure"
    dd = alert_for(DrawdownEvent(1, "halt", 0.21, 79_000.0, 100_000.0, 0.0))
    assert "21.00%" in dd.body and dd.severity == "failure"
    gh = alert_for(GatewayHealth(1, "binance", HealthState.DISCONNECTED, "ws dropped",
                                 "bars:BTCUSDT"))
    assert gh.title == "gateway binance/bars:BTCUSDT disconnected" and gh.body == "ws dropped"


def test_policy_aggregates_fills_per_window() -> None:
    p = AlertPolicy(aggregate_seconds=60, dedupe_seconds=0, max_per_minute=100)
    assert p.offer(alert_for(_fill("a")), 0.0) == []
    assert p.offer(alert_for(_fill("b")), 10.0) == []
    assert p.due(59.0) == []
    [digest] = p.due(60.0)
    assert digest.title == "2 fills" and len(digest.body.splitlines()) == 2
    assert p.due(200.0) == []  # nothing pending
    p.offer(alert_for(_fill("c")), 300.0)
    [single] = p.due(300.0, flush=True)  # shutdown flushes at once
    assert single.title == "fill SPY"


def test_policy_drops_duplicates_within_the_window_and_rate_limits() -> None:
    p = AlertPolicy(dedupe_seconds=300, max_per_minute=3, aggregate_fills=False)
    kill = Alert("kill_switch", "kill", "x", key="k")
    assert p.offer(kill, 0.0) == [kill]
    assert p.offer(kill, 299.0) == []  # the same alert again: dropped
    assert p.offer(kill, 300.0) == [kill]
    sent = [p.offer(Alert("drawdown", str(i), "", key=f"d{i}"), 301.0) for i in range(4)]
    assert [len(s) for s in sent] == [1, 1, 0, 0]  # 3 per minute: kill at 300 counts too
    assert p.offer(Alert("drawdown", "later", "", key="dl"), 361.0) != []  # a minute later
    assert p.dropped == 3


def test_urls_come_from_env_file_and_credentials(tmp_path) -> None:
    f = tmp_path / "urls"
    f.write_text("# ops\njson://127.0.0.1:1/hook\n")
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "alert_urls").write_text("mailto://u:pw12345@127.0.0.1:2?to=a@b.c\n")
    env = {"TRADER_ALERT_URLS": f"tgram://{BOT_TOKEN}/42, json://127.0.0.1:1/hook",
           "CREDENTIALS_DIRECTORY": str(creds)}
    assert read_urls("TRADER_ALERT_URLS", f, env) == [
        f"tgram://{BOT_TOKEN}/42", "json://127.0.0.1:1/hook",
        "mailto://u:pw12345@127.0.0.1:2?to=a@b.c"]
    assert BOT_TOKEN in url_secrets(f"tgram://{BOT_TOKEN}/42")
    assert "pw12345" in url_secrets("mailto://u:pw12345@127.0.0.1:2?to=a@b.c")
    assert read_urls("TRADER_ALERT_URLS", None, {}) == []
    assert start_alerts(AlertsConfig(), environ={}) is None  # no channel: no sender


class _Channel:
    def __init__(self, fail: int = 0, gate: threading.Event | None = None) -> None:
        self.sent: list[Alert] = []
        self.calls = 0
        self.fail = fail
        self.gate = gate

    def send(self, alert: Alert) -> bool:
        if self.gate is not None:
            self.gate.wait()
        self.calls += 1
        if self.calls <= self.fail:
            return False
        self.sent.append(alert)
        return True


def test_sending_retries_and_never_blocks_the_caller() -> None:
    ch = _Channel(fail=2)
    sender = AlertSender([ch], AlertPolicy(aggregate_fills=False), kinds=["kill_switch"],
                         retries=3, backoff=0.0)
    sender.submit(Alert("kill_switch", "kill", "x", key="k"))
    sender.submit(Alert("drawdown", "not subscribed", "x", key="d"))
    sender.close()
    assert ch.calls == 3 and [a.title for a in ch.sent] == ["[trader] kill"]
    assert sender.sent == 1 and sender.failed == 0

    gate = threading.Event()
    stuck = _Channel(gate=gate)  # a channel that hangs until released
    sender = AlertSender([stuck], AlertPolicy(aggregate_fills=False, dedupe_seconds=0,
                                            max_per_minute=10_000), kinds=["drawdown"])
    for i in range(1500):  # returns although nothing can be sent: the queue holds 1000
        sender.submit(Alert("drawdown", str(i), "", key=str(i)))
    assert sender.overflow >= 499
    gate.set()
    sender.close()
    assert stuck.calls >= 1000


@pytest.fixture
def receivers(monkeypatch):
    from apprise.plugins.telegram import NotifyTelegram

    http = HttpReceiver(fail_first=1)  # the first request fails: retried
    smtp = SmtpReceiver()
    # The Telegram stand-in answers on loopback instead of api.telegram.org.
    monkeypatch.setattr(NotifyTelegram, "notify_url", f"http://127.0.0.1:{http.port}/bot")
    yield http, smtp
    http.close()
    smtp.close()


def test_alerts_reach_webhook_telegram_and_email_with_secrets_masked(receivers, monkeypatch):
    from trader.core.logging import configure_logging

    http, smtp = receivers
    urls = [f"json://127.0.0.1:{http.port}/hook", f"tgram://{BOT_TOKEN}/4242",
            f"mailto://ops:smtp-pass-9876@127.0.0.1:{smtp.port}?from=trader@example.com"
            "&to=ops@example.com&mode=insecure"]
    log = io.StringIO()
    env = {"TRADER_ALERT_URLS": " ".join(urls), "BROKER_API_KEY": "sk-live-abcdef123456"}
    configure_logging("info", log, environ=env, fmt="json")
    cfg = AlertsConfig(retries=2, dedupe_seconds=300)
    sender = start_alerts(cfg, name="paper-test", environ=env)
    assert sender is not None
    sender.backoff = 0.0
    event = KillSwitchChanged(1, True, "manual stop, key sk-live-abcdef123456", "ops")
    sender.on_event(event)
    sender.on_event(event)  # a duplicate: sent once
    sender.close()
    # one delivery per channel; the webhook's first answer (500) was retried on it alone
    assert sender.sent == 3 and sender.failed == 0 and sender.policy.dropped == 1
    assert http.requests == 3  # webhook 500 + webhook retry + telegram
    [post] = http.posts
    assert post["title"] == "[trader paper-test] kill switch ENGAGED"
    assert "manual stop" in post["message"] and "sk-live-abcdef123456" not in post["message"]
    [(token, payload)] = http.telegram
    assert token == BOT_TOKEN and str(payload["chat_id"]) == "4242"
    assert "kill switch ENGAGED" in payload["text"]
    [mail] = smtp.messages
    assert "kill switch ENGAGED" in mail and "sk-live-abcdef123456" not in mail
    assert smtp.logins == [("ops", "smtp-pass-9876")]
    text = log.getvalue()
    assert "alerts_enabled" in text
    for secret in (BOT_TOKEN, "smtp-pass-9876", f"127.0.0.1:{http.port}/hook"):
        assert secret not in text
    for line in text.splitlines():
        json.loads(line)


def test_a_paper_daemon_alerts_start_fills_and_stop(tmp_path) -> None:
    from daemon_harness import start_daemon, wait_for_exit, write_config

    http = HttpReceiver()
    try:
        cfg = write_config(tmp_path, start="2018-09-01")
        proc, log_path = start_daemon(
            cfg, extra_args=["--create-data-dir"],
            env={"TRADER_ALERT_URLS": f"json://127.0.0.1:{http.port}/hook"})
        wait_for_exit(proc, log_path, timeout=120)
        wait_until(lambda: any("daemon stopped" in p["title"] for p in http.posts), 30,
                   "the stop alert")
    finally:
        http.close()
    titles = [p["title"] for p in http.posts]
    assert titles[0].endswith("daemon started"), titles
    assert titles[-1].endswith("daemon stopped"), titles
    fills = [p for p in http.posts if "fill" in p["title"]]
    assert fills, titles
    logged = [json.loads(line) for line in log_path.read_text().splitlines()
              if line.startswith("{")]
    stopped = next(x for x in logged if x.get("event") == "daemon_stopped")
    assert stopped["fills"] > 0
    # Every fill of the session is in the digests, once.
    lines = [b for p in fills for b in p["message"].splitlines() if " @ " in b]
    assert len(lines) == stopped["fills"] == len(set(lines))
