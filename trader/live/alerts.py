"""Alerts to the operator: webhooks (JSON), Telegram, e-mail and the rest of apprise.

What happens (fills, risk rejections, trading state, kill switch, drawdown,
gateway health, stale feeds, reconciliation, daemon start/stop) becomes an
:class:`Alert` by small pure rules (:func:`alert_for`). The kernel's handlers
only put it on a bounded queue: a worker thread, off the kernel's loop, applies
the :class:`AlertPolicy` (fills aggregated into one message per window, the same
alert deduplicated, a rate limit per minute) and sends with retries. A slow or
dead channel never blocks trading; a full queue drops alerts and counts them.

The channel URLs carry tokens and passwords: they come from an environment
variable or a file (never the YAML) and are registered with the log redactor,
so neither they nor their secret parts appear in logs; message text is masked
before it is sent.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import structlog

from risk.events import DrawdownEvent, KillSwitchChanged, OrderRiskEvent, TradingStateChanged
from trader.core.events import Fill, GatewayHealth, OverlayEvent, ns_to_iso
from trader.core.logging import redactor

log = structlog.get_logger("trader.alerts")
CREDENTIAL_NAME = "alert_urls"  # a systemd credential file of that name is read too
QUEUE_SIZE = 1000


@dataclass(frozen=True)
class Alert:
    """One message: ``key`` identifies "the same alert" for deduplication."""

    kind: str
    title: str
    body: str
    key: str
    severity: str = "info"  # info | warning | failure (apprise's notify types)


# -- rules: an event in, an alert (or None) out -------------------------------------------
def alert_for(event: Any) -> Alert | None:
    """The alert a kernel event raises, if any (fills are aggregated by the policy)."""
    if isinstance(event, Fill):
        return Alert("fill", f"fill {event.instrument_id}",
                     f"{event.side.value} {event.quantity:g} {event.instrument_id} @ "
                     f"{event.price:g} ({event.client_order_id}, {ns_to_iso(event.ts)})",
                     key=f"fill:{event.trade_id}")
    if isinstance(event, OrderRiskEvent):
        if event.action != "reject":
            return None
        return Alert("risk_rejected", f"order rejected by risk: {event.reason}",
                     f"{event.side} {event.quantity:g} {event.instrument_id}: {event.reason}"
                     f"{' - ' + event.detail if event.detail else ''}",
                     key=f"risk:{event.reason}:{event.instrument_id}", severity="warning")
    if isinstance(event, TradingStateChanged):
        return Alert("trading_state", f"trading state {event.previous} -> {event.state}",
                     f"{event.reason}{' - ' + event.detail if event.detail else ''}",
                     key=f"state:{event.state}:{event.reason}",
                     severity="info" if event.state == "ACTIVE" else "warning")
    if isinstance(event, KillSwitchChanged):
        what = "ENGAGED" if event.engaged else "released"
        return Alert("kill_switch", f"kill switch {what}",
                     f"{event.reason}{' (by ' + event.who + ')' if event.who else ''}",
                     key=f"kill:{event.engaged}:{event.reason}",
                     severity="failure" if event.engaged else "info")
    if isinstance(event, DrawdownEvent):
        return Alert("drawdown", f"drawdown {event.level}",
                     f"drawdown {event.drawdown:.2%} from peak {event.peak:,.2f}, NAV "
                     f"{event.nav:,.2f}, budget scale {event.budget_scale:g}",
                     key=f"drawdown:{event.level}",
                     severity="failure" if event.level == "halt" else "warning")
    if isinstance(event, OverlayEvent):
        if event.kind != "model_drawdown":
            return None  # the vol scale and Kelly caps move routinely
        # One model's own drawdown: the portfolio trades on, so never a "failure".
        return Alert("drawdown", f"model {event.model} drawdown {event.level}",
                     f"{event.detail}; the model's budget multiplier is now {event.value:g}",
                     key=f"model_drawdown:{event.model}:{event.level}",
                     severity="info" if event.level == "restore" else "warning")
    if isinstance(event, GatewayHealth):
        where = f"{event.gateway}/{event.stream}" if event.stream else event.gateway
        state = str(event.state)
        return Alert("gateway_health", f"gateway {where} {state}", event.reason or state,
                     key=f"health:{where}:{state}",
                     severity="warning" if state in ("degraded", "disconnected") else "info")
    return None


def feed_stale_alert(instrument: str, last_bar: str, silent_s: float) -> Alert:
    return Alert("feed_stale", f"feed {instrument} stale",
                 f"no bar for {silent_s:.1f}s (last bar {last_bar}); orders that grow exposure "
                 f"on {instrument} are rejected until one arrives",
                 key=f"stale:{instrument}", severity="warning")


def reconcile_alert(gateway: str, problems: str) -> Alert:
    return Alert("reconcile", f"reconciliation mismatch on {gateway}", problems,
                 key=f"reconcile:{gateway}", severity="warning")


def daemon_alert(what: str, detail: str) -> Alert:
    """``what``: started | stopped | failed."""
    return Alert("daemon", f"daemon {what}", detail, key=f"daemon:{what}:{detail}",
                 severity="failure" if what == "failed" else "info")


# -- policy: aggregation, deduplication, rate limit ---------------------------------------
@dataclass
class AlertPolicy:
    """Decides what is sent; time is passed in, so the rules are testable without waiting."""

    dedupe_seconds: float = 300.0
    max_per_minute: int = 20
    aggregate_fills: bool = True
    aggregate_seconds: float = 60.0
    dropped: int = 0  # rate-limited or duplicate
    _last_sent: dict[str, float] = field(default_factory=dict)
    _sent: deque[float] = field(default_factory=deque)
    _fills: list[Alert] = field(default_factory=list)
    _fills_since: float | None = None

    def offer(self, alert: Alert, now: float) -> list[Alert]:
        """What to send now because ``alert`` arrived (fills may wait for their digest)."""
        if alert.kind == "fill" and self.aggregate_fills:
            if self._fills_since is None:
                self._fills_since = now
            self._fills.append(alert)
            return self.due(now)
        # The fills before a start/stop message are told before it.
        first = self.due(now, flush=True) if alert.kind == "daemon" else []
        return first + [a for a in [alert] if self._admit(a, now)]

    def due(self, now: float, *, flush: bool = False) -> list[Alert]:
        """The fill digest once its window has passed (or at once with ``flush``)."""
        if not self._fills or self._fills_since is None:
            return []
        if not flush and now - self._fills_since < self.aggregate_seconds:
            return []
        fills, self._fills, self._fills_since = self._fills, [], None
        digest = fills[0] if len(fills) == 1 else Alert(
            "fill", f"{len(fills)} fills", "\n".join(f.body for f in fills),
            key="fills:" + fills[0].key + ":" + fills[-1].key)
        return [digest] if self._admit(digest, now) else []

    def _admit(self, alert: Alert, now: float) -> bool:
        last = self._last_sent.get(alert.key)
        if last is not None and now - last < self.dedupe_seconds:
            self.dropped += 1
            return False
        while self._sent and now - self._sent[0] >= 60.0:
            self._sent.popleft()
        if len(self._sent) >= self.max_per_minute:
            self.dropped += 1
            return False
        self._sent.append(now)
        self._last_sent[alert.key] = now
        return True


# -- channels ------------------------------------------------------------------------------
def read_urls(env_name: str, path: Path | None,
              environ: dict[str, str] | None = None) -> list[str]:
    """Channel URLs from the env var (whitespace or comma separated), the file and the
    systemd credential ``alert_urls``; blank lines and ``#`` comments are skipped."""
    env = os.environ if environ is None else environ
    texts = [env.get(env_name, "")]
    files = [path] if path is not None else []
    if env.get("CREDENTIALS_DIRECTORY"):
        files.append(Path(env["CREDENTIALS_DIRECTORY"]) / CREDENTIAL_NAME)
    for f in files:
        if f.is_file():
            texts.append(f.read_text())
    urls: list[str] = []
    for text in texts:
        for line in text.splitlines():
            if line.strip().startswith("#"):
                continue
            for part in line.replace(",", " ").split():
                if part not in urls:
                    urls.append(part)
    return urls


