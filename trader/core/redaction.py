"""What counts as a secret and how it is masked, for logs, messages and status output.

Kept apart from ``trader.core.logging`` (and its structlog) so that a command that
only shows a URL, such as ``trader status``, can mask it without loading a logger.
"""

from __future__ import annotations

import re

MASK = "***"
SECRET_NAME = re.compile(
    r"(pass(word|wd|phrase)?|secret|token|api[_-]?key|apikey|private[_-]?key|credential|"
    r"auth(orization)?|session[_-]?key|signature|cookie|dsn)",
    re.IGNORECASE,
)
# Env vars holding URLs with a password embedded before the host are secret too.
# The password runs to the last "@" before the host (it may hold an unescaped "@").
URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://[^:/@\s]+:)(?P<pw>\S+?)(?=@[^@\s/?#]*(?:[/?#\s]|$))", re.I)


def redact_url(url: str) -> str:
    """``url`` with its password (after the user, before the host) and any query parameter
    named like a secret replaced by ``***``.

    The one rule for a URL shown or logged whole (a database, an experiment tracker).
    The user part ends at the last ``@`` before the query, so a password holding an
    unescaped ``@`` or ``/`` is masked whole; libpq takes ``password=`` in the query too.
    """
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    head, q, query = rest.partition("?")
    userinfo, at, _ = head.rpartition("@")
    user, colon, _password = userinfo.partition(":")
    if at and colon:
        head = f"{user}:{MASK}@{head[len(userinfo) + 1:]}"
    if q:
        query = "&".join(_mask_param(p) for p in query.split("&"))
    return f"{scheme}://{head}{q}{query}"


def _mask_param(param: str) -> str:
    key, eq, _value = param.partition("=")
    return f"{key}={MASK}" if eq and SECRET_NAME.search(key) else param
