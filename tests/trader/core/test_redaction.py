"""Masking secrets: ``redact_url`` for a URL shown or logged whole (store, tracker, status),
and the log scrubber's pattern for URLs inside a line."""

from __future__ import annotations

import pytest

from trader.core.redaction import redact_url


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://bob:s3cr3t@db.example:5432/trader",
     "postgresql+psycopg://bob:***@db.example:5432/trader"),
    ("postgresql://bob:s3cr3t@db/trader?sslmode=require",
     "postgresql://bob:***@db/trader?sslmode=require"),
    ("postgresql+psycopg://bob:p%40ss@db/trader", "postgresql+psycopg://bob:***@db/trader"),
    # an unescaped @ or / in the password: masked whole, not up to its first @
    ("postgresql+psycopg://bob:pa@ss@db/x", "postgresql+psycopg://bob:***@db/x"),
    ("postgresql+psycopg://bob:pa/ss@db/x", "postgresql+psycopg://bob:***@db/x"),
    ("postgresql+psycopg://:pw@db/x", "postgresql+psycopg://:***@db/x"),
    ("http://bob:pw@host:5000", "http://bob:***@host:5000"),
    # libpq also takes the password as a query parameter
    ("postgresql+psycopg://db/x?user=bob&password=zz&sslpassword=q",
     "postgresql+psycopg://db/x?user=bob&password=***&sslpassword=***"),
])
def test_the_password_is_masked(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://postgres@127.0.0.1:5432/test?options=-csearch_path%3Dt_abc",
    "sqlite:///var/trader.db", "sqlite:////srv/a@b/trader.db", "sqlite:///:memory:",
    "sqlite://", "memory", "not a url",
])
def test_a_url_without_a_password_is_shown_as_it_is(url: str) -> None:
    assert redact_url(url) == url


def test_log_lines_mask_a_password_with_an_unescaped_at_whole() -> None:
    from trader.core.logging import Redactor

    r = Redactor()
    line = r.text("cannot reach postgresql+psycopg://bob:pa@ss@db:5432/t?x=1 (timeout)")
    assert line == "cannot reach postgresql+psycopg://bob:***@db:5432/t?x=1 (timeout)"
    assert r.text("two: http://u:pw1@h:5000/p and x://user:pw2@host") == (
        "two: http://u:***@h:5000/p and x://user:***@host")
    # no password, nothing masked: a mail address, a path holding an @
    assert r.text("mail a@b.c about sqlite:///srv/a@b/trader.db") == (
        "mail a@b.c about sqlite:///srv/a@b/trader.db")