def url_secrets(url: str) -> list[str]:
    """The parts of a channel URL to mask: all of it, its password, path tokens, query values."""
    out = [url]
    parts = urlsplit(url)
    if parts.password:
        out.append(unquote(parts.password))
    if parts.username and parts.scheme in ("tgram", "tgrams"):
        out.append(parts.username)  # tgram://<bot token>/<chat>
    if parts.scheme.startswith("tgram") and parts.hostname:
        # the bot token sits where a host would be: tgram://123:ABC/chat
        out.append(parts.netloc.split("@")[-1])
    for seg in parts.path.split("/"):
        if len(seg) >= 12:  # webhook paths carry tokens (…/hooks/<token>)
            out.append(unquote(seg))
    out += [unquote(v) for _, v in parse_qsl(parts.query) if len(v) >= 8]
    return out


class AppriseChannel:
    """One apprise URL; ``send`` returns whether it accepted the message.

    One object per URL, so a retry after one channel failed does not repeat the
    message on the channels that already took it.
    """

    def __init__(self, url: str) -> None:
        import apprise

        self.scheme = urlsplit(url).scheme or "?"
        self._apprise = apprise.Apprise()
        if not self._apprise.add(url):
            # The URL itself is a secret: name its scheme only.
            raise ValueError(f"alerts: unusable channel URL with scheme {self.scheme}://")

    def send(self, alert: Alert) -> bool:
        import apprise

        kind = {"warning": apprise.NotifyType.WARNING, "failure": apprise.NotifyType.FAILURE
                }.get(alert.severity, apprise.NotifyType.INFO)
        return bool(self._apprise.notify(title=alert.title, body=alert.body, notify_type=kind))


