"""The shared REST weight budget: one token bucket per IP, used by the info and exchange clients.

Hyperliquid limits REST traffic per IP to 1,200 weight per minute (reference 3.8). Both clients
draw from one `RateBudget` so that the process as a whole stays under the venue's limit and gets
a local, typed refusal instead of an HTTP 429. Weights follow the venue's documented table.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from engine.enums import InfoType
from engine.venue.types import TemporaryVenueError

DEFAULT_WEIGHT_PER_MINUTE = 1200

_LIGHT_INFO = frozenset(
    {InfoType.L2_BOOK, InfoType.ALL_MIDS, InfoType.CLEARINGHOUSE_STATE, InfoType.ORDER_STATUS}
)
_PER_20_ITEMS = frozenset(
    {InfoType.USER_FILLS, InfoType.USER_FILLS_BY_TIME, InfoType.FUNDING_HISTORY, InfoType.USER_FUNDING}
)


def info_weight(info_type: InfoType | str) -> int:
    """Return the up-front weight of one `/info` request: 2 for light reads, 20 otherwise."""
    if info_type in ("spotClearinghouseState", "exchangeStatus") or info_type in _LIGHT_INFO:
        return 2
    if info_type == "userRole":
        return 60
    return 20


def info_extra_weight(info_type: InfoType | str, items_returned: int) -> int:
    """Return the weight charged after the answer: +1 per 20 items (fills, funding), per 60 candles."""
    if info_type in _PER_20_ITEMS:
        return items_returned // 20
    if info_type == InfoType.CANDLE_SNAPSHOT:
        return items_returned // 60
    return 0


def exchange_weight(batch_len: int) -> int:
    """Return the weight of one `/exchange` action carrying `batch_len` orders or cancels."""
    return 1 + max(0, batch_len) // 40


class RateBudgetExhausted(TemporaryVenueError):
    """The budget cannot grant the weight before the caller's deadline; nothing was sent."""

    def __init__(self, weight: int, wait_secs: float) -> None:
        detail = f"weight {weight} needs {wait_secs:.3f}s more than the deadline allows"
        super().__init__("rate_budget", 0, detail)
        self.weight = weight
        self.wait_secs = wait_secs


class RateBudget:
    """Thread-safe token bucket: capacity `weight_per_minute`, refilled continuously.

    `clock` returns monotonic seconds and `sleep` waits; both are injectable so tests can drive
    the bucket without real time passing.
    """

    def __init__(
        self,
        weight_per_minute: int = DEFAULT_WEIGHT_PER_MINUTE,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if weight_per_minute <= 0:
            raise ValueError(f"weight_per_minute must be positive, got {weight_per_minute}")
        self.capacity = float(weight_per_minute)
        self._rate_per_sec = weight_per_minute / 60.0
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._tokens = self.capacity
        self._updated = clock()

    def now(self) -> float:
        """Return the budget's clock (monotonic seconds); deadlines are expressed in it."""
        return self._clock()

    def _refill(self, now: float) -> None:
        elapsed = max(0.0, now - self._updated)
        self._tokens = min(self.capacity, self._tokens + elapsed * self._rate_per_sec)
        self._updated = now

    def available(self) -> float:
        """Return the weight that could be granted right now (negative while in debt)."""
        with self._lock:
            self._refill(self._clock())
            return self._tokens

    def try_acquire(self, weight: int) -> bool:
        """Take `weight` if it is available now; never blocks."""
        self._check(weight)
        with self._lock:
            self._refill(self._clock())
            if self._tokens >= weight:
                self._tokens -= weight
                return True
            return False

    def acquire(self, weight: int, deadline: float | None = None) -> None:
        """Take `weight`, waiting for refill; raise RateBudgetExhausted if the wait would end after
        `deadline` (seconds on `now()`'s clock; None waits as long as needed)."""
        self._check(weight)
        while True:
            with self._lock:
                now = self._clock()
                self._refill(now)
                if self._tokens >= weight:
                    self._tokens -= weight
                    return
                wait = (weight - self._tokens) / self._rate_per_sec
            if deadline is not None and now + wait > deadline:
                raise RateBudgetExhausted(weight, now + wait - deadline)
            self._sleep(wait)

    def charge(self, weight: int) -> None:
        """Record weight already spent (e.g. per-item extra weight known only after the answer);
        the bucket may go into debt, which later acquires pay back."""
        if weight <= 0:
            return
        with self._lock:
            self._refill(self._clock())
            self._tokens -= weight

    def penalise(self, retry_after_secs: float) -> None:
        """Empty the bucket and keep it empty for `retry_after_secs` after the venue said 429."""
        if not math.isfinite(retry_after_secs) or retry_after_secs <= 0:
            retry_after_secs = 0.0
        with self._lock:
            self._refill(self._clock())
            self._tokens = min(self._tokens, -retry_after_secs * self._rate_per_sec)

    def _check(self, weight: int) -> None:
        if weight <= 0 or weight > self.capacity:
            raise ValueError(f"weight {weight} outside 1..{int(self.capacity)}")
