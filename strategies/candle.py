"""The candle record every layer above the venue boundary shares (sidecar, Redis, shards, replay).

Times are UTC epoch milliseconds, the venue's unit: `t` is the open time, `close_ms` the close
time (the venue's `T`, which is the last millisecond of the candle: t + interval - 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

_INTERVAL_MS = {
    "1m": 60_000, "3m": 180_000, "5m": 300_000, "15m": 900_000, "30m": 1_800_000,
    "1h": 3_600_000, "2h": 7_200_000, "4h": 14_400_000, "8h": 28_800_000, "12h": 43_200_000,
    "1d": 86_400_000,
}


def interval_ms(interval: str) -> int:
    """Return the length of a Hyperliquid interval name in ms; raise ValueError if unknown."""
    try:
        return _INTERVAL_MS[interval]
    except KeyError:
        valid = ", ".join(_INTERVAL_MS)
        raise ValueError(f"unknown candle interval {interval!r}; expected one of: {valid}") from None


@dataclass(frozen=True, slots=True)
class Candle:
    """One OHLCV candle. Validated on construction: finite prices, high >= low, volume >= 0."""

    t: int
    close_ms: int
    o: float
    h: float
    l: float  # noqa: E741 - the venue's field name
    c: float
    v: float
    n: int = 0

    def __post_init__(self) -> None:
        for name in ("o", "h", "l", "c", "v"):
            value = getattr(self, name)
            if not math.isfinite(value):
                raise ValueError(f"candle t={self.t}: field {name} is not finite ({value!r})")
        if self.v < 0:
            raise ValueError(f"candle t={self.t}: negative volume {self.v}")
        if self.h < self.l:
            raise ValueError(f"candle t={self.t}: high {self.h} below low {self.l}")
        if self.close_ms < self.t:
            raise ValueError(f"candle t={self.t}: close time {self.close_ms} before open time")
