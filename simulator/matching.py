"""Pure pieces of the simulated venue's matching: wire-number parsing, tick/lot checks, book walks.

No state and no I/O: the exchange core passes in the book that the market replay produced and gets
back the fills an aggressive order would take, and asks here whether a price or size string obeys
the venue's precision rules (price ≤ 5 significant figures and ≤ 6 − szDecimals decimals, integer
prices always valid; size ≤ szDecimals decimals).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal, InvalidOperation

MAX_PRICE_SIG_FIGS = 5
PERP_PRICE_DECIMALS = 6
MIN_ORDER_VALUE_USD = 10.0


def parse_wire_decimal(text: object) -> Decimal | None:
    """Parse a wire number string ("123.4"); None if it is not a finite decimal string."""
    if not isinstance(text, str) or not text or text.strip() != text:
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    if not value.is_finite():
        return None
    return value


def _decimals(value: Decimal) -> int:
    exponent = value.normalize().as_tuple().exponent
    assert isinstance(exponent, int)
    return max(0, -exponent)


def _sig_figs(value: Decimal) -> int:
    return len(value.normalize().as_tuple().digits)


def price_is_valid(px: Decimal, sz_decimals: int) -> bool:
    """True if a positive perp price obeys the tick rule (integers always pass)."""
    if px <= 0:
        return False
    if px == px.to_integral_value():
        return True
    return _sig_figs(px) <= MAX_PRICE_SIG_FIGS and _decimals(px) <= PERP_PRICE_DECIMALS - sz_decimals


def size_is_valid(sz: Decimal, sz_decimals: int) -> bool:
    """True if a positive size has at most szDecimals decimals."""
    return sz > 0 and _decimals(sz) <= sz_decimals


def round_price(px: float, sz_decimals: int) -> float:
    """Round a float to the nearest valid perp price (5 significant figures, 6 − szDecimals decimals)."""
    if px <= 0 or not math.isfinite(px):
        raise ValueError(f"price must be positive and finite, got {px}")
    if px >= 10**MAX_PRICE_SIG_FIGS:
        return float(round(px))
    return round(float(f"{px:.{MAX_PRICE_SIG_FIGS}g}"), PERP_PRICE_DECIMALS - sz_decimals)


def floor_size(sz: float, sz_decimals: int) -> float:
    """Round a size down to szDecimals decimals (never up: the book may not hold more)."""
    q = Decimal(1).scaleb(-sz_decimals)
    return float(Decimal(repr(sz)).quantize(q, rounding=ROUND_DOWN))


def wire(x: float, max_decimals: int = 8) -> str:
    """Format a number as the venue does on the wire: shortest decimal, at least one fractional digit.

    Examples: 26951.0 → "26951.0", 0.0078500 → "0.00785", -0.0 → "0.0".
    """
    if not math.isfinite(x):
        raise ValueError(f"cannot put a non-finite number on the wire: {x}")
    d = Decimal(repr(round(x, max_decimals))).quantize(Decimal(1).scaleb(-max_decimals))
    if d == 0:
        return "0.0"
    text = f"{d.normalize():f}"
    return text if "." in text else text + ".0"


@dataclass(frozen=True, slots=True)
class BookFill:
    """One slice taken from a book level by an aggressive order."""

    px: float
    sz: float


def walk_book(
    levels: Sequence[tuple[float, float]],
    is_buy: bool,
    limit_px: float,
    sz: float,
    sz_decimals: int,
) -> list[BookFill]:
    """Take liquidity from `levels` (asks low→high for a buy, bids high→low for a sell) up to `sz`.

    Stops at the first level worse than `limit_px`. Slices are whole lots (floored to szDecimals);
    prices are the level prices as given. Returns an empty list if nothing is marketable.
    """
    fills: list[BookFill] = []
    remaining = sz
    lot = 10.0 ** (-sz_decimals)
    for level_px, level_sz in levels:
        if remaining < lot / 2:
            break
        if (is_buy and level_px > limit_px) or (not is_buy and level_px < limit_px):
            break
        take = floor_size(min(remaining, level_sz) + lot * 1e-6, sz_decimals)
        if take <= 0:
            continue
        fills.append(BookFill(px=level_px, sz=take))
        remaining = round(remaining - take, sz_decimals + 2)
    return fills


def would_cross(is_buy: bool, limit_px: float, best_bid: float | None, best_ask: float | None) -> bool:
    """True if a limit order at `limit_px` would trade immediately against the given top of book."""
    if is_buy:
        return best_ask is not None and limit_px >= best_ask
    return best_bid is not None and limit_px <= best_bid


def resting_order_triggered(is_buy: bool, limit_px: float, mid: float) -> bool:
    """True if the mid path has reached a resting order's limit (a buy fills when mid ≤ limit)."""
    return mid <= limit_px if is_buy else mid >= limit_px
