"""structlog logging with secrets redacted everywhere.

One JSON object per line when the stream is not a terminal (journald, pipes,
files); coloured human-readable lines on a terminal. ``fmt`` or
``$TRADER_LOG_FORMAT`` (``json``, ``console``, ``auto``) overrides the choice.
Chatty third-party loggers (alembic, SQLAlchemy, asyncio, aiohttp, ccxt, ...)
are held at WARNING whatever the level, so their start-up notices do not drown
the daemon's own lines.

Secrets are found two ways:

* by name: any key (in a log event, at any depth) that looks like a secret
  (``api_key``, ``token``, ``password``, ...) has its value replaced;
* by value: the *values* of secret-looking environment variables and of
  systemd credential files (``$CREDENTIALS_DIRECTORY``) are replaced wherever
  they occur — in messages, in nested values and in rendered tracebacks — so
  an exception whose text carries an API key is still safe to log.

Free-text patterns (``password=...``, ``Authorization: Bearer ...``) are caught
too.  Redaction runs after tracebacks are rendered and once more on the final
JSON line, so nothing reaches stdout unfiltered.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, TextIO

import structlog

from trader.core.redaction import MASK, SECRET_NAME, URL_PASSWORD

_FREE_TEXT = re.compile(
    r"(?P<key>\b[\w.-]*(?:pass(?:word|wd|phrase)?|secret|token|api[_-]?key|apikey|"
    r"private[_-]?key)[\w-]*\b[\"']?\s*[:=]\s*[\"']?)(?P<val>[^\s\"',;&}]+)",
    re.IGNORECASE,
)
_BEARER = re.compile(r"(?P<key>\b(?:bearer|basic)\s+)(?P<val>[A-Za-z0-9._~+/=-]{8,})",
                     re.IGNORECASE)
_MIN_SECRET_LEN = 4  # shorter values would mask ordinary words and numbers


def secret_values(environ: Mapping[str, str] | None = None,
                  credentials_dir: str | None = None) -> list[str]:
    """The values to mask: secret-named env vars, URL passwords, credential files."""
    env = os.environ if environ is None else environ
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if SECRET_NAME.search(name) and len(value) >= _MIN_SECRET_LEN:
            found.add(value)
        for m in URL_PASSWORD.finditer(value):
            if len(m.group("pw")) >= _MIN_SECRET_LEN:
                found.add(m.group("pw"))
    cred_dir = credentials_dir if credentials_dir is not None else env.get("CREDENTIALS_DIRECTORY")
    if cred_dir:
        try:
            for p in Path(cred_dir).iterdir():
                if p.is_file() and p.stat().st_size <= 64 * 1024:
                    text = p.read_text(errors="replace").strip()
                    if len(text) >= _MIN_SECRET_LEN:
                        found.add(text)
                        found.update(line.strip() for line in text.splitlines()
                                     if len(line.strip()) >= _MIN_SECRET_LEN)
        except OSError:
            pass
    # Longest first, so a secret containing another is masked whole.
    return sorted(found, key=len, reverse=True)


def _mask_val(m: re.Match[str]) -> str:
    return m.group("key") + MASK


def _mask_scheme(m: re.Match[str]) -> str:
    return m.group("scheme") + MASK


class Redactor:
    """Masks secrets in strings and in nested structures; a structlog processor."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets: list[str] = []
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        """Register more secret values (e.g. read from a credential file later)."""
        values = set(self.secrets)
        for s in secrets:
            if s and len(s) >= _MIN_SECRET_LEN:
                values.add(s)
                # The same value as it appears inside JSON or a repr().
                values.add(json.dumps(s)[1:-1])
                values.add(repr(s)[1:-1])
        self.secrets = sorted(values, key=len, reverse=True)

    def text(self, s: str) -> str:
        s = self.known(s)
        # Cheap membership tests gate the patterns: most logged values (ids, enums,
        # numbers as text) contain none of these characters, and logging sits on the
        # order path.
        if "=" in s or ":" in s:
            s = _FREE_TEXT.sub(_mask_val, s)
            if "://" in s:
                s = URL_PASSWORD.sub(_mask_scheme, s)
        if " " in s:
            s = _BEARER.sub(_mask_val, s)
        return s

    def known(self, s: str) -> str:
        """Mask only the known secret values (the rendered line's final pass)."""
        for secret in self.secrets:
            if secret in s:
                s = s.replace(secret, MASK)
        return s

    def value(self, v: Any, key: str | None = None) -> Any:
        if key is not None and SECRET_NAME.search(key) and v not in (None, "", MASK):
            return MASK
        if isinstance(v, str):
            return self.text(v)
        if isinstance(v, Mapping):
            return {self.text(str(k)): self.value(x, str(k)) for k, x in v.items()}
        if isinstance(v, list | tuple | set | frozenset):
            return [self.value(x) for x in v]
        if isinstance(v, int | float | bool) or v is None:
            return v
        return self.text(str(v))  # anything else is rendered, then masked

    def __call__(self, _logger: Any, _name: str, event_dict: dict[str, Any]) -> dict[str, Any]:
        return {k: self.value(v, k if k != "event" else None) for k, v in event_dict.items()}


