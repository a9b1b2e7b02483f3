"""The one thread every MT5 call goes through, and the copy of results into plain values.

Both backends block: the Windows ``MetaTrader5`` package talks IPC to the
terminal, ``mt5linux`` talks rpyc to a server next to it.  ``Mt5Worker`` owns
one connection and one thread; the event loop awaits its calls and never
blocks.  Results are copied at once (``plain_values``): namedtuples become
dicts, tuples lists, numpy records tuples, so no netref outlives its call and
no attribute read crosses the wire later.  With mt5linux the copy runs on the
server (one pickled answer of builtins): its structs cannot be unpickled here.
"""

from __future__ import annotations

import asyncio
import inspect
import pickle
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from gateways.mt5.config import Account
from gateways.mt5.retcodes import AUTH_FAILED

RES_S_OK = 1
# functions whose None with last_error "success" means an empty answer
_LISTS = frozenset({"orders_get", "positions_get", "history_orders_get", "history_deals_get"})


class TerminalError(RuntimeError):
    """An MT5 function failed; ``code``/``text`` are the terminal's ``last_error``."""

    def __init__(self, fn: str, code: int, text: str) -> None:
        super().__init__(f"MT5 {fn} failed: last_error {code} {text!r}")
        self.fn = fn
        self.code = code
        self.text = text


class TerminalLost(ConnectionError):
    """The connection to the terminal (or its rpyc server) is gone, or a call timed out."""

    def __init__(self, fn: str, detail: str, *, timeout: bool = False) -> None:
        super().__init__(f"MT5 {fn}: {detail}")
        self.fn = fn
        self.timeout = timeout


def plain_values(x):  # noqa: ANN001, ANN201 - its source also runs on the rpyc server
    """A deep copy of an MT5 result made of builtins only."""
    if x is None or isinstance(x, (bool, int, float, str, bytes)):
        return x
    if hasattr(x, "_asdict"):
        return {k: plain_values(v) for k, v in x._asdict().items()}
    if hasattr(x, "tolist"):
        return x.tolist()
    if isinstance(x, (tuple, list)):
        return [plain_values(v) for v in x]
    return repr(x)


class Mt5Worker:
    """One MT5 connection served by one dedicated thread."""

    def __init__(self, backend: str, host: str, port: int, timeout_s: float,
                 account: Account, name: str = "mt5") -> None:
        self.backend = backend
        self.host = host
        self.port = port
        self.timeout_s = timeout_s
        self._account = account
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"mt5-{name}")
        self._mt5: Any = None
        self._remote_plain: Any = None
        self.calls = 0

    @property
    def connected(self) -> bool:
        """True while a connection is open (it may still be found dead on the next call)."""
        return self._mt5 is not None

    async def call(self, fn: str, *args: Any, **kwargs: Any) -> Any:
        """Run ``mt5.<fn>(*args, **kwargs)`` on the worker thread; plain values back.

        None from MT5 raises ``TerminalError`` with its ``last_error``; a lost
        connection or a timeout raises ``TerminalLost`` (the next call reconnects).
        """
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, fn, args, kwargs)

    async def open(self) -> None:
        """Connect and log in (raises ``TerminalError`` / ``TerminalLost``)."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._ensure)

    async def close(self) -> None:
        """Drop the connection and stop the thread."""
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._drop)
        self._executor.shutdown(wait=False)

    # -- on the worker thread ---------------------------------------------------------------
    def _ensure(self) -> Any:
        if self._mt5 is not None:
            return self._mt5
        mt5 = self._connect()
        try:
            ok = mt5.initialize(**self._account.initialize_kwargs())
            if not ok:
                code, text = self._last_error(mt5)
                self._drop(mt5)
                if code == AUTH_FAILED:
                    raise TerminalError("initialize", code, "the account credentials were "
                                        f"refused ({text})")
                raise TerminalError("initialize", code, text)
        except TerminalError:
            raise
        except Exception as exc:
            self._drop(mt5)
            raise self._lost("initialize", exc) from None
        self._mt5 = mt5
        return mt5

    def _connect(self) -> Any:
        if self.backend == "metatrader5":
            import MetaTrader5  # Windows only: the terminal runs on this host

            self._remote_plain = None
            return MetaTrader5
        from mt5linux import MetaTrader5 as Client

        try:
            client = Client(host=self.host, port=self.port, timeout=self.timeout_s)
            client.execute(inspect.getsource(plain_values))
            # the copy is pickled on the server: one round trip and bytes back, where
            # rpyc's obtain() would walk the netref with several
            client.execute("import pickle as _pickle\n"
                           "def plain_pickled(x):\n"
                           "    return _pickle.dumps(plain_values(x))")
            self._remote_plain = client.eval("plain_pickled")
        except Exception as exc:
            raise self._lost("connect", exc) from None
        return client

    def _call(self, fn: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        mt5 = self._ensure()
        self.calls += 1
        try:
            raw = getattr(mt5, fn)(*args, **kwargs)
            if raw is None:
                code, text = self._last_error(mt5)
                if code == RES_S_OK and fn in _LISTS:
                    return []  # "nothing found" without an error: an empty list
                raise TerminalError(fn, code, text)
            return self._plain(raw)
        except TerminalError:
            raise
        except Exception as exc:
            lost = self._lost(fn, exc)
            self._drop()
            raise lost from None

    def _plain(self, raw: Any) -> Any:
        if self._remote_plain is not None:
            from rpyc.core.netref import BaseNetref

            if isinstance(raw, BaseNetref):
                # builtins only (plain_values), from the terminal this worker logged in to
                return pickle.loads(self._remote_plain(raw))
        return plain_values(raw)

    def _last_error(self, mt5: Any) -> tuple[int, str]:
        try:
            code, text = self._plain(mt5.last_error())
            return int(code), str(text)
        except Exception as exc:  # noqa: BLE001 - the error itself could not be read
            return -1, f"last_error unreadable: {type(exc).__name__}"

    def _lost(self, fn: str, exc: BaseException) -> TerminalLost:
        timeout = "timeout" in type(exc).__name__.lower() or isinstance(exc, TimeoutError)
        # a remote error of initialize could quote the call, which carries the password
        why = type(exc).__name__ if fn == "initialize" else f"{type(exc).__name__}: {exc}"
        detail = (f"no answer within {self.timeout_s:g} s (IPC timeout)" if timeout
                  else f"connection to the terminal lost ({why})")
        return TerminalLost(fn, detail, timeout=timeout)

    def _drop(self, mt5: Any = None) -> None:
        target = mt5 if mt5 is not None else self._mt5
        self._mt5 = None
        self._remote_plain = None
        if target is None or self.backend == "metatrader5":
            if target is not None:
                try:
                    target.shutdown()
                except Exception:  # noqa: BLE001
                    pass
            return
        try:
            target._MetaTrader5__conn.close()  # mt5linux keeps its rpyc connection private
        except Exception:  # noqa: BLE001 - already dead
            pass
