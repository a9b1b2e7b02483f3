"""``trader web``: a read-only dashboard of a running paper daemon, in headless Chromium."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from browser import browser_page, save_screenshot
from daemon_harness import run_cli, start_daemon, write_config
from receivers import wait_until

from trader.web.server import check_bind, is_loopback


def start_web(*args: str, env: dict[str, str] | None = None) -> tuple[subprocess.Popen, str]:
    """``trader web ... --port 0`` as a child; returns it and the base URL it printed."""
    full = {**os.environ, "PYTHONUNBUFFERED": "1", "NO_COLOR": "1", **(env or {})}
    proc = subprocess.Popen([sys.executable, "-m", "trader.cli", "web", *args, "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=full)
    line = proc.stdout.readline()
    m = re.search(r"on (http://127\.0\.0\.1:\d+/)", line)
    if not m:
        proc.kill()
        raise AssertionError(line + proc.stdout.read())
    return proc, m.group(1)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()


def _status(data_dir: Path) -> dict:
    return json.loads((data_dir / "status.json").read_text())


def test_the_page_shows_the_running_daemon_and_follows_it(tmp_path) -> None:
    # Slow enough that fills keep coming while the page watches, then it idles.
    cfg = write_config(tmp_path, speed=100_000, exit_at_end=False, start="2018-09-05")
    data_dir = tmp_path / "data"
    daemon, log_path = start_daemon(cfg)
    web = None
    try:
        wait_until(lambda: (data_dir / "status.json").exists()
                   and _status(data_dir).get("state") == "trading", 60, "the daemon trading")
        web, url = start_web("--config", str(cfg))
        with browser_page() as (page, blocked):
            page.goto(url)
            page.wait_for_selector("#nav")
            first = int(page.locator("#fill-count").inner_text())
            # Live: the page's fill count grows as the daemon fills.
            page.wait_for_function(
                f"Number(document.getElementById('fill-count').textContent) > {first}",
                timeout=60_000)
            assert page.locator("#mode").inner_text() == "paper"
            assert page.locator("#state").inner_text() == "trading"

            def agrees() -> bool:
                # the page reads the store and status.json, which the daemon writes one after
                # the other: wait until both say the same NAV and the same fills
                snap = _status(data_dir)
                shown = page.locator("#nav").inner_text().replace(",", "")
                rows = page.locator("#fills tr").count() - 1
                return (abs(float(shown) - snap["nav"]) < 0.006
                        and page.locator("#fill-count").inner_text() == str(snap["fills"])
                        and rows == min(snap["fills"], 50))

            wait_until(agrees, 60, "the page's NAV and fills to equal status.json's")
            snap = _status(data_dir)
            models = page.locator("#models").inner_text()
            assert all(m in models for m in ("btc_fast", "btc_4h", "spy_daily"))
            assert "paper" in page.locator("#sessions").inner_text()
            for inst in snap["positions"]:
                assert inst in page.locator("#positions").inner_text()
            assert "BTCUSD" in page.locator("#feeds").inner_text()
            points = page.evaluate("document.getElementById('navline').getAttribute('points')")
            assert len(points.split()) >= 2  # the equity line is drawn
            save_screenshot(page, "web_dashboard")
        assert blocked == []
    finally:
        if web is not None:
            stop(web)
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=30)
    assert daemon.returncode == 0, log_path.read_text()[-3000:]


def test_a_token_guards_the_dashboard_and_open_binds_need_one(tmp_path) -> None:
    (tmp_path / "d").mkdir()
    res = run_cli("web", "--data-dir", str(tmp_path / "d"), "--host", "0.0.0.0")
    assert res.returncode == 2
    assert "TRADER_WEB_TOKEN" in res.stderr and "Traceback" not in res.stderr
    web, url = start_web("--data-dir", str(tmp_path / "d"),
                         env={"TRADER_WEB_TOKEN": "let-me-in-42"})
    try:
        with pytest.raises(urllib.error.HTTPError) as denied:
            urllib.request.urlopen(url + "api/state", timeout=10)
        assert denied.value.code == 401
        req = urllib.request.Request(url + "api/state",
                                     headers={"Authorization": "Bearer let-me-in-42"})
        body = json.loads(urllib.request.urlopen(req, timeout=10).read())
        assert body["status"]["state"] == "none"  # no daemon ever ran here
        page = urllib.request.urlopen(url + "?token=let-me-in-42", timeout=10).read().decode()
        assert "<script>" in page and "src=" not in page  # nothing loaded from elsewhere
    finally:
        stop(web)


def test_loopback_rule() -> None:
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("example.org")
    check_bind("127.0.0.1", None)
    check_bind("0.0.0.0", "t")
    with pytest.raises(Exception, match="TRADER_WEB_TOKEN"):
        check_bind("192.168.1.5", None)
