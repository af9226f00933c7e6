"""The BTC trend gate every shard tracks for itself: bullish = Close[-1] > EMA(Close, 50)[-1].

Why per shard: the strategy's BTC gate is a cross-symbol input; if one shard computed it and
others waited, a slow shard would stall the tick. Each shard therefore follows the anchor's
closed candles from Redis on its own (a few floats of state). Pure, no I/O.

The EMA is pandas' `ewm(span=50, adjust=False)` recursion over the anchor's whole history
(seeded with the first close); it is undefined (bullish = None, "unknown, gate passes") until
50 closes were seen, like `ta`'s EMA with fillna=False. Window 50 is the reference engine's
hard-coded value, not a config knob. `bullish_at(t)` answers for the newest anchor candle
with open time <= t, so a symbol's decision on bar t uses the anchor as of bar t.
"""

from __future__ import annotations

from collections import deque
from typing import Any

from strategies.signals import BTC_TREND_EMA_WINDOW as ANCHOR_EMA_WINDOW

_HISTORY = 256  # anchor bars remembered for bullish_at(); far more than a tick's spread


class AnchorTrend:
    """Incremental EMA50 trend of the anchor symbol, checkpointable as a JSON-able dict."""

    def __init__(self) -> None:
        self.ema: float | None = None
        self.count = 0
        self.last_t: int | None = None
        self.last_close_ms: int | None = None
        self.last_c: float | None = None
        self.history_gap = False
        self._recent: deque[tuple[int, bool | None]] = deque(maxlen=_HISTORY)

    def update(self, t: int, close_ms: int, c: float) -> None:
        """Apply one closed anchor candle (callers skip t <= last_t)."""
        alpha = 2.0 / (ANCHOR_EMA_WINDOW + 1)
        self.ema = c if self.ema is None else alpha * c + (1.0 - alpha) * self.ema
        self.count += 1
        self.last_t, self.last_close_ms, self.last_c = t, close_ms, c
        self._recent.append((t, c > self.ema if self.count >= ANCHOR_EMA_WINDOW else None))

    def bullish_at(self, t: int) -> bool | None:
        """Return the trend as of the newest anchor bar with open time <= t; None if unknown."""
        for bar_t, bullish in reversed(self._recent):
            if bar_t <= t:
                return bullish
        return None

    def to_state(self) -> dict[str, Any]:
        return {
            "ema": self.ema, "count": self.count, "last_t": self.last_t,
            "last_close_ms": self.last_close_ms, "last_c": self.last_c, "gap": self.history_gap,
            "recent": [[t, b] for t, b in self._recent],
        }

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> AnchorTrend:
        trend = cls()
        trend.ema = state["ema"]
        trend.count = int(state["count"])
        trend.last_t = state["last_t"]
        trend.last_close_ms = state["last_close_ms"]
        trend.last_c = state["last_c"]
        trend.history_gap = bool(state["gap"])
        trend._recent.extend((int(t), b) for t, b in state["recent"])
        return trend
