"""Start-up benchmark: how long the ``trader`` commands take before they do their work.

Run: ``.venv/bin/python bench/startup.py [--rounds N]``.

Each figure is the median over ``--rounds`` fresh processes, timed from the spawn:

* ``trader --help`` and ``trader status`` (on a deployment a paper daemon has run
  on, so the status reads status.json and the store): until the process exits;
  with ``--postgres URL`` also ``trader status`` on such a deployment whose store is
  a fresh schema of that PostgreSQL database (dropped afterwards);
* ``trader backtest config/backtest.yaml``: until the kernel takes its first bar
  (a wrapper process wraps the kernel's source and prints the monotonic clock,
  which is the same clock across processes on Linux);
* ``trader run --config config/paper.yaml --mode paper``: until ``READY=1``
  reaches a ``NOTIFY_SOCKET`` (what systemd waits for), warm-up included.

Baselines measured in the same rounds, so a loaded machine slows them alike: the
interpreter's start (``python -c pass``), ``import trader``, and the libraries a
daemon cannot start without (SQLAlchemy, pyarrow, numpy, pydantic, structlog).
The figures are printed as seconds, as ratios to those baselines and as the CPU
seconds the process had used (which a busy machine inflates far less than the
wall time: on two cores shared with other work, compare those); the issue's
targets (0.5 s for ``--help`` and ``status``, 1 s for the backtest's first bar
and the daemon's READY) are stated with whether this run met them.

Every run uses its own data directories in a temporary folder (``var/`` is not
touched), and bytecode is cached there (``PYTHONPYCACHEPREFIX``, one unmeasured
round first) as on an installed service; ``--no-bytecode-cache`` measures with
the environment's own setting instead (``PYTHONDONTWRITEBYTECODE=1`` compiles
the project's modules at every start).
"""

from __future__ import annotations

import argparse
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
PAPER = ROOT / "config" / "paper.yaml"
BACKTEST = ROOT / "config" / "backtest.yaml"
FLOOR_IMPORTS = "import sqlalchemy, pyarrow.parquet, numpy, pydantic, structlog, yaml, typer"

# Runs `trader` in this process with the kernel's source wrapped: the first bar it
# takes prints the monotonic clock to stderr, then the command goes on as usual.
FIRST_BAR = """
import sys, time
import trader.core.kernel as kernel

_run = kernel.Kernel.run

def run(self, events, progress=None):
    def first_marked():
        it = iter(events)
        for bar in it:
            print(f"FIRST_BAR {time.monotonic()!r} {time.process_time()!r}", file=sys.stderr,
                  flush=True)
            yield bar
            break
        yield from it
    return _run(self, first_marked(), progress)

kernel.Kernel.run = run
sys.argv = ["trader", *sys.argv[1:]]
from trader.cli import main
main()
"""

TARGETS = {"trader --help": 0.5, "trader status": 0.5, "status, PostgreSQL": 0.5,
           "backtest: first bar": 1.0, "daemon: READY": 1.0}


def trader(*args: str) -> list[str]:
    return [PY, "-m", "trader.cli", *args]


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _process_cpu(pid: int) -> float:
    """CPU seconds (user + system) process ``pid`` has used so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def until_exit(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to exit, and the CPU seconds it used (the command must succeed)."""
    cpu0 = _children_cpu()
    t0 = time.monotonic()
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)
    took = time.monotonic() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stderr[-2000:]}")
    return took, _children_cpu() - cpu0


