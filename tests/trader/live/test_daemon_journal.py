"""The session journal: round trip, torn tail tolerated, corruption elsewhere refused."""

from __future__ import annotations

import pytest

from trader.core.events import Bar, Fill, OrderRequest, OrderStatus, OrderUpdate, Side
from trader.live.journal import (
    JournalControl,
    JournalError,
    JournalHeader,
    JournalWriter,
    read_journal,
)


def _header() -> JournalHeader:
    return JournalHeader(1, "s1", "paper", "cfg", 123, "P1", config={"name": "cfg"})


def _events():
    return [
        Bar(2_000, "X", 60, 1_940, 1.0, 2.0, 0.5, 1.5, 10.0),
        JournalControl(2_000, "trading", True),
        OrderRequest(2_000, "P1-1", "X", Side.BUY, 3.0),
        OrderUpdate(2_001, "P1-1", OrderStatus.ACCEPTED, "", "B1"),
        Fill(2_060, "P1-1", "t1", "X", Side.BUY, 3.0, 1.6, 0.01, "B1"),
        JournalControl(2_100, "stale", ["X", True]),
    ]


def test_round_trip_keeps_types_and_order(tmp_path):
    w = JournalWriter(tmp_path / "j", _header())
    for e in _events():
        w.append(e)
    w.close()
    r = read_journal(tmp_path / "j")
    assert r.header == _header()
    assert r.records == _events()
    assert not r.torn_tail


def test_records_reach_the_os_on_flush_before_close(tmp_path):
    w = JournalWriter(tmp_path / "j", _header(), buffer_bytes=1 << 20)
    w.append(_events()[0])
    assert read_journal(tmp_path / "j").records == []  # still buffered
    w.flush()
    assert read_journal(tmp_path / "j").records == [_events()[0]]  # readable by another reader
    w.close()


@pytest.mark.parametrize("cut", [1, 4, 7, 9, 20])
def test_torn_last_record_is_dropped_and_reported(tmp_path, cut):
    w = JournalWriter(tmp_path / "j", _header())
    for e in _events():
        w.append(e)
    w.close()
    data = (tmp_path / "j").read_bytes()
    (tmp_path / "t").write_bytes(data[:-cut])
    r = read_journal(tmp_path / "t")
    assert r.torn_tail and r.notes
    assert r.records == _events()[:-1]


def test_corruption_before_the_tail_is_an_error(tmp_path):
    w = JournalWriter(tmp_path / "j", _header())
    for e in _events():
        w.append(e)
    w.close()
    data = bytearray((tmp_path / "j").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (tmp_path / "c").write_bytes(bytes(data))
    with pytest.raises(JournalError, match="checksum mismatch"):
        read_journal(tmp_path / "c")


def test_a_session_never_overwrites_another_journal(tmp_path):
    JournalWriter(tmp_path / "j", _header()).close()
    with pytest.raises(FileExistsError):
        JournalWriter(tmp_path / "j", _header())


def test_a_file_without_header_is_refused(tmp_path):
    (tmp_path / "e").write_bytes(b"")
    with pytest.raises(JournalError, match="has no header"):
        read_journal(tmp_path / "e")
