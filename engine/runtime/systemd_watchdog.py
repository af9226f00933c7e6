"""systemd notify protocol for the daemon: READY, WATCHDOG, STATUS and STOPPING.

The watchdog is pinged from the engine loop itself (`tick_done` after every tick, `ping` from
inside the boundary sleep), never from a timer thread: if the loop hangs, the pings stop and
systemd restarts the service (the reference pinged from a thread, so a hung loop went unnoticed).
READY is sent after the first completed tick, so `systemctl start` returns once the engine
really trades. Silent, and free, when NOTIFY_SOCKET is unset (not under systemd).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Protocol

import sdnotify

log = logging.getLogger(__name__)

_MAX_STATUS_CHARS = 400


class _Notifier(Protocol):
    def notify(self, state: str) -> None: ...


def watchdog_interval_secs(env: Mapping[str, str], pid: int) -> float | None:
    """Return how often to ping (half of WATCHDOG_USEC, clamped to [0.5, 300] s), or None if off.

    None when WATCHDOG_USEC is unset/invalid or WATCHDOG_PID names another process.
    """
    usec = env.get("WATCHDOG_USEC", "").strip()
    if not usec.isdigit() or int(usec) <= 0:
        return None
    target = env.get("WATCHDOG_PID", "").strip()
    if target and (not target.isdigit() or int(target) != pid):
        return None
    return min(300.0, max(0.5, int(usec) / 2_000_000.0))


def _clean_status(text: str) -> str:
    return " ".join(text.split())[:_MAX_STATUS_CHARS]


class SystemdWatchdog:
    """Sends sd_notify messages for one daemon process; every method is a no-op when disabled."""

    def __init__(
        self,
        env: Mapping[str, str] | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        notifier_factory: Callable[[], _Notifier] = sdnotify.SystemdNotifier,
    ) -> None:
        env = os.environ if env is None else env
        self._clock = clock
        self._enabled = bool(env.get("NOTIFY_SOCKET", "").strip())
        self._interval = watchdog_interval_secs(env, os.getpid()) if self._enabled else None
        self._notifier: _Notifier | None = notifier_factory() if self._enabled else None
        self._ready = False
        self._last_ping: float | None = None

    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def ready_sent(self) -> bool:
        return self._ready

    @property
    def interval_secs(self) -> float | None:
        return self._interval

    def _send(self, *lines: str) -> None:
        if self._notifier is None:
            return
        try:
            self._notifier.notify("\n".join(lines))
        except OSError as exc:  # a vanished socket must never stop trading
            log.warning("systemd notify failed error=%s", exc)

    def tick_done(self, status: str) -> None:
        """Report a completed tick: READY=1 the first time, WATCHDOG=1 after; STATUS each time."""
        if not self._enabled:
            return
        first = not self._ready
        self._ready = True
        self._last_ping = self._clock()
        head = "READY=1" if first else "WATCHDOG=1"
        self._send(head, f"STATUS={_clean_status(status)}")

    def ping(self) -> None:
        """Send WATCHDOG=1 if half the watchdog period has passed (call from long waits in the loop)."""
        if self._interval is None or not self._ready:
            return
        now = self._clock()
        if self._last_ping is None or now - self._last_ping >= self._interval:
            self._last_ping = now
            self._send("WATCHDOG=1")

    def status(self, text: str) -> None:
        """Set the one-line STATUS shown by `systemctl status`."""
        if self._enabled:
            self._send(f"STATUS={_clean_status(text)}")

    def stopping(self, status: str = "stopping") -> None:
        """Tell systemd the service is shutting down (send once, before the final flush)."""
        if self._enabled:
            self._send("STOPPING=1", f"STATUS={_clean_status(status)}")
