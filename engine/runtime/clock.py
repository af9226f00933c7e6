"""The wall clock in epoch milliseconds: the one default every `clock_ms` parameter falls back to.

Why its own module: components take a `clock_ms: Callable[[], int]` so tests can inject time; the
production default was written a dozen times. It depends on nothing, so every package may import it.
"""

from __future__ import annotations

import time


def wall_ms() -> int:
    """Return the current wall-clock time (UTC) in epoch milliseconds."""
    return time.time_ns() // 1_000_000
