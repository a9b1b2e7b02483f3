"""The CLI's finish: --version, tidy help, one-paragraph failures, progress, unrecorded runs."""

from __future__ import annotations

import io
import json
import logging
import re
import sys
from importlib.metadata import version

import pytest
import structlog
from daemon_harness import run_cli, write_config
from rich.console import Console

UNREACHABLE = "postgresql+psycopg://x@127.0.0.1:1/db"
COMMANDS = [[], ["backtest"], ["run"], ["status"], ["kill"], ["db"], ["db", "current"],
            ["db", "upgrade"], ["models"], ["models", "list"], ["models", "promote"],
            ["models", "demote"], ["models", "history"]]


@pytest.fixture(autouse=True)
def _no_env_overrides(monkeypatch):
    for name in ("TRADER_DATA_DIR", "TRADER_DATABASE_URL", "TRADER_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)


def test_version_is_the_installed_distributions() -> None:
    res = run_cli("--version")
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == f"trader {version('trader-daemon')}"


def _help(*args: str) -> str:
    from typer.testing import CliRunner

    from trader.cli import app

    res = CliRunner().invoke(app, [*args, "--help"], env={"COLUMNS": "200", "NO_COLOR": "1"},
                             terminal_width=200)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "root")
def test_help_shows_no_bool_placeholder(args) -> None:
    text = _help(*args)
    assert "Usage" in text and "--help" in text
    assert "<bool>" not in text, text


def test_help_shows_the_choices_of_enumerations() -> None:
    run = _help("run")
    assert re.search(r"--mode\s+<paper\|live>", run), run
    assert re.search(r"--confirm\s{2,}required", run), run  # a flag: no value shown
    bt = _help("backtest")
    assert "<debug|info|warning|error>" in bt and "<path>" in bt  # value placeholders stay
    root = _help()
    assert "<auto|json|console>" in root and "--debug" in root and "--version" in root


def test_a_wrong_choice_names_the_choices() -> None:
    res = run_cli("run", "--config", "x.yaml", "--mode", "demo")
    assert res.returncode == 2
    assert "paper" in res.stderr and "live" in res.stderr and "Traceback" not in res.stderr


def _fail_status(monkeypatch: pytest.MonkeyPatch, tmp_path, *argv: str) -> tuple[int, str]:
    """Run ``trader ... status`` in-process with a reader that fails unexpectedly."""
    import trader.cli as cli
    import trader.live.status as status_mod
    from trader.cli.root import RunState

    def boom(_d):
        raise RuntimeError("disk on fire\nsecond line token=abcdef123456")

    monkeypatch.setattr(status_mod, "read_snapshot", boom)
    monkeypatch.setattr(RunState, "debug", False)
    monkeypatch.setattr(sys, "argv", ["trader", *argv, "status", "--data-dir", str(tmp_path)])
    buf = io.StringIO()
    # a console of its own: patching the shared one's ``file`` would pin it, on undo, to
    # whatever stream pytest had in place, and later tests would capture nothing
    monkeypatch.setattr(cli, "err_console", Console(file=buf, stderr=True))
    with pytest.raises(SystemExit) as exc:
        cli.main()
    return exc.value.code, buf.getvalue()


def test_an_unexpected_failure_is_one_paragraph(monkeypatch, tmp_path) -> None:
    code, err = _fail_status(monkeypatch, tmp_path)
    assert code == 1
    assert "Traceback" not in err
    text = " ".join(err.split())
    assert text.startswith("error: RuntimeError: disk on fire second line")
    assert "abcdef123456" not in text  # masked like a log line
    assert "--debug" in text


def test_debug_shows_the_traceback(monkeypatch, tmp_path) -> None:
    with pytest.raises(RuntimeError, match="disk on fire"):
        _fail_status(monkeypatch, tmp_path, "--debug")


def test_a_backtest_writes_its_reports_when_the_store_is_down(tmp_path) -> None:
    cfg = write_config(tmp_path, register=False, data_start="2018-08-01")
    out = tmp_path / "run"
    res = run_cli("backtest", str(cfg), "--out", str(out), "--no-progress",
                  env={"TRADER_DATABASE_URL": UNREACHABLE, "COLUMNS": "200"})
    assert res.returncode == 1
    for name in ("metrics.json", "trades.csv", "equity.csv", "report.html"):
        assert (out / name).stat().st_size > 0, name
    assert "Backtest summary" in res.stdout
    err = " ".join(res.stderr.split())
    assert "NOT recorded" in err and "127.0.0.1:1/db" in err and str(out) in err
    assert "Traceback" not in res.stderr
    # --store cannot run without its database: refused before anything is written.
    res = run_cli("backtest", str(cfg), "--out", str(tmp_path / "stored"), "--store",
                  env={"TRADER_DATABASE_URL": UNREACHABLE})
    assert res.returncode == 2 and not (tmp_path / "stored").exists()


def test_counted_feed_reports_progress_and_keeps_the_feeds_attributes() -> None:
    from trader.cli.progress import EVERY, CountedFeed

    class Feed(list):
        stats = {"SPY": "seen"}

    seen: list[int] = []
    feed = CountedFeed(Feed(range(2 * EVERY + 5)), seen.append)
    assert list(feed) == list(range(2 * EVERY + 5))
    assert seen == [EVERY, 2 * EVERY, 2 * EVERY + 5]
    assert feed.stats == {"SPY": "seen"}


def test_progress_bar_shows_total_and_eta() -> None:
    from rich.console import Console

    from trader.cli.progress import bar_progress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120, color_system=None)
    with bar_progress(console, "replay", 1000, "bars") as advance:
        advance(500)
        console.print(console._live_stack[0].renderable)  # the bar as it stands
    text = out.getvalue()
    assert "500/1000" in text and "bars" in text and "50%" in text and "ETA" in text


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("stream,fmt,kind", [(_Tty, None, "console"), (io.StringIO, None, "json"),
                                             (_Tty, "json", "json"),
                                             (io.StringIO, "console", "console")])
def test_log_format_follows_the_terminal_unless_asked(stream, fmt, kind) -> None:
    from trader.core.logging import configure_logging

    out = stream()
    configure_logging("info", out, environ={"NO_COLOR": "1", "X_TOKEN": "hush-hush-123"},
                      fmt=fmt)
    structlog.get_logger().warning("feed_stale", instrument="SPY", note="hush-hush-123")
    line = out.getvalue().strip()
    assert "hush-hush-123" not in line
    if kind == "json":
        assert json.loads(line)["instrument"] == "SPY"
    else:
        assert not line.startswith("{") and "feed_stale" in line and "instrument=SPY" in line


def test_third_party_loggers_are_held_at_warning() -> None:
    from trader.core.logging import configure_logging

    out = io.StringIO()
    configure_logging("debug", out, environ={}, fmt="json")
    logging.getLogger("alembic.runtime.migration").info("Context impl SQLiteImpl.")
    logging.getLogger("alembic.runtime.migration").warning("a real problem")
    structlog.get_logger().debug("own_debug_line")
    text = out.getvalue()
    assert "SQLiteImpl" not in text
    assert "a real problem" in text and "own_debug_line" in text


def test_the_env_var_chooses_the_format() -> None:
    from trader.core.logging import choose_format

    assert choose_format(_Tty(), environ={"TRADER_LOG_FORMAT": "json"}) == "json"
    assert choose_format(io.StringIO(), environ={"TRADER_LOG_FORMAT": "console"}) == "console"
    assert choose_format(io.StringIO(), environ={}) == "json"
