"""engine.runtime.reaper: a kill -9 of the watched process leaves none of its descendants behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from engine.runtime.reaper import descendants, start_reaper

# A "driver" whose child starts a grandchild and neither has a parent-death signal: the shape
# of an embedded Ray whose agents outlive the driver.
DRIVER = """
import subprocess, sys, time
subprocess.Popen([sys.executable, "-c",
    "import subprocess, time; subprocess.Popen(['sleep', '300']); time.sleep(300)"])
time.sleep(300)
"""


def _poll(condition, timeout_secs: float, label: str) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {label}"
        time.sleep(0.05)


def test_reaper_kills_every_descendant_after_the_parent_is_killed(tmp_path: Path) -> None:
    driver = subprocess.Popen([sys.executable, "-c", DRIVER], start_new_session=True)
    try:
        _poll(lambda: len(descendants(driver.pid)) >= 2, 20, "child and grandchild")
        tree = descendants(driver.pid)
        status = tmp_path / "status"
        reaper = start_reaper(driver.pid, status_file=status)
        _poll(lambda: status.exists() and int(status.read_text() or 0) >= 2, 20, "the reaper's first scan")
        driver.send_signal(signal.SIGKILL)
        driver.wait(timeout=10)
        assert reaper.wait(timeout=30) == 0

        def gone(pid: int) -> bool:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return True
            return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] == "Z"

        _poll(lambda: all(gone(pid) for pid, _ in tree), 10, "descendants to be reaped")
    finally:
        for pid, _ in descendants(driver.pid):
            os.kill(pid, signal.SIGKILL)
        if driver.poll() is None:
            driver.kill()


def test_reaper_exits_at_once_when_the_parent_is_already_gone(tmp_path: Path) -> None:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait(timeout=10)
    reaper = start_reaper(proc.pid)
    assert reaper.wait(timeout=20) == 0
