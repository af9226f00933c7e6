"""Daemon lock: a second holder (a real process) is refused by pid; a dead holder's lock is reclaimed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.runtime.lock import DaemonLock, DaemonLockError, read_holder_pid

_HOLDER = """
import sys, time
from pathlib import Path
from engine.runtime.lock import DaemonLock
lock = DaemonLock(Path(sys.argv[1]))
lock.acquire()
print("held", flush=True)
time.sleep(600)
"""


def _wait_until(condition, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


@pytest.fixture
def holder_process(tmp_path: Path):
    path = tmp_path / "ai_quant_paper.lock"
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLDER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "held"
        yield path, proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=10)


def test_daemon_lock_second_process_is_refused_naming_holder_pid(holder_process):
    path, proc = holder_process
    lock = DaemonLock(path)
    with pytest.raises(DaemonLockError) as info:
        lock.acquire()
    assert info.value.holder_pid == proc.pid
    assert f"pid {proc.pid}" in str(info.value)
    assert not lock.held
    assert read_holder_pid(path) == proc.pid  # the refused contender did not clobber the pid


def test_daemon_lock_of_killed_process_is_reclaimed(holder_process):
    path, proc = holder_process
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    assert read_holder_pid(path) == proc.pid  # stale file left behind
    lock = DaemonLock(path)
    lock.acquire()
    try:
        assert lock.held and read_holder_pid(path) == os.getpid()
    finally:
        lock.release()


def test_daemon_lock_writes_pid_and_release_lets_next_holder_in(tmp_path):
    path = tmp_path / "nested" / "ai_quant_live.lock"
    with DaemonLock(path) as lock:
        assert lock.held and read_holder_pid(path) == os.getpid()
        with pytest.raises(DaemonLockError):
            DaemonLock(path).acquire()
    assert read_holder_pid(path) is None and path.exists()
    second = DaemonLock(path)
    second.acquire()
    second.release()


def test_daemon_lock_file_with_garbage_is_reclaimed(tmp_path):
    path = tmp_path / "ai_quant_paper.lock"
    path.write_text("not-a-pid\n")
    with DaemonLock(path):
        assert read_holder_pid(path) == os.getpid()
