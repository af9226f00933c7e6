"""systemd watchdog: READY after the first tick, loop-driven WATCHDOG, STATUS, STOPPING on a real socket."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from engine.runtime.systemd_watchdog import SystemdWatchdog, watchdog_interval_secs


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def notify_socket(tmp_path: Path, monkeypatch):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(5.0)
    monkeypatch.setenv("NOTIFY_SOCKET", path)
    yield sock
    sock.close()


def _messages(sock: socket.socket) -> list[str]:
    out = []
    sock.setblocking(False)
    try:
        while True:
            out.append(sock.recv(4096).decode())
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(5.0)
    return out


def test_watchdog_ready_only_after_first_tick_then_watchdog_pings(notify_socket):
    clock = FakeClock()
    env = {**os.environ, "WATCHDOG_USEC": "4000000"}
    dog = SystemdWatchdog(env, clock=clock)
    assert dog.enabled and dog.interval_secs == 2.0
    dog.ping()  # before READY: nothing
    assert _messages(notify_socket) == []
    dog.tick_done("tick 1 symbols=3\nopen=0")
    assert notify_socket.recv(4096).decode() == "READY=1\nSTATUS=tick 1 symbols=3 open=0"
    dog.tick_done("tick 2")
    assert notify_socket.recv(4096).decode() == "WATCHDOG=1\nSTATUS=tick 2"
    clock.now += 1.0
    dog.ping()
    assert _messages(notify_socket) == []  # not due yet
    clock.now += 1.5
    dog.ping()
    assert notify_socket.recv(4096).decode() == "WATCHDOG=1"


def test_watchdog_status_and_stopping(notify_socket):
    dog = SystemdWatchdog()
    dog.status("starting shards")
    dog.stopping("SIGTERM")
    assert notify_socket.recv(4096).decode() == "STATUS=starting shards"
    assert notify_socket.recv(4096).decode() == "STOPPING=1\nSTATUS=SIGTERM"


def test_watchdog_silent_without_notify_socket(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    created = []
    dog = SystemdWatchdog(notifier_factory=lambda: created.append(1))  # type: ignore[arg-type,return-value]
    dog.tick_done("tick")
    dog.ping()
    dog.stopping()
    assert not dog.enabled and created == [] and dog.interval_secs is None


def test_watchdog_survives_vanished_socket(notify_socket, tmp_path):
    dog = SystemdWatchdog()
    notify_socket.close()
    os.unlink(tmp_path / "notify.sock")
    dog.tick_done("tick")  # must not raise
    assert dog.ready_sent


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"WATCHDOG_USEC": "4000000"}, 2.0),
        ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "4242"}, 2.0),
        ({"WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "100"}, 0.5),
        ({"WATCHDOG_USEC": "9999999999"}, 300.0),
        ({"WATCHDOG_USEC": "abc"}, None),
        ({}, None),
    ],
)
def test_watchdog_interval_from_env(env, expected):
    assert watchdog_interval_secs(env, pid=4242) == expected
