"""Orphan reaper: when the daemon dies (even by kill -9), stop every process it ever started.

Why: an embedded Ray's raylet starts agent processes (`ray::DashboardAgent`,
`ray::RuntimeEnvAgent`) that survive a kill -9 of the driver, re-parented to init, and a crash
loop under a supervisor would pile them up. Our own children (sidecar, simulator, redis-server)
already die with the daemon through a parent-death signal, but Ray's grandchildren do not.

`python -m engine.runtime.reaper --parent PID` runs in its own session, records every descendant of PID
once a second as (pid, start time) — the start time guards against PID reuse — and after PID
has gone waits a short grace for Ray's own fate-sharing, then SIGKILLs whatever recorded process
is still alive. It exits by itself; it never touches a process that was not a descendant.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

Identity = tuple[int, int]  # (pid, start time in clock ticks since boot)


def _stat(pid: int) -> tuple[int, int] | None:
    """Return (parent pid, start time) of a live, non-zombie process, else None."""
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = raw[raw.rfind(")") + 2:].split()  # the command name may contain spaces
    if fields[0] == "Z":
        return None
    return int(fields[1]), int(fields[19])


def descendants(root: int) -> set[Identity]:
    """Every live descendant of `root` (not `root` itself), with its start time."""
    children: dict[int, list[Identity]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        info = _stat(int(entry.name))
        if info is not None:
            children.setdefault(info[0], []).append((int(entry.name), info[1]))
    found: set[Identity] = set()
    stack = [root]
    while stack:
        for ident in children.get(stack.pop(), ()):
            if ident not in found:
                found.add(ident)
                stack.append(ident[0])
    return found


def alive(ident: Identity) -> bool:
    info = _stat(ident[0])
    return info is not None and info[1] == ident[1]


def watch(
    parent: int, *, poll_secs: float = 1.0, grace_secs: float = 3.0, status_file: Path | None = None
) -> int:
    """Record the parent's descendants until it dies, then kill the survivors; return how many.

    `status_file`, when given, receives the number of processes recorded after every scan (for
    tests, which poll it instead of sleeping).
    """
    me = os.getpid()
    parent_ident = _stat(parent)
    if parent_ident is None:
        return 0
    parent_key = (parent, parent_ident[1])
    seen: set[Identity] = set()
    while alive(parent_key):
        seen |= {ident for ident in descendants(parent) if ident[0] != me}
        if status_file is not None:
            status_file.write_text(str(len(seen)))
        time.sleep(poll_secs)
    deadline = time.monotonic() + grace_secs
    while time.monotonic() < deadline and any(alive(ident) for ident in seen):
        time.sleep(0.2)
    killed = 0
    for ident in seen:
        if alive(ident):
            try:
                os.kill(ident[0], signal.SIGKILL)
                killed += 1
            except ProcessLookupError:
                pass
    return killed


def start_reaper(parent: int | None = None, status_file: Path | None = None) -> subprocess.Popen[bytes]:
    """Spawn the reaper for `parent` (default: this process) in its own session."""
    extra = [] if status_file is None else ["--status-file", str(status_file)]
    return subprocess.Popen(
        [sys.executable, "-m", "engine.runtime.reaper", "--parent", str(parent or os.getpid()), *extra],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m engine.runtime.reaper", description=__doc__)
    parser.add_argument("--parent", type=int, required=True, help="pid whose descendants to reap")
    parser.add_argument("--status-file", type=Path, default=None, help="write the recorded count here")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a terminal Ctrl-C must not stop the reaper early
    watch(args.parent, status_file=args.status_file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
