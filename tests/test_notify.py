"""edge.notify speaks sd_notify to a real AF_UNIX datagram socket, like systemd's."""
from __future__ import annotations

import logging
import os
import socket
import tempfile
from pathlib import Path

import pytest

from fer_edge.edge import notify as sdn


@pytest.fixture
def listener(monkeypatch):
    """A datagram socket bound to a short path (AF_UNIX paths are limited to 108 bytes)."""
    d = tempfile.mkdtemp(prefix="sdn", dir="/tmp")
    path = os.path.join(d, "notify")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(2)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    monkeypatch.setattr(sdn, "_warned", False)
    yield sock
    sock.close()
    os.unlink(path)
    os.rmdir(d)


def test_unset_socket_is_a_noop(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    assert sdn.notify("READY=1") is False


def test_sends_datagram_to_path_socket(listener):
    assert sdn.notify("READY=1\nSTATUS=model and camera open") is True
    assert listener.recv(4096) == b"READY=1\nSTATUS=model and camera open"
    assert sdn.notify("STOPPING=1") is True
    assert listener.recv(4096) == b"STOPPING=1"


def test_abstract_namespace(monkeypatch):
    name = f"fer-edge-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        monkeypatch.setenv("NOTIFY_SOCKET", "@" + name)
        assert sdn.notify("WATCHDOG=1") is True
        assert sock.recv(64) == b"WATCHDOG=1"


def test_send_error_returns_false_and_logs_once(monkeypatch, caplog):
    d = tempfile.mkdtemp(prefix="sdn", dir="/tmp")
    monkeypatch.setenv("NOTIFY_SOCKET", os.path.join(d, "nobody-listens"))
    monkeypatch.setattr(sdn, "_warned", False)
    with caplog.at_level(logging.WARNING, logger="fer_edge.edge.notify"):
        assert sdn.notify("READY=1") is False
        assert sdn.notify("WATCHDOG=1") is False
    os.rmdir(d)
    records = [r for r in caplog.records if r.name == "fer_edge.edge.notify"]
    assert len(records) == 1
    assert "nobody-listens" in records[0].getMessage()


def test_unsupported_socket_kind_does_not_raise(monkeypatch):
    monkeypatch.setenv("NOTIFY_SOCKET", "vsock:2:1234")
    monkeypatch.setattr(sdn, "_warned", False)
    assert sdn.notify("READY=1") is False


@pytest.mark.parametrize("usec,pid,expected", [
    ("30000000", None, 30.0),
    ("500000", "self", 0.5),
    ("30000000", "1", None),          # meant for another process (we inherited the variables)
    ("0", None, None),
    ("garbage", None, None),
    (None, None, None),
])
def test_watchdog_interval(monkeypatch, usec, pid, expected):
    for var, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(var, raising=False)
        else:
            monkeypatch.setenv(var, str(os.getpid()) if value == "self" else value)
    if pid == "1" and os.getpid() == 1:
        pytest.skip("the test runs as PID 1")
    assert sdn.watchdog_interval() == expected


def test_watchdog_pings_at_half_interval(listener):
    t = [100.0]
    wd = sdn.Watchdog(interval=10.0, clock=lambda: t[0])
    assert wd.progress() is True            # first progress pings at once
    assert listener.recv(64) == b"WATCHDOG=1"
    t[0] += 4.9
    assert wd.progress() is False           # not yet half the interval
    t[0] += 0.2
    assert wd.progress() is True
    assert listener.recv(64) == b"WATCHDOG=1"


def test_watchdog_disarmed_sends_nothing(listener, monkeypatch):
    monkeypatch.delenv("WATCHDOG_USEC", raising=False)
    wd = sdn.Watchdog()
    assert wd.interval is None
    assert wd.progress() is False
    listener.settimeout(0.05)
    with pytest.raises(socket.timeout):
        listener.recv(64)


def test_notify_module_has_no_heavy_imports():
    """The edge must never pull TensorFlow; notify needs nothing beyond the standard library."""
    src = Path(sdn.__file__).read_text()
    imports = {line.split()[1].split(".")[0] for line in src.splitlines()
               if line.startswith(("import ", "from ")) and not line.startswith("from __future__")}
    assert imports <= {"logging", "os", "socket", "time"}
