"""Per-IP REST weight budget, as the venue enforces it (1,200 weight per minute by default).

Owns the weight table (reference 3.8) and the budget. The budget is a token bucket holding one
minute of weight that refills continuously; a request whose weight does not fit is refused (HTTP
429) and costs nothing. Weight that depends on the answer's size (items returned) is charged after
the answer is built and may push the bucket below zero, which delays the next requests.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

DEFAULT_WEIGHT_PER_MIN = 1200

INFO_WEIGHT_2 = frozenset({"l2Book", "allMids", "clearinghouseState", "orderStatus",
                           "spotClearinghouseState", "exchangeStatus"})
INFO_WEIGHT_60 = frozenset({"userRole"})
INFO_DEFAULT_WEIGHT = 20
EXTRA_PER_20_ITEMS = frozenset({"recentTrades", "historicalOrders", "userFills", "userFillsByTime",
                                "fundingHistory", "userFunding", "nonUserFundingUpdates",
                                "userNonFundingLedgerUpdates", "twapHistory", "userTwapSliceFills",
                                "userTwapSliceFillsByTime", "delegatorHistory", "delegatorRewards",
                                "validatorStats"})
EXTRA_PER_60_ITEMS = frozenset({"candleSnapshot"})


def info_weight(info_type: str) -> int:
    """Base weight of an /info request of this type."""
    if info_type in INFO_WEIGHT_2:
        return 2
    if info_type in INFO_WEIGHT_60:
        return 60
    return INFO_DEFAULT_WEIGHT


def info_extra_weight(info_type: str, n_items: int) -> int:
    """Weight added for the number of items an /info answer returned."""
    if info_type in EXTRA_PER_20_ITEMS:
        return n_items // 20
    if info_type in EXTRA_PER_60_ITEMS:
        return n_items // 60
    return 0


def exchange_weight(action: Any) -> int:
    """Weight of an /exchange action: 1 + floor(batch length / 40)."""
    batch = 1
    if isinstance(action, dict):
        for key in ("orders", "cancels", "modifies"):
            items = action.get(key)
            if isinstance(items, list):
                batch = max(batch, len(items))
    return 1 + batch // 40


class RateLimiter:
    """Token bucket per key (client IP); ``weight_per_min`` 0 disables limiting."""

    def __init__(self, weight_per_min: int = DEFAULT_WEIGHT_PER_MIN,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        if weight_per_min < 0:
            raise ValueError("weight_per_min must be >= 0")
        self.capacity = float(weight_per_min)
        self._rate_per_sec = weight_per_min / 60.0
        self._monotonic = monotonic
        self._buckets: dict[str, tuple[float, float]] = {}  # key -> (tokens, updated_at)

    @property
    def enabled(self) -> bool:
        return self.capacity > 0

    def _tokens(self, key: str) -> float:
        now = self._monotonic()
        tokens, at = self._buckets.get(key, (self.capacity, now))
        tokens = min(self.capacity, tokens + (now - at) * self._rate_per_sec)
        self._buckets[key] = (tokens, now)
        return tokens

    def try_acquire(self, key: str, weight: int) -> bool:
        """Take ``weight`` from the key's budget if it fits; False means answer HTTP 429."""
        if not self.enabled:
            return True
        tokens = self._tokens(key)
        if tokens < weight:
            return False
        self._buckets[key] = (tokens - weight, self._buckets[key][1])
        return True

    def charge(self, key: str, weight: int) -> None:
        """Take extra weight unconditionally (size-dependent weight, known after answering)."""
        if not self.enabled or weight <= 0:
            return
        tokens = self._tokens(key)
        self._buckets[key] = (tokens - weight, self._buckets[key][1])

    def retry_after_secs(self, key: str, weight: int) -> int:
        """Whole seconds until ``weight`` fits again (for the Retry-After header)."""
        if not self.enabled:
            return 0
        missing = weight - self._tokens(key)
        return max(1, math.ceil(missing / self._rate_per_sec)) if missing > 0 else 0