def until_first_bar(data_dir: Path, out: Path, env: dict[str, str]) -> tuple[float, float]:
    """Seconds from spawn to the kernel's first bar of ``trader backtest``, and CPU seconds."""
    t0 = time.monotonic()
    proc = subprocess.run([PY, "-c", FIRST_BAR, "backtest", str(BACKTEST), "--no-progress",
                           "--data-dir", str(data_dir), "--out", str(out)],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    marks = [line.split()[1:] for line in proc.stderr.splitlines()
             if line.startswith("FIRST_BAR ")]
    if proc.returncode != 0 or not marks:
        raise SystemExit(f"the backtest failed or took no bar ({proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    return float(marks[0][0]) - t0, float(marks[0][1])


def until_ready(data_dir: Path, env: dict[str, str],
                timeout: float = 60) -> tuple[float, float]:
    """Seconds from spawn to READY=1 of a paper daemon, and the CPU seconds it had used
    by then; then it is stopped (SIGTERM)."""
    folder = tempfile.mkdtemp(prefix="ntf", dir="/tmp")  # AF_UNIX paths are short
    address = os.path.join(folder, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(timeout)
    log = open(data_dir.parent / "daemon.log", "ab")
    t0 = time.monotonic()
    proc = subprocess.Popen(trader("run", "--config", str(PAPER), "--mode", "paper",
                                   "--data-dir", str(data_dir)),
                            cwd=ROOT, env={**env, "NOTIFY_SOCKET": address},
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        while True:
            try:
                msg = sock.recv(4096).decode()
            except TimeoutError:
                raise SystemExit(f"no READY=1 within {timeout} s; see {log.name}") from None
            if "READY=1" in msg.split("\n"):
                took = time.monotonic() - t0
                cpu = _process_cpu(proc.pid)
                break
    finally:
        proc.send_signal(signal.SIGTERM)
        if proc.wait(timeout=30) != 0:
            raise SystemExit(f"the daemon exited {proc.returncode}; see {log.name}")
        sock.close()
        os.unlink(address)
        os.rmdir(folder)
        log.close()
    return took, cpu


def prepare(tmp: Path, env: dict[str, str]) -> Path:
    """A paper deployment as the README sets one up: a stored run, both models promoted,
    one daemon run (so ``trader status`` has a status file and a store to read)."""
    paper = tmp / "paper"
    until_exit(trader("backtest", str(PAPER), "--no-progress", "--data-dir", str(paper),
                      "--out", str(tmp / "runs" / "paper")), env)
    for model in ("btc_sma", "spy_sma"):
        until_exit(trader("models", "promote", model, "--config", str(PAPER), "--data-dir",
                          str(paper), "--reason", "benchmark", "--operator", "bench",
                          "--force"), env)
    until_ready(paper, env)
    return paper


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rounds", type=int, default=5, help="fresh processes per figure")
    ap.add_argument("--postgres", metavar="URL",
                    help="also time status on a store in a fresh schema of this PostgreSQL "
                         "database (postgresql+psycopg://...)")
    ap.add_argument("--no-bytecode-cache", action="store_true",
                    help="keep the environment's bytecode setting (see the module docstring)")
    args = ap.parse_args()

    pg: AbstractContextManager[str | None] = nullcontext()
    if args.postgres:  # a fresh schema of the database, dropped afterwards
        sys.path.insert(0, str(ROOT))
        from bench.store_writes import pg_schema

        pg = pg_schema(args.postgres)
    with tempfile.TemporaryDirectory(prefix="startup-bench-") as name, pg as pg_url:
        tmp = Path(name)
        env = dict(os.environ)
        for var in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "TRADER_DATA_DIR", "TRADER_DATABASE_URL"):
            env.pop(var, None)
        if not args.no_bytecode_cache:
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            env["PYTHONPYCACHEPREFIX"] = str(tmp / "pycache")
        paper = prepare(tmp, env)  # also the unmeasured round that fills the bytecode cache
        status = trader("status", "--config", str(PAPER), "--data-dir", str(paper))
        measures: dict[str, Callable[[], tuple[float, float]]] = {
            "python -c pass": lambda: until_exit([PY, "-c", "pass"], env),
            "import trader": lambda: until_exit([PY, "-c", "import trader"], env),
            "library floor": lambda: until_exit([PY, "-c", FLOOR_IMPORTS], env),
            "trader --help": lambda: until_exit(trader("--help"), env),
            "trader status": lambda: until_exit(status, env),
            "backtest: first bar": lambda: until_first_bar(tmp / "bt", tmp / "runs" / "bt", env),
            "daemon: READY": lambda: until_ready(paper, env),
        }
        if pg_url is not None:
            pg_env = {**env, "TRADER_DATABASE_URL": pg_url}
            # The data dir holds no SQLite file here, so nothing before the daemon makes
            # it: a deployment's own (systemd's StateDirectory, a Docker volume) exists.
            (tmp / "pg" / "paper").mkdir(parents=True)
            pg_paper = prepare(tmp / "pg", pg_env)
            pg_status = trader("status", "--config", str(PAPER), "--data-dir", str(pg_paper))
            measures["status, PostgreSQL"] = lambda: until_exit(pg_status, pg_env)
        until_first_bar(tmp / "bt", tmp / "runs" / "bt", env)  # its store and bytecode
        times: dict[str, list[float]] = {k: [] for k in measures}
        cpus: dict[str, list[float]] = {k: [] for k in measures}
        for _ in range(args.rounds):  # interleaved: a busy spell slows every figure alike
            for key, measure in measures.items():
                wall, cpu = measure()
                times[key].append(wall)
                cpus[key].append(cpu)

    med = {k: statistics.median(v) for k, v in times.items()}
    cpu_med = {k: statistics.median(v) for k, v in cpus.items()}
    py, imp, floor = med["python -c pass"], med["import trader"], med["library floor"]
    cache = "off (environment)" if args.no_bytecode_cache else "cached"
    print(f"start-up, median of {args.rounds} fresh processes (bytecode {cache})")
    print(f"{'measure':<22}{'seconds':>9}{'x python':>10}{'x import':>10}{'x floor':>9}"
          f"{'cpu s':>8}{'target':>9}  met")
    for key, t in med.items():
        target = TARGETS.get(key)
        verdict = "" if target is None else ("yes" if t <= target else "NO")
        print(f"{key:<22}{t:>9.3f}{t / py:>10.1f}{t / imp:>10.1f}{t / floor:>9.2f}"
              f"{cpu_med[key]:>8.3f}{(f'{target:.1f} s' if target else ''):>9}  {verdict}")
    print("spread (min-max): " + ", ".join(f"{k} {min(v):.3f}-{max(v):.3f}"
                                           for k, v in times.items() if k in TARGETS))


if __name__ == "__main__":
    main()
