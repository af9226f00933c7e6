"""The last closed candles a shard applied to a symbol's state, to spot ones the store rewrote.

The sidecar rewrites a closed candle it already published when the venue's REST answer differs
(its final WS update came after the close, e.g. on a loaded host); its cross-check covers the
last TAIL_BARS (4) published candles (engine.sidecar.candles). A shard that applied the stale
bar must rebuild, or its indicators differ from a replay over the stored candles forever.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from strategies.candle import Candle

RECHECK_BARS = 4  # applied candles re-read and compared on every read (= the sidecar's TAIL_BARS)


class AppliedTail:
    """The newest RECHECK_BARS + 1 applied candles (a read starts after the oldest of them)."""

    __slots__ = ("_candles",)

    def __init__(self, candles: Iterable[Candle] = ()) -> None:
        self._candles: deque[Candle] = deque(candles, maxlen=RECHECK_BARS + 1)

    def append(self, candle: Candle) -> None:
        self._candles.append(candle)

    def copy(self) -> AppliedTail:
        return AppliedTail(self._candles)

    def read_from(self, last_t: int | None) -> int | None:
        """Where the next read starts: RECHECK_BARS applied candles before `last_t` when known."""
        return self._candles[0].t if len(self._candles) > 1 else last_t

    def rewritten(self, candles: Iterable[Candle], last_t: int | None) -> Candle | None:
        """The first candle of a read (ascending) at or before `last_t` that differs from the one applied."""
        applied = {c.t: c for c in self._candles}
        for candle in candles:
            if last_t is None or candle.t > last_t:
                break
            if applied.get(candle.t, candle) != candle:
                return candle
        return None
