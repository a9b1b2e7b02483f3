"""Keep the account id out of ib_async's own log lines.

ib_async logs whole ``Order``/``Trade`` objects and message fields, which carry
the account id (a credential here).  ``redact_ib_logs`` puts a filter on every
ib_async logger that replaces registered secrets before a record is formatted,
and lowers ib_async's chatter to warnings (its info lines repeat what the gateway
logs itself).
"""

from __future__ import annotations

import logging

IB_LOGGERS = ("ib_async", "ib_async.ib", "ib_async.wrapper", "ib_async.client",
              "ib_async.Decoder", "ib_async.IBC", "ib_async.Watchdog", "ib_async.flexreport")
MASK = "<account>"


class SecretFilter(logging.Filter):
    """Rewrites a record's message with every registered secret masked."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not self.secrets:
            return True
        text = record.getMessage()
        masked = text
        for s in self.secrets:
            masked = masked.replace(s, MASK)
        if masked != text:
            record.msg, record.args = masked, ()
        if record.exc_info and record.exc_text is None:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            for s in self.secrets:
                record.exc_text = record.exc_text.replace(s, MASK)
        return True


_FILTER = SecretFilter()


def redact_ib_logs(secret: str, level: int = logging.WARNING) -> None:
    """Mask ``secret`` in every ib_async log record from now on (idempotent)."""
    if secret:
        _FILTER.secrets.add(secret)
    for name in IB_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:
            logger.addFilter(_FILTER)
    logging.getLogger("ib_async").setLevel(level)
