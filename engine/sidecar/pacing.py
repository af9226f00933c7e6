"""Client-side pacing of the venue's per-IP WebSocket rates (messages a minute, new connections a minute).

The venue counts events per IP in any 60 s window and refuses the excess; a refused subscribe is
a market silently missing, so the sidecar never sends what the venue would refuse. One
`SlidingWindow` per rate is shared by all of a sidecar's connections (they share its IP). It
keeps `headroom` below the venue's number, because the venue counts arrival times, which can
bunch up compared with send times.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Callable


class SlidingWindow:
    """At most `cap` events in any `window_secs`; `acquire` waits for room (async, one loop)."""

    def __init__(
        self,
        per_window: int,
        *,
        window_secs: float = 60.0,
        headroom: float = 0.9,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_window < 1:
            raise ValueError(f"per_window must be >= 1, got {per_window}")
        self.cap = max(1, math.floor(per_window * headroom))
        self.window_secs = window_secs
        self._clock = clock
        self._events: deque[float] = deque()

    def _trim(self, now: float) -> None:
        while self._events and now - self._events[0] >= self.window_secs:
            self._events.popleft()

    def wait_secs(self) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        now = self._clock()
        self._trim(now)
        if len(self._events) < self.cap:
            return 0.0
        return max(0.0, self._events[0] + self.window_secs - now)

    def try_take(self) -> bool:
        """Record one event if it fits now."""
        if self.wait_secs() > 0:
            return False
        self._events.append(self._clock())
        return True

    async def take(self) -> None:
        """Record one event, waiting until it fits."""
        while not self.try_take():
            await asyncio.sleep(min(1.0, max(0.01, self.wait_secs())))

    def used(self) -> int:
        self._trim(self._clock())
        return len(self._events)
