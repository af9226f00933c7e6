"""The venue's per-address request budget for /exchange actions (separate from the per-IP weight).

Every address starts with a buffer of 10,000 requests and earns one more per 1 USDC it trades
(cumulative, never reset). While requests used exceed that cap, the address may still send one
request every 10 s. A batch of n orders / cancels / modifies counts n. A refused request uses
nothing and does not restart the 10 s window (both measured on testnet). Cancels get a larger
cap, min(cap + 100,000, 2 × cap), so a throttled address can still cancel. The budget is the acting
user's: an agent's actions count against its master. Holds no clock: callers pass the time.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from simulator import venue_vocab as vt
from simulator.matching import wire

INITIAL_REQUESTS = 10_000
THROTTLED_EVERY_MS = 10_000
CANCEL_EXTRA_REQUESTS = 100_000
CANCEL_ACTIONS = frozenset({"cancel", "cancelByCloid"})
BATCH_KEYS = ("orders", "cancels", "modifies")
RESERVED_REQUEST_COST_USD = 0.0005  # reserveRequestWeight: USDC per request, from the perp balance
SCHEDULE_CANCEL_MIN_VOLUME_USD = 1_000_000.0  # scheduleCancel is refused until an address traded this


def action_requests(action: dict[str, Any]) -> int:
    """How many requests an action counts: the length of its batch, at least 1."""
    for key in BATCH_KEYS:
        items = action.get(key)
        if isinstance(items, list):
            return max(1, len(items))
    return 1


@dataclass(slots=True)
class _Usage:
    used: int = 0
    reserved: int = 0  # requests bought with reserveRequestWeight
    last_throttled_pass_ms: int | None = None


class AddressLimits:
    """Requests used per address, and the admission rule."""

    def __init__(self, initial_requests: int = INITIAL_REQUESTS) -> None:
        if initial_requests < 0:
            raise ValueError(f"initial_requests must be >= 0, got {initial_requests}")
        self.initial_requests = initial_requests
        self._usage: dict[str, _Usage] = {}

    def cap(self, volume_usd: float, reserved: int = 0) -> int:
        """Requests an address that traded `volume_usd` (and bought `reserved`) may send before it is
        throttled."""
        return self.initial_requests + int(volume_usd) + reserved

    def reserve(self, user: str, weight: int) -> None:
        """Add `weight` bought requests (reserveRequestWeight; the caller charges the USDC)."""
        self._usage.setdefault(user, _Usage()).reserved += weight

    def admit(self, user: str, n: int, volume_usd: float, wall_ms: int, *, is_cancel: bool) -> str | None:
        """Count `n` requests for `user` if the budget allows; else return the venue's refusal text."""
        usage = self._usage.setdefault(user, _Usage())
        cap = self.cap(volume_usd, usage.reserved)
        if is_cancel:
            cap = min(cap + CANCEL_EXTRA_REQUESTS, 2 * cap)
        if usage.used + n <= cap:
            usage.used += n
            return None
        last = usage.last_throttled_pass_ms
        if last is None or wall_ms - last >= THROTTLED_EVERY_MS:
            usage.last_throttled_pass_ms = wall_ms
            usage.used += n
            return None
        return vt.too_many_requests(usage.used + n, cap, volume_usd)

    def info(self, user: str, volume_usd: float) -> dict[str, Any]:
        """The userRateLimit answer (shape as recorded from the venue)."""
        usage = self._usage.get(user, _Usage())
        return {
            "cumVlm": wire(volume_usd, 6),
            "nRequestsUsed": usage.used,
            "nRequestsCap": self.cap(volume_usd, usage.reserved),
            "nRequestsSurplus": 0,
        }
