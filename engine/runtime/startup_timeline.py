"""Where a daemon's start-up time goes: named phases, logged once as `startup phases k=secs ...`.

The issue-12 goal (start → first decision <= 15 s at 1,000 symbols) is a sum of very different
costs: Python imports, config and DB, Redis, venue reads, starting Ray, creating the shard
actors (each imports the strategy stack and restores its checkpoints), and the first tick. The
daemon marks each phase here and logs one line at "engine started"; `bench.startup` parses that
line into its JSON, so a README number can be traced to the phase that costs it.

Phases that run in the background (Ray's start, the shard pool) are recorded as durations of
their own (`add`) beside the sequential ones (`mark`): the sum of the fields is therefore not the
total; `total` is. Pure apart from reading the process's own start time from /proc.
"""

from __future__ import annotations

import os
import re
import threading
import time
from collections.abc import Callable, Mapping

PHASES_LINE = "startup phases"
_FIELD = re.compile(r"(\w+)=(-?\d+(?:\.\d+)?)")


def process_age_secs(proc: str = "/proc") -> float | None:
    """Seconds since this process was created (fork/exec), or None where /proc is unavailable."""
    try:
        with open(f"{proc}/self/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
        with open(f"{proc}/uptime") as fh:
            uptime = float(fh.read().split()[0])
        return max(0.0, uptime - int(fields[19]) / os.sysconf("SC_CLK_TCK"))
    except (OSError, ValueError, IndexError):
        return None


class StartupTimeline:
    """Sequential phases (`mark`) plus background durations (`add`), thread-safe."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, age: float | None = None) -> None:
        """`age`: seconds the process already ran before this object (the `imports` phase)."""
        self._clock = clock
        self._lock = threading.Lock()
        self._phases: dict[str, float] = {}
        started = clock()
        self._origin = started - (age or 0.0)
        self._last = started
        if age is not None:
            self._phases["imports"] = age

    def mark(self, phase: str) -> float:
        """Close `phase` (it ran from the previous mark until now); return its seconds."""
        now = self._clock()
        with self._lock:
            secs = now - self._last
            self._last = now
            self._phases[phase] = self._phases.get(phase, 0.0) + secs
        return secs

    def add(self, phase: str, secs: float) -> None:
        """Record a phase timed elsewhere (a background thread, a shard actor)."""
        with self._lock:
            self._phases[phase] = secs

    def elapsed(self) -> float:
        """Seconds since the process started (or since this object, when the age was unknown)."""
        return self._clock() - self._origin

    def phases(self) -> dict[str, float]:
        with self._lock:
            return dict(self._phases)

    def line(self) -> str:
        """`startup phases total=12.345 imports=... ray_init=...` (seconds, 3 decimals)."""
        fields = {"total": self.elapsed(), **self.phases()}
        return PHASES_LINE + " " + " ".join(f"{k}={v:.3f}" for k, v in fields.items())


def parse_phases(text: str) -> dict[str, float] | None:
    """The fields of the last `startup phases` line in a log `text`, or None when there is none."""
    found: Mapping[str, float] | None = None
    for line in text.splitlines():
        at = line.find(PHASES_LINE + " ")
        if at >= 0:
            found = {k: float(v) for k, v in _FIELD.findall(line[at + len(PHASES_LINE):])}
    return None if found is None else dict(found)
