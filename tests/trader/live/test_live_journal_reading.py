"""Reading journals: only the last record may be torn; a header-less file is skipped, not broken."""

from __future__ import annotations

import json
import shutil
import struct

import pytest
from daemon_harness import run_cli, start_daemon, wait_for_exit, write_config

from trader.live.journal import JournalError, iter_records, read_journal


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("jr")
    cfg = write_config(tmp, data_end="2018-08-10")
    proc, log_path = start_daemon(cfg)
    wait_for_exit(proc, log_path)
    snap = json.loads(run_cli("status", "--config", str(cfg), "--json").stdout)
    return snap["journal"]


def _offsets(path):
    return [off for off, _rec in iter_records(path)]


def test_corrupted_length_in_the_middle_is_an_error_naming_the_offset(journal, tmp_path):
    offsets = _offsets(journal)
    victim = offsets[len(offsets) // 2]
    data = bytearray(open(journal, "rb").read())
    struct.pack_into("<I", data, victim, 0x7FFFFFF0)  # a length running past the end
    bad = tmp_path / "bad.journal"
    bad.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"at byte {victim}"):
        read_journal(bad)
    r = run_cli("backtest", "--journal", str(bad))
    assert r.returncode == 2, r.stdout
    assert f"at byte {victim}" in r.stderr and "identical" not in r.stdout


def test_checksum_failure_in_the_middle_is_an_error(journal, tmp_path):
    offsets = _offsets(journal)
    victim = offsets[len(offsets) // 3]
    data = bytearray(open(journal, "rb").read())
    data[victim + 9] ^= 0xFF
    bad = tmp_path / "crc.journal"
    bad.write_bytes(bytes(data))
    with pytest.raises(JournalError, match=f"at byte {victim}"):
        read_journal(bad)


def test_torn_last_record_is_still_tolerated(journal, tmp_path):
    data = open(journal, "rb").read()
    torn = tmp_path / "torn.journal"
    torn.write_bytes(data[:-3])
    assert read_journal(torn).torn_tail
    r = run_cli("backtest", "--journal", str(torn))
    assert r.returncode == 0, r.stdout + r.stderr


@pytest.mark.parametrize("content", [b"", b"\x10\x00", b"\xff\x00\x00\x00\x01\x02\x03\x04\x81"])
def test_a_journal_killed_before_its_header_is_named_as_such(tmp_path, content):
    empty = tmp_path / "paper-9-x.journal"
    empty.write_bytes(content)
    r = run_cli("backtest", "--journal", str(empty))
    assert r.returncode == 2
    assert "has no header (the session was killed before writing it)" in r.stderr
    assert "Traceback" not in r.stderr


def test_a_journal_folder_skips_header_less_files_with_a_note(journal, tmp_path):
    folder = tmp_path / "journal"
    folder.mkdir()
    shutil.copy(journal, folder / "paper-1-a.journal")
    (folder / "paper-2-b.journal").write_bytes(b"")
    r = run_cli("backtest", "--journal", str(folder))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "skipped" in r.stdout and "paper-2-b.journal" in r.stdout
    assert "identical" in r.stdout