class _RedactingRenderer:
    """JSON renderer whose output line is scanned once more before it is written."""

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._json = structlog.processors.JSONRenderer(sort_keys=False, default=str)

    def __call__(self, logger: Any, name: str, event_dict: dict[str, Any]) -> str:
        # Every value was masked already; this catches a secret split across keys/values.
        return self._redactor.known(self._json(logger, name, event_dict))


_redactor = Redactor()


def redactor() -> Redactor:
    """The process-wide redactor (add secrets read at run time to it)."""
    return _redactor


LOG_FORMATS = ("auto", "json", "console")
ENV_FORMAT = "TRADER_LOG_FORMAT"
# Libraries whose INFO lines are noise to an operator ("Context impl SQLiteImpl.").
QUIET_LOGGERS = ("alembic", "sqlalchemy", "asyncio", "aiohttp", "ccxt", "urllib3", "apprise",
                 "exchange_calendars", "websockets", "mail", "aiosmtpd")
_preferred_format: str | None = None


def set_format(fmt: str | None) -> None:
    """The format later ``configure_logging`` calls use when none is passed (the CLI's flag)."""
    global _preferred_format
    if fmt is not None and fmt not in LOG_FORMATS:
        raise ValueError(f"log format must be one of {LOG_FORMATS}, got {fmt!r}")
    _preferred_format = fmt


def choose_format(stream: Any, fmt: str | None = None,
                  environ: Mapping[str, str] | None = None) -> str:
    """``json`` or ``console``: the asked format, else console on a terminal, JSON otherwise."""
    env = os.environ if environ is None else environ
    wanted = fmt or _preferred_format or env.get(ENV_FORMAT) or "auto"
    if wanted not in LOG_FORMATS:
        wanted = "auto"
    if wanted != "auto":
        return wanted
    isatty = getattr(stream, "isatty", None)
    try:
        return "console" if isatty is not None and isatty() else "json"
    except (OSError, ValueError):  # a closed stream
        return "json"


class _RedactingConsole:
    """structlog's console renderer, its output scanned for known secrets once more."""

    def __init__(self, redactor: Redactor, colors: bool) -> None:
        self._redactor = redactor
        self._console = structlog.dev.ConsoleRenderer(colors=colors, sort_keys=False,
                                                      timestamp_key="time")

    def __call__(self, logger: Any, name: str, event_dict: dict[str, Any]) -> str:
        return self._redactor.known(self._console(logger, name, event_dict))


class StderrProxy:
    """Writes to whatever ``sys.stderr`` is at the time of each write.

    Binding the logger to the object itself would break when the stream is
    swapped (a test runner capturing output) and later closed.
    """

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()

    def isatty(self) -> bool:
        return sys.stderr.isatty()


def configure_logging(level: str = "info", stream: TextIO | None = None,
                      environ: Mapping[str, str] | None = None,
                      fmt: str | None = None) -> Redactor:
    """Route structlog and stdlib logging to ``stream``: JSON lines, or console on a terminal."""
    global _redactor
    _redactor = Redactor(secret_values(environ))
    out = stream or sys.stdout
    lvl = logging.getLevelName(level.upper())
    if not isinstance(lvl, int):
        lvl = logging.INFO
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="time"),
    ]
    console = choose_format(out, fmt, environ) == "console"
    renderer: Any = (_RedactingConsole(_redactor, colors=_colors(environ)) if console
                     else _RedactingRenderer(_redactor))
    tail = [
        structlog.processors.StackInfoRenderer(),
        structlog.processors.format_exc_info,  # traceback -> text, then masked below
        _redactor,
        renderer,
    ]
    structlog.configure(
        processors=[*shared, *tail],
        wrapper_class=structlog.make_filtering_bound_logger(lvl),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
    # Libraries that use the stdlib logger go through the same redaction.
    handler = logging.StreamHandler(out)
    handler.setFormatter(structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *tail],
    ))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(lvl)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(max(lvl, logging.WARNING))
    _install_excepthooks()
    return _redactor


def _colors(environ: Mapping[str, str] | None) -> bool:
    env = os.environ if environ is None else environ
    return "NO_COLOR" not in env  # https://no-color.org


def _install_excepthooks() -> None:
    """Uncaught exceptions are logged (masked) instead of printed raw to stderr."""
    logger = structlog.get_logger("trader.uncaught")

    def hook(exc_type, exc, tb) -> None:  # noqa: ANN001 - signature fixed by sys
        if issubclass(exc_type, KeyboardInterrupt):
            sys.__excepthook__(exc_type, exc, tb)
            return
        logger.critical("uncaught_exception", exc_info=(exc_type, exc, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        logger.critical("uncaught_thread_exception", thread=getattr(args.thread, "name", "?"),
                        exc_info=(args.exc_type, args.exc_value, args.exc_traceback))

    sys.excepthook = hook
    threading.excepthook = thread_hook
