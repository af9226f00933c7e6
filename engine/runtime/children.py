"""Child processes the daemon owns (the loopback simulator, the sidecar): start, await, stop.

A child is started with a parent-death signal, so a driver killed with -9 does not leave it
running, and is stopped with SIGTERM then SIGKILL. Readiness is a line on the child's stdout
matching a pattern (the simulator prints `listening on http://HOST:PORT`); everything else the
child prints is forwarded to our log, line by line, from a reader thread.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence

log = logging.getLogger(__name__)


class ChildStartError(RuntimeError):
    """The child exited or did not become ready in time."""


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class ChildProcess:
    """One `python -m <module>` child whose output is logged under `name`."""

    def __init__(
        self,
        name: str,
        module: str,
        args: Sequence[str] = (),
        *,
        env: Mapping[str, str] | None = None,
        ready_pattern: str | None = None,
    ) -> None:
        self.name = name
        self.argv = [sys.executable, "-m", module, *args]
        self.env = dict(os.environ if env is None else env)
        self.env.setdefault("PYTHONUNBUFFERED", "1")  # readiness lines must not sit in a pipe buffer
        self.ready_pattern = re.compile(ready_pattern) if ready_pattern else None
        self.ready_match: re.Match[str] | None = None
        self._ready = threading.Event()
        self._proc: subprocess.Popen[str] | None = None
        self._reader: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, ready_timeout_secs: float = 30.0) -> None:
        """Start the child; when a ready pattern is set, block until it prints a matching line."""
        self._proc = subprocess.Popen(
            self.argv,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            bufsize=1,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # a terminal Ctrl-C reaches the daemon only; it stops us in order
        )
        self._reader = threading.Thread(target=self._pump, name=f"{self.name}-output", daemon=True)
        self._reader.start()
        if self.ready_pattern is None:
            return
        deadline = time.monotonic() + ready_timeout_secs
        while not self._ready.wait(0.05):
            if self._proc.poll() is not None:
                raise ChildStartError(f"{self.name} exited with code {self._proc.returncode} before ready")
            if time.monotonic() > deadline:
                self.stop()
                raise ChildStartError(f"{self.name} not ready within {ready_timeout_secs}s")

    def _pump(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        child_log = logging.getLogger(f"child.{self.name}")
        for line in self._proc.stdout:
            line = line.rstrip("\n")
            if self.ready_pattern is not None and not self._ready.is_set():
                match = self.ready_pattern.search(line)
                if match:
                    self.ready_match = match
                    self._ready.set()
            child_log.info("%s", line)

    def stop(self, timeout_secs: float = 10.0) -> int | None:
        """SIGTERM, wait, then SIGKILL; return the exit code (None if never started)."""
        proc = self._proc
        if proc is None:
            return None
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=timeout_secs)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop on SIGTERM within %ss; killing", self.name, timeout_secs)
                proc.kill()
                proc.wait(timeout=timeout_secs)
        if self._reader is not None:
            self._reader.join(timeout=2)
        return proc.returncode