# -- the sender ----------------------------------------------------------------------------
class AlertSender:
    """Queue + worker thread: ``submit`` never blocks; sending happens on the worker."""

    def __init__(self, channels: Iterable[Any], policy: AlertPolicy, *, kinds: Iterable[str],
                 name: str = "", retries: int = 3, backoff: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.channels = list(channels)
        self.policy = policy
        self.kinds = set(kinds)
        self.prefix = f"[trader {name}] " if name else "[trader] "
        self.retries = retries
        self.backoff = backoff
        self.clock = clock
        self.sent = 0
        self.failed = 0
        self.overflow = 0
        self._queue: queue.Queue[Alert | None] = queue.Queue(QUEUE_SIZE)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name="alerts", daemon=True)
        self._thread.start()

    # called on the kernel's loop: must stay cheap
    def submit(self, alert: Alert | None) -> None:
        if alert is None or alert.kind not in self.kinds:
            return
        try:
            self._queue.put_nowait(alert)
        except queue.Full:
            self.overflow += 1

    def on_event(self, event: Any) -> None:
        """A bus handler: the event's alert, if it raises one, goes on the queue."""
        self.submit(alert_for(event))

    def attach(self, bus: Any) -> None:
        for kind in (Fill, OrderRiskEvent, TradingStateChanged, KillSwitchChanged,
                     DrawdownEvent, OverlayEvent, GatewayHealth):
            bus.subscribe(kind, self.on_event)

    def close(self, timeout: float = 10.0) -> None:
        """Send what is pending (the fill digest too) within ``timeout``, then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        self._stopping.set()
        self._thread.join(1.0)

    # the worker
    def _run(self) -> None:
        while True:
            try:
                alert = self._queue.get(timeout=0.25)
            except queue.Empty:
                for a in self.policy.due(self.clock()):
                    self._send(a)
                continue
            if alert is None:
                for a in self.policy.due(self.clock(), flush=True):
                    self._send(a)
                return
            for a in self.policy.offer(alert, self.clock()):
                self._send(a)

    def _send(self, alert: Alert) -> None:
        mask = redactor().text
        masked = Alert(alert.kind, mask(self.prefix + alert.title), mask(alert.body), alert.key,
                       alert.severity)
        for channel in self.channels:
            self._deliver(channel, masked)

    def _deliver(self, channel: Any, alert: Alert) -> None:
        """One channel, with retries and exponential backoff; counts sent and failed."""
        attempt = 0
        for attempt in range(self.retries + 1):
            try:
                if channel.send(alert):
                    self.sent += 1
                    return
            except Exception as exc:  # a channel's bug must not end the worker
                log.warning("alert_send_error", kind=alert.kind, error=str(exc))
            if attempt == self.retries or self._stopping.wait(self.backoff * 2 ** attempt):
                break
        self.failed += 1
        log.warning("alert_not_sent", kind=alert.kind, title=alert.title,
                    channel=getattr(channel, "scheme", "?"), attempts=attempt + 1)


def start_alerts(cfg: Any, name: str = "", environ: dict[str, str] | None = None
                 ) -> AlertSender | None:
    """The daemon's sender for ``cfg`` (an ``AlertsConfig``), or None without channels."""
    urls = read_urls(cfg.urls_env, cfg.urls_file, environ)
    if not urls:
        return None
    red = redactor()
    for url in urls:
        red.add(url_secrets(url))
    policy = AlertPolicy(dedupe_seconds=cfg.dedupe_seconds, max_per_minute=cfg.max_per_minute,
                         aggregate_fills=cfg.fills == "aggregate",
                         aggregate_seconds=cfg.aggregate_seconds)
    sender = AlertSender([AppriseChannel(u) for u in urls], policy, kinds=cfg.events, name=name,
                         retries=cfg.retries)
    log.info("alerts_enabled", channels=[urlsplit(u).scheme for u in urls],
             events=list(cfg.events))
    return sender
