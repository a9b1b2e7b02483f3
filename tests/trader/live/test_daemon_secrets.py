"""No secret from the environment reaches a log line, even inside an exception's text."""

from __future__ import annotations

import io
import json
import logging
import sys
import threading

import pytest
import structlog
from daemon_harness import log_lines, start_daemon, write_config

from trader.core.logging import MASK, Redactor, configure_logging, secret_values

SECRET = "sk-live-9f8e7d6c5b4a39281706"
TOKEN = "tok_Zq81mNn0pX7rLs2"
DB_PASSWORD = "hunter2-but-longer"
ENV = {
    "BINANCE_API_SECRET": SECRET,
    "ALPACA_TOKEN": TOKEN,
    "TRADER_DB_URL": f"postgresql://trader:{DB_PASSWORD}@127.0.0.1:5432/trader",
    "HOME": "/home/someone",  # not a secret: must stay readable
}


@pytest.fixture(autouse=True)
def _restore_logging():
    """configure_logging changes process-wide state: put it back for the other tests."""
    saved = structlog.get_config()
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    hooks = sys.excepthook, threading.excepthook
    yield
    structlog.configure(**saved)
    root.handlers[:] = handlers
    root.setLevel(level)
    sys.excepthook, threading.excepthook = hooks


def _capture():
    out = io.StringIO()
    configure_logging("debug", stream=out, environ=ENV)
    return out


def test_secret_values_come_from_secret_named_vars_and_url_passwords():
    values = secret_values(ENV, credentials_dir="")
    assert SECRET in values and TOKEN in values and DB_PASSWORD in values
    assert "/home/someone" not in values


def test_exception_text_and_traceback_are_masked():
    out = _capture()
    log = structlog.get_logger("t")
    try:
        raise ConnectionError(f"401 from https://api.example.com?signature=x&key={SECRET}")
    except ConnectionError:
        log.exception("gateway_failed", detail=f"token {TOKEN} rejected")
    text = out.getvalue()
    assert SECRET not in text and TOKEN not in text
    line = json.loads(text.strip().splitlines()[-1])
    assert "Traceback" in line["exception"] and MASK in line["exception"]
    assert line["detail"] == f"token {MASK} rejected"


def test_secret_named_keys_and_nested_values_are_masked():
    out = _capture()
    structlog.get_logger("t").info(
        "connect", api_key="AKIA0000", password="pw-123456",
        headers={"Authorization": "Bearer abcdefghijklmnop", "X-Other": f"x{DB_PASSWORD}y"},
        args=[f"--secret={SECRET}"], home="/home/someone",
    )
    text = out.getvalue()
    for s in ("AKIA0000", "pw-123456", "abcdefghijklmnop", DB_PASSWORD, SECRET):
        assert s not in text
    line = json.loads(text)
    assert line["api_key"] == MASK and line["password"] == MASK
    assert line["home"] == "/home/someone"


def test_stdlib_logging_and_free_text_are_masked():
    out = _capture()
    logging.getLogger("aiohttp.client").error("request failed: password=%s url=%s",
                                              "s3cr3t-value", ENV["TRADER_DB_URL"])
    text = out.getvalue()
    assert "s3cr3t-value" not in text and DB_PASSWORD not in text
    assert json.loads(text)["logger"] == "aiohttp.client"


def test_redactor_masks_json_escaped_forms():
    r = Redactor(['ab"cd\\ef'])
    assert 'ab"cd\\ef' not in r.text(json.dumps({"x": 'ab"cd\\ef'}))


def test_daemon_never_logs_a_secret(tmp_path):
    # The secret is the config's name (logged at start) and part of the data directory,
    # which cannot be used because a file is in the way: the failure's message carries the
    # secret, on the log and on stderr.
    blocker = tmp_path / f"dir-{SECRET}"
    blocker.write_text("not a directory")
    cfg = write_config(tmp_path, name=f"cfg-{TOKEN}", register=False,
                       daemon={"data_dir": str(blocker / "data")})
    stderr = tmp_path / "stderr.txt"
    proc, log_path = start_daemon(cfg, env=ENV, extra_args=["--create-data-dir"],
                                  stderr_path=stderr)
    code = proc.wait(timeout=30)
    raw = log_path.read_text()
    assert code == 1
    assert SECRET not in raw and TOKEN not in raw and DB_PASSWORD not in raw
    # The operator's one line on stderr names the failure, masked too.
    said = stderr.read_text()
    assert said.startswith("error: start-up failed: ") and "Traceback" not in said
    assert SECRET not in said and MASK in said
    lines = log_lines(log_path)  # every line is JSON: nothing bypassed the logger
    failed = [x for x in lines if x["event"] == "daemon_start_failed"]
    assert failed and "Traceback" in failed[0]["exception"] and MASK in failed[0]["exception"]
    assert any(MASK in str(x.get("config", "")) for x in lines)
