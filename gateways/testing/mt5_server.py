"""The MT5 stand-in's server: an rpyc classic server on loopback whose ``MetaTrader5`` is scripted.

Run as ``python -m gateways.testing.mt5_server``: it installs
``gateways.testing.mt5_terminal`` as the ``MetaTrader5`` module, serves
``SlaveService`` from a ``ThreadedServer`` bound to 127.0.0.1 on an ephemeral
port (what ``python -m mt5linux`` / ``rpyc_classic`` runs next to a real
terminal), and prints the port on its first line of output.  ``Mt5Server``
starts it as a child process for tests and hands out a control connection.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def serve() -> None:
    """Serve the stand-in until killed (the child process's main)."""
    from rpyc.core import SlaveService
    from rpyc.utils.server import ThreadedServer

    from gateways.testing import mt5_terminal

    sys.modules["MetaTrader5"] = mt5_terminal

    class TerminalService(SlaveService):
        """The classic service, remembering each connection so the terminal can cut it."""

        def on_connect(self, conn: Any) -> None:
            super().on_connect(conn)
            mt5_terminal._SERVER_CONNECTIONS[threading.get_ident()] = conn

        def on_disconnect(self, conn: Any) -> None:
            mt5_terminal._SERVER_CONNECTIONS.pop(threading.get_ident(), None)

    server = ThreadedServer(TerminalService, hostname="127.0.0.1", port=0, reuse_addr=True)
    server._listen()  # listening before the port is announced (start() would do it later)
    print(server.port, flush=True)
    server.start()


class Mt5Server:
    """The stand-in server as a child process, plus a control connection to its terminal."""

    _shared: Mt5Server | None = None

    @classmethod
    def shared(cls) -> Mt5Server:
        """One server for the whole test process (each harness resets its terminal):
        spares a child process start per test.  Closed when the process exits."""
        if cls._shared is None or cls._shared.proc.poll() is not None:
            import atexit

            cls._shared = cls()
            atexit.register(cls._shared.close)
        return cls._shared

    def __init__(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(REPO)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", "from gateways.testing.mt5_server import serve; serve()"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=str(REPO),
            text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip().isdigit():
            self.proc.kill()
            raise RuntimeError(f"MT5 stand-in server did not start: {line!r}")
        self.host = "127.0.0.1"
        self.port = int(line)
        import rpyc

        self._ctl = rpyc.classic.connect(self.host, self.port)
        self._ctl._config["sync_request_timeout"] = 30
        self.terminal = self._ctl.modules["MetaTrader5"]

    def control(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Call a test control (``_set_rates``, ``_fill``, ...) and copy its answer."""
        from rpyc.utils.classic import obtain

        return obtain(getattr(self.terminal, fn)(*args, **kwargs))

    def close(self) -> None:
        """Stop the server process."""
        try:
            self._ctl.close()
        except Exception:  # noqa: BLE001 - the process is going anyway
            pass
        self.proc.kill()
        self.proc.wait(timeout=5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
