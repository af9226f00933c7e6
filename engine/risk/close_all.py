"""The drawdown close-all plan (reference §1.12): which open positions to close now, at what price.

Pure: given the open positions and the engine's quotes, return one `ForcedClose` per position that
has a usable price, and one `SkippedClose` per position that has none. A quote is usable when its
price is > 0 and its age is known and at most `stale_mid_max_age_secs`
(AI_QUANT_DRAWDOWN_CLOSE_ALL_STALE_MID_MAX_AGE_S, default 60, clamped [1, 600]); a quote older than
`fresh_mid_max_age_secs` (10 s) is still used but flagged `stale` so the caller can say so. Symbols
are visited in sorted order.

Unlike the reference (once per kill event, a skipped symbol never retried), the caller asks again
every tick while the close-all is armed (engine/risk/manager.py `close_all_armed`), so a position
skipped for a stale price or refused by the venue is closed as soon as it can be.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from engine.config.env import env_float
from engine.execution.broker import Position
from engine.marketdata.hub import PriceQuote
from strategies.enums import PositionSide

FRESH_MID_MAX_AGE_SECS = 10.0


@dataclass(frozen=True, slots=True, kw_only=True)
class CloseAllSettings:
    stale_mid_max_age_secs: float = 60.0
    fresh_mid_max_age_secs: float = FRESH_MID_MAX_AGE_SECS

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> CloseAllSettings:
        """Read AI_QUANT_DRAWDOWN_CLOSE_ALL_STALE_MID_MAX_AGE_S; raise ConfigError if invalid."""
        limit = env_float("AI_QUANT_DRAWDOWN_CLOSE_ALL_STALE_MID_MAX_AGE_S", 60.0, env, lo=1.0, hi=600.0)
        return cls(stale_mid_max_age_secs=limit)


@dataclass(frozen=True, slots=True, kw_only=True)
class ForcedClose:
    """Close the whole `side` position of `symbol` at about `price` (quote `age_secs` old)."""

    symbol: str
    side: PositionSide
    price: float
    age_secs: float
    stale: bool


@dataclass(frozen=True, slots=True, kw_only=True)
class SkippedClose:
    """A position the plan could not close now: no price, or a price older than the limit."""

    symbol: str
    reason: str  # "no_price" | "stale_price" (the caller adds "no_account")
    age_secs: float | None


def plan_close_all(
    positions: Mapping[str, Position], quotes: Mapping[str, PriceQuote], settings: CloseAllSettings
) -> tuple[tuple[ForcedClose, ...], tuple[SkippedClose, ...]]:
    """Return (closes, skipped) for every open position, in sorted symbol order."""
    closes: list[ForcedClose] = []
    skipped: list[SkippedClose] = []
    for symbol in sorted(positions):
        quote = quotes.get(symbol)
        price = None if quote is None else quote.price
        age = None if quote is None else quote.age_secs
        if price is None or not math.isfinite(price) or price <= 0:
            skipped.append(SkippedClose(symbol=symbol, reason="no_price", age_secs=age))
        elif age is None or not math.isfinite(age) or age > settings.stale_mid_max_age_secs:
            skipped.append(SkippedClose(symbol=symbol, reason="stale_price", age_secs=age))
        else:
            closes.append(ForcedClose(
                symbol=symbol, side=positions[symbol].side, price=price, age_secs=age,
                stale=age > settings.fresh_mid_max_age_secs,
            ))  # fmt: skip
    return tuple(closes), tuple(skipped)
