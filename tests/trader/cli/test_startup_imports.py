"""What each command loads before it does its work: start-up stays fast by loading less.

The time itself is measured by ``bench/startup.py``; these tests pin the cause, in
child processes: the modules in ``sys.modules`` when ``trader status`` has printed,
when a backtest's kernel takes its first bar and when the paper daemon says READY.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from daemon_harness import write_config

# Brokers, model libraries, reports and tracking: none is needed to start any of these.
NEVER_AT_START = {"ccxt", "alpaca", "ib_async", "rpyc", "mt5linux", "xgboost", "optuna",
                  "mlflow", "plotly", "apprise", "pandas"}
# A database already at head is checked with one query: Alembic loads only to migrate.
MIGRATION_ONLY = {"alembic"}

# Runs the CLI in this process; prints sys.modules (as JSON, on stderr) at a point.
_PROBE = """
import json, sys
point = sys.argv.pop(1)

def dump():
    print("MODULES " + json.dumps(sorted(sys.modules)), file=sys.stderr, flush=True)

if point == "first_bar":
    import trader.core.kernel as kernel
    run = kernel.Kernel.run

    def first_bar(self, events, progress=None):
        def marked():
            it = iter(events)
            for bar in it:
                dump()
                yield bar
                break
            yield from it
        return run(self, marked(), progress)

    kernel.Kernel.run = first_bar
elif point == "ready":
    import trader.live.notify as notify
    ready = notify.Notifier.ready

    def on_ready(self, *args, **kw):
        dump()
        return ready(self, *args, **kw)

    notify.Notifier.ready = on_ready
sys.argv = ["trader", *sys.argv[1:]]
from trader.cli import main
try:
    main()
finally:
    if point == "exit":
        dump()
