"""Hyperliquid's pure order rules: client order ids and price/size precision.

Kept apart from the signer and the transport (`engine.venue.exchange_client`, which re-exports
these names) because they are pure: no I/O, no signing library, testable on their own.
"""

from __future__ import annotations

import hashlib
import math
import re
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_EVEN, Decimal

from engine.enums import RoundDirection

_CLOID_RE = re.compile(r"^0x[0-9a-f]{32}$")
_ROUNDING = {
    RoundDirection.NEAREST: ROUND_HALF_EVEN,
    RoundDirection.UP: ROUND_CEILING,
    RoundDirection.DOWN: ROUND_FLOOR,
}


# --- client order ids ---------------------------------------------------------------------------


def cloid_for(intent_key: str) -> str:
    """Return the deterministic client order id of an intent: "0x" + 32 lowercase hex (the first
    16 bytes of SHA-256 of the key), so a re-send after a crash carries the same cloid."""
    if not isinstance(intent_key, str) or not intent_key:
        raise ValueError("intent_key must be a non-empty string")
    return "0x" + hashlib.sha256(intent_key.encode()).hexdigest()[:32]


def is_valid_cloid(value: object) -> bool:
    """Return True for "0x" + exactly 32 lowercase hex characters."""
    return isinstance(value, str) and _CLOID_RE.match(value) is not None


def validate_cloid(value: object) -> str:
    """Return `value` if it is a valid cloid; raise ValueError otherwise."""
    if not is_valid_cloid(value):
        raise ValueError(f"not a cloid (0x + 32 lowercase hex): {value!r}")
    return value  # type: ignore[return-value]


# --- venue precision rules (pure) ---------------------------------------------------------------


def _decimal(x: float, what: str) -> Decimal:
    if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(x):
        raise ValueError(f"{what} must be a finite number, got {x!r}")
    return Decimal(repr(float(x)))


def max_price_decimals(sz_decimals: int, *, is_spot: bool = False) -> int:
    """Return the most decimals a price may have: 6 - szDecimals for perps (8 - for spot)."""
    return max(0, (8 if is_spot else 6) - sz_decimals)


def round_price(
    px: float, sz_decimals: int, direction: RoundDirection = RoundDirection.NEAREST, *, is_spot: bool = False
) -> float:
    """Round a positive price to the venue's tick: at most 5 significant figures and at most
    `max_price_decimals` decimals; prices of 100,000 and above round to whole units (integers are
    always valid). Raise ValueError if the price is not positive or rounds to zero."""
    d = _decimal(px, "price")
    if d <= 0:
        raise ValueError(f"price must be positive, got {px!r}")
    q_exp = min(0, max(d.adjusted() - 4, -max_price_decimals(sz_decimals, is_spot=is_spot)))
    out = d.quantize(Decimal(1).scaleb(q_exp), rounding=_ROUNDING[RoundDirection(direction)])
    if out <= 0:
        raise ValueError(f"price {px!r} rounds to zero with szDecimals={sz_decimals}")
    return float(out)


def is_valid_price(px: float, sz_decimals: int, *, is_spot: bool = False) -> bool:
    """Return True if the venue would accept `px` as a limit price for this asset."""
    try:
        d = _decimal(px, "price")
    except ValueError:
        return False
    if d <= 0:
        return False
    if d == d.to_integral_value():
        return True
    norm = d.normalize()
    decimals = -norm.as_tuple().exponent
    significant = len(norm.as_tuple().digits)
    return decimals <= max_price_decimals(sz_decimals, is_spot=is_spot) and significant <= 5


def round_size(sz: float, sz_decimals: int, direction: RoundDirection = RoundDirection.DOWN) -> float:
    """Round a non-negative size to `sz_decimals` decimals (down by default, so a position is never
    over-sized). Rounding up ignores float noise below 1e-12. Raise ValueError if negative."""
    d = _decimal(sz, "size")
    if d < 0:
        raise ValueError(f"size must not be negative, got {sz!r}")
    direction = RoundDirection(direction)
    if direction is RoundDirection.UP:
        d = max(Decimal(0), d - Decimal("1e-12"))
    return float(d.quantize(Decimal(1).scaleb(-sz_decimals), rounding=_ROUNDING[direction]))


def is_valid_size(sz: float, sz_decimals: int) -> bool:
    """Return True if `sz` is positive and has at most `sz_decimals` decimals."""
    try:
        d = _decimal(sz, "size")
    except ValueError:
        return False
    return d > 0 and d == d.quantize(Decimal(1).scaleb(-sz_decimals))


def aggressive_limit_price(ref_px: float, is_buy: bool, slippage: float, sz_decimals: int) -> float:
    """Return the IOC limit price the SDK's market orders use: ref_px * (1 ± slippage), rounded to
    the venue's tick. `slippage` is a fraction (0.01 = 1 %)."""
    if not math.isfinite(slippage) or not 0 <= slippage < 1:
        raise ValueError(f"slippage must be in [0, 1), got {slippage!r}")
    return round_price(ref_px * (1 + slippage if is_buy else 1 - slippage), sz_decimals)
