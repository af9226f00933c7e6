"""Process hygiene for the cluster tests: private Ray temp dirs, tagged processes, PID namespaces.

Other Ray instances share this machine (the test session's own `ray_session`, other tests, other
people), so a cluster test must never touch them:
- every process a cluster test starts carries the environment variable TAG_VAR=<unique tag>
  (Ray's daemons and workers inherit it), which is how we find and count what is left running;
- RAY_TMPDIR points at a private, short directory (Unix socket paths must stay < 108 bytes),
  so `ray start` / Cluster write their "current cluster" address file there and nobody's
  `ray.init()` or `connect_ray()` attaches to our test cluster by accident;
- `ray stop` (and `ray down`, which runs it over SSH) kills EVERY Ray process it can see. It only
  runs inside a private PID namespace (`unshare --pid --fork --mount-proc`, needs root or user
  namespaces), where it sees only what the test started. When the namespace ends, the kernel
  kills whatever was left in it.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Collection, Mapping
from pathlib import Path

TAG_VAR = "AIQ_CLUSTER_TEST_TAG"
PROJECT_ROOT = Path(__file__).resolve().parents[3]
VENV_BIN = Path(sys.executable).parent  # the running venv (.venv, or .ci-venv in CI); not resolved


def new_tag() -> str:
    return uuid.uuid4().hex[:12]


def short_tmpdir(prefix: str = "aiqc-") -> str:
    """A fresh private directory directly under /tmp (short enough for Ray's socket paths)."""
    return tempfile.mkdtemp(prefix=prefix, dir="/tmp")


def remove_tmpdir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cluster_env(tag: str, ray_tmpdir: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for every process of a cluster test: loopback Ray, auth off, private temp dir."""
    env = dict(os.environ)
    for name in ("RAY_ADDRESS", "RAY_DASHBOARD_URL", "PYTEST_CURRENT_TEST"):
        env.pop(name, None)
    env.update({
        "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0",
        "RAY_AUTH_MODE": "disabled",
        "RAY_USAGE_STATS_ENABLED": "0",
        "RAY_TMPDIR": ray_tmpdir,
        "PYTHONPATH": str(PROJECT_ROOT),
        "PATH": f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}",
        TAG_VAR: tag,
    })
    env.update(extra or {})
    return env


def process_alive(pid: int) -> bool:
    """True while `pid` exists and is not a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rpartition(")")[2].split()[0] not in ("Z", "X")


def process_name(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return "?"


def live_pids(ignore: Collection[int] = ()) -> list[int]:
    """Every live process this /proc shows (inside our PID namespace: only ours), minus `ignore`."""
    pids = [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()]
    return sorted(p for p in pids if p not in ignore and process_alive(p))


def tagged_pids(tag: str) -> list[int]:
    """Live (non-zombie) processes whose environment carries TAG_VAR=tag."""
    marker = f"{TAG_VAR}={tag}".encode()
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue
        if marker in environ.split(b"\0") and process_alive(int(entry.name)):
            found.append(int(entry.name))
    return found


def wait_no_tagged(tag: str, timeout_secs: float, ignore: Collection[int] = ()) -> list[int]:
    """Poll until no tagged process (except `ignore`) is left; return those still there at the deadline."""
    deadline = time.monotonic() + timeout_secs
    while True:
        left = [pid for pid in tagged_pids(tag) if pid not in ignore]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def kill_tagged(tag: str, grace_secs: float = 5.0) -> None:
    """SIGTERM every tagged process, then SIGKILL what is left after `grace_secs`."""
    for sig, wait in ((signal.SIGTERM, grace_secs), (signal.SIGKILL, 2.0)):
        for pid in tagged_pids(tag):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        if not wait_no_tagged(tag, wait):
            return


@functools.cache
def pid_namespace_available() -> bool:
    """True when `unshare --pid --fork --mount-proc` works here (root, or user namespaces)."""
    if shutil.which("unshare") is None:
        return False
    try:
        done = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", "true"],
                              capture_output=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return done.returncode == 0


def in_pid_namespace(argv: list[str]) -> list[str]:
    """Wrap argv to run in a private PID namespace. bash is its PID 1 (it reaps orphans, which
    `ray start`'s daemons become); `exit $?` stops bash from exec-ing argv in its place."""
    return ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child",
            "bash", "-c", '"$@"; exit $?', "bash", *argv]