"""


def _modules(point: str, *args: str, cwd: Path | None = None) -> tuple[set[str], str]:
    res = subprocess.run([sys.executable, "-c", _PROBE, point, *args], capture_output=True,
                         text=True, timeout=120, cwd=cwd)
    dumps = [line for line in res.stderr.splitlines() if line.startswith("MODULES ")]
    assert res.returncode == 0 and dumps, res.stderr[-3000:] + res.stdout[-2000:]
    return set(json.loads(dumps[0].removeprefix("MODULES "))), res.stdout


def _present(modules: set[str], names: set[str]) -> set[str]:
    return {n for n in names if n in modules}


@pytest.mark.parametrize("args", [["--help"], ["backtest", "--help"], ["status", "--help"],
                                  ["kill", "--help"], ["models", "--help"],
                                  ["optimize", "--help"], ["web", "--help"]])
def test_help_loads_no_store_no_data_no_logging(args: list[str]) -> None:
    modules, out = _modules("exit", *args)
    assert "Usage" in out
    assert "typer" in modules  # the listing is what it claims to be
    heavy = NEVER_AT_START | MIGRATION_ONLY | {"sqlalchemy", "pyarrow", "numpy", "structlog"}
    assert _present(modules, heavy) == set()


# The modules of the commands: each loads when its command is looked up, not with the CLI.
COMMAND_MODULES = {"trader.cli.backtest", "trader.cli.run", "trader.cli.kill", "trader.cli.web",
                   "trader.cli.db", "trader.cli.models", "trader.cli.train", "trader.cli.data",
                   "trader.cli.optimize"}


def test_importing_the_cli_loads_no_command_module():
    res = subprocess.run([sys.executable, "-c", "import json, sys, trader.cli; "
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, timeout=60, check=True)
    modules = set(json.loads(res.stdout))
    assert "trader.cli.root" in modules  # the listing is what it claims to be
    assert _present(modules, COMMAND_MODULES | {"trader.core.events", "models.gates",
                                                "trader.engine.config"}) == set()


def test_help_lists_every_command_in_order():
    _, out = _modules("exit", "--help")
    panel = out[out.index("Commands"):]
    listed = re.findall(r"^│ ([a-z]+) ", panel, flags=re.M)
    assert listed == ["backtest", "run", "status", "kill", "web", "db", "models", "data",
                      "optimize"]


def test_status_reads_a_sqlite_store_without_sqlalchemy_logging_or_data_libraries(tmp_path):
    from trader.live.status import Snapshot, write_snapshot

    cfg = write_config(tmp_path, register=True)  # creates the store at head, stages set
    data_dir = tmp_path / "data"
    write_snapshot(data_dir, Snapshot("paper", "stopped", 1, "paper-1-x", "test-session", 1,
                                      1.0))
    modules, out = _modules("exit", "status", "--config", str(cfg), "--json")
    snap = json.loads(out)
    assert snap["store"]["stages"] == {"btc_fast": "paper", "btc_4h": "paper",
                                       "spy_daily": "paper"}  # it did read the store
    assert "trader.store.views" in modules  # the listing is what it claims to be
    # A SQLite store is read with the standard library: SQLAlchemy and the sqlmodel
    # tables are most of what a status took before.
    assert _present(modules, NEVER_AT_START | MIGRATION_ONLY | {
        "numpy", "pyarrow", "structlog", "pygments", "risk.engine", "models.xgboost",
        "sqlalchemy", "sqlmodel", "trader.store.schema"}) == set()
    # Of the commands' modules, only its own: the others are neither imported nor read.
    assert _present(modules, COMMAND_MODULES) == {"trader.cli.run"}


def test_status_reads_a_postgresql_store_without_sqlalchemy(tmp_path, monkeypatch):
    from pg_server import pg_schema_url

    from trader.live.status import Snapshot, write_snapshot

    for url in pg_schema_url():  # a schema of its own, dropped afterwards
        monkeypatch.setenv("TRADER_DATABASE_URL", url)  # for the set-up and the command
        cfg = write_config(tmp_path, register=True)  # the store at head, stages set
        write_snapshot(tmp_path / "data", Snapshot("paper", "stopped", 1, "paper-1-x",
                                                   "test-session", 1, 1.0))
        modules, out = _modules("exit", "status", "--config", str(cfg), "--json")
        store = json.loads(out)["store"]
        assert store["database"] == url and "error" not in store
        assert store["stages"] == {"btc_fast": "paper", "btc_4h": "paper", "spy_daily": "paper"}
        assert "psycopg" in modules  # the listing is what it claims to be
        # psycopg alone: no SQLAlchemy, no tables, no logger (as for a SQLite store).
        assert _present(modules, NEVER_AT_START | MIGRATION_ONLY | {
            "numpy", "pyarrow", "structlog", "sqlalchemy", "sqlmodel",
            "trader.store.schema"}) == set()


def test_status_names_an_unreachable_postgresql_store_without_its_password(tmp_path,
                                                                          monkeypatch):
    import socket

    from trader.live.status import Snapshot, write_snapshot

    cfg = write_config(tmp_path, register=False)
    write_snapshot(tmp_path / "data", Snapshot("paper", "stopped", 1, "paper-1-x",
                                               "test-session", 1, 1.0))
    with socket.socket() as sock:  # a port nothing listens on: refused at once
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    monkeypatch.setenv("TRADER_DATABASE_URL",
                       f"postgresql+psycopg://bob:s3cr3t-pw@127.0.0.1:{port}/trader")
    _, out = _modules("exit", "status", "--config", str(cfg), "--json")
    snap = json.loads(out)
    assert snap["store"]["database"] == f"postgresql+psycopg://bob:***@127.0.0.1:{port}/trader"
    assert str(port) in snap["store"]["error"]  # the snapshot's part is still shown
    assert snap["mode"] == "paper" and "s3cr3t-pw" not in out


def test_backtest_first_bar_comes_before_reports_and_migrations(tmp_path):
    cfg = write_config(tmp_path, register=True)  # the store exists and is at head
    modules, _ = _modules("first_bar", "backtest", str(cfg), "--no-progress", "--out",
                          str(tmp_path / "run"))
    assert {"trader.core.kernel", "pyarrow", "sqlalchemy"} <= modules
    assert _present(modules, NEVER_AT_START | MIGRATION_ONLY | {"pyarrow.compute"}) == set()


def test_paper_daemon_is_ready_without_brokers_reports_or_migrations(tmp_path):
    cfg = write_config(tmp_path, register=True)
    modules, _ = _modules("ready", "run", "--config", str(cfg), "--mode", "paper",
                          cwd=tmp_path)
    assert {"trader.live.daemon", "gateways.replay_live"} <= modules
    assert _present(modules, NEVER_AT_START | MIGRATION_ONLY | {"pyarrow.compute"}) == set()


def test_opening_the_store_builds_no_row_validator():
    # The store goes through Core on each table class's __table__; the classes' pydantic
    # validators (a share of the store's import time) are left to be built on first use.
    code = ("import json, trader.store, trader.store.schema as s; print(json.dumps("
            "{c.__name__: c.__pydantic_complete__ for c in vars(s).values() "
            "if isinstance(c, type) and getattr(c, '__table__', None) is not None}))")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True)
    built = json.loads(res.stdout)
    assert len(built) == 15 and not any(built.values()), built
