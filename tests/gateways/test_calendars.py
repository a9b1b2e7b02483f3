"""Trading calendars: NYSE holidays and weekends, the FX week, crypto around the clock."""

from __future__ import annotations

import datetime as dt

import pytest

from trader.core.calendars import CalendarError, MarketCalendar, is_open, next_open


def ns(text: str) -> int:
    return int(dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC).timestamp()) * 10**9


def test_nyse_closed_on_saturday_and_christmas_open_on_a_weekday() -> None:
    assert not is_open("XNYS", ns("2024-06-08T15:00"))  # Saturday
    assert not is_open("XNYS", ns("2024-12-25T15:00"))  # Christmas, a Wednesday
    assert is_open("XNYS", ns("2024-12-24T15:00"))
    assert not is_open("equity", ns("2024-12-24T19:00"))  # early close at 13:00 New York
    assert not is_open("XNYS", ns("2024-06-10T13:00"))  # Monday before the 09:30 open
    assert next_open("XNYS", ns("2024-12-25T15:00")) == ns("2024-12-26T14:30")


def test_fx_closes_friday_22_utc_and_reopens_sunday_22_utc() -> None:
    assert not is_open("fx", ns("2024-06-08T12:00"))  # Saturday
    assert is_open("fx", ns("2024-06-07T21:59"))
    assert not is_open("fx", ns("2024-06-07T22:00"))
    assert not is_open("forex", ns("2024-06-09T21:59"))
    assert is_open("fx", ns("2024-06-09T22:00"))
    assert next_open("fx", ns("2024-06-08T12:00")) == ns("2024-06-09T22:00")
    assert is_open("fx", ns("2024-12-25T12:00"))  # the interbank week, not holidays


def test_crypto_is_always_open() -> None:
    for t in ("2024-06-08T12:00", "2024-12-25T03:00", "2024-06-09T23:59"):
        assert is_open("crypto", ns(t)) and is_open("binance", ns(t))
    assert next_open("crypto", ns("2024-06-08T12:00")) == ns("2024-06-08T12:00")


def test_calendar_object_and_unknown_names() -> None:
    cal = MarketCalendar("XNYS")
    assert not cal.is_open(ns("2024-12-25T15:00"))
    assert cal.next_open(ns("2024-12-26T15:00")) == ns("2024-12-26T15:00")
    with pytest.raises(CalendarError, match="no trading calendar for 'moon'"):
        MarketCalendar("moon")
    with pytest.raises(CalendarError, match="unknown exchange calendar"):
        is_open("XZZZ", ns("2024-06-10T15:00"))
