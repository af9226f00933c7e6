"""When the clock may close a WebSocket market's bar: once its socket has shown the venue past the close.

A bar's last update and the next bar's first one come in order on one connection. The venue
pushes many markets' updates on a connection; once any of them is from after a bar's close (a
newer bar's candle, a BBO stamped later), an update of that bar still missing will not come (the
market had no trade since). Before that, a missing final update may only be queued behind: on a
loaded venue or host, a bar closed then by the clock would be a partial bar (corrected later, at
the price of a rebuild in every shard that applied it). A socket that shows nothing is waited for
`hold_ms` past close + grace at most; a socket that died forgets its forming bars anyway.
"""

from __future__ import annotations

from collections.abc import Callable

from strategies.candle import Candle

CLOSE_HOLD_MS = 8_000


class SocketProgress:
    """The latest venue time each connection delivered; `held` answers the tracker's question."""

    def __init__(self, slot_of: Callable[[str], int | None], *, grace_ms: int,
                 hold_ms: int = CLOSE_HOLD_MS) -> None:  # fmt: skip
        self._slot_of = slot_of
        self._limit = grace_ms + hold_ms
        self._latest: dict[int, int] = {}

    def seen(self, market: str, venue_ms: int) -> None:
        """A frame of `market` carried `venue_ms` (a candle's open time, a BBO's time)."""
        slot = self._slot_of(market)
        if slot is not None and venue_ms > self._latest.get(slot, -1):
            self._latest[slot] = venue_ms

    def held(self, venue_now_ms: int) -> Callable[[str, Candle], bool]:
        """For `CandleTracker.due_closes`: whether a due bar waits for its socket to move on."""

        def held(market: str, forming: Candle) -> bool:
            slot = self._slot_of(market)
            return slot is not None and self._latest.get(slot, -1) <= forming.close_ms \
                and venue_now_ms < forming.close_ms + self._limit

        return held
