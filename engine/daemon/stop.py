"""The stop flag SIGTERM/SIGINT set: its own module so every daemon module can import it (no circle)."""

from __future__ import annotations

import signal
import threading
from types import FrameType


class StopFlag:
    """Set by SIGTERM/SIGINT; the loop and start-up poll it. `wait` sleeps in short slices."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.signal_name: str | None = None

    def __bool__(self) -> bool:
        return self._event.is_set()

    def handler(self, signum: int, _frame: FrameType | None) -> None:
        if not self._event.is_set():
            self.signal_name = signal.Signals(signum).name
        self._event.set()

    def install(self) -> None:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self.handler)

    def wait(self, secs: float) -> bool:
        return self._event.wait(secs)
