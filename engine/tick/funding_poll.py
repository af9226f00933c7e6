"""When the engine asks the venue for funding rates, and the rates it last got.

Kept apart from the tick so the paper broker's funding accrual, the exit rules' funding headwind
and the shadow fleet all read one set of rates, polled at most once per `poll_ms`.
"""

from __future__ import annotations

from engine.tick.types import FundingSource


class FundingPoller:
    """Polls `source` when funding is on and a poll is due; remembers the last rates."""

    def __init__(self, source: FundingSource | None, *, enabled: bool, poll_ms: int) -> None:
        self._source = source
        self._enabled = enabled and source is not None
        self._poll_ms = poll_ms
        self._last_poll_ms: int | None = None
        self.rates: dict[str, float] = {}

    def rate(self, symbol: str) -> float:
        """The symbol's last polled hourly rate (0.0 before any)."""
        return self.rates.get(symbol, 0.0)

    def polled_at(self, now_ms: int) -> bool:
        """Whether this tick (`now_ms`) polled: the ticks the paper broker accrues funding on."""
        return self._last_poll_ms == now_ms

    def poll(self, now_ms: int) -> dict[str, float] | None:
        """New rates when a poll is due, else None. A failed lookup raises (the tick counts it) and
        is not retried before the next period: funding only waits, the hours catch up later."""
        if not self._enabled or self._source is None:
            return None
        if self._last_poll_ms is not None and now_ms - self._last_poll_ms < self._poll_ms:
            return None
        self._last_poll_ms = now_ms
        self.rates = dict(self._source.funding_rates())
        return self.rates
