"""sd_notify by hand: path and abstract sockets, WATCHDOG_USEC handling."""

from __future__ import annotations

import os
import socket

from trader.live.notify import Notifier, watchdog_interval


def _recv(sock: socket.socket) -> str:
    sock.settimeout(2)
    return sock.recv(4096).decode()


def test_path_socket_receives_ready_status_and_stopping(tmp_path):
    path = f"/tmp/ntf-{os.getpid()}-{id(tmp_path)}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind(path)
    try:
        n = Notifier(path)
        assert n.enabled
        assert n.ready("mode=paper state=trading")
        assert _recv(srv) == "READY=1\nSTATUS=mode=paper state=trading"
        n.watchdog()
        assert _recv(srv) == "WATCHDOG=1"
        n.stopping()
        assert _recv(srv) == "STOPPING=1"
        n.close()
    finally:
        srv.close()
        os.unlink(path)


def test_abstract_namespace_socket(monkeypatch):
    name = f"trader-notify-{os.getpid()}"
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    srv.bind("\0" + name)
    try:
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        n = Notifier()
        assert n.status("hello")
        assert _recv(srv) == "STATUS=hello"
    finally:
        srv.close()


def test_without_systemd_everything_is_a_no_op(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and n.ready() is False and n.watchdog() is False


def test_a_vanished_manager_does_not_raise(tmp_path):
    n = Notifier(str(tmp_path / "gone"))
    assert n.watchdog() is False


def test_watchdog_interval_is_half_of_watchdog_usec():
    assert watchdog_interval({"WATCHDOG_USEC": "30000000"}) == 15.0
    assert watchdog_interval({}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    # Meant for another process (systemd sets WATCHDOG_PID): not ours to ping.
    assert watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_interval({"WATCHDOG_USEC": "1000000",
                              "WATCHDOG_PID": str(os.getpid())}) == 0.5
