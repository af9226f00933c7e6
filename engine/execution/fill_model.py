"""The paper fill model: fill price, Hyperliquid fees, funding and PnL arithmetic. Pure, no I/O.

Shared by the paper broker and by replay, so a backtest and a paper run price every fill the
same way. Facts carried over from the reference paper trader:

- fill price: a fresh BBO (BUY at the ask, SELL at the bid; maker mode reversed), else a fresh mid,
  else the decision price; taker fills then slip adversely by `slippage_bps`;
- fee rate = (taker 0.00045 | maker 0.00015) x (1 - referral% / 100) + builder rate, charged on
  the notional of every OPEN, ADD, REDUCE and CLOSE fill;
- funding: `delta = -(signed_size x price x rate)` per hourly funding event (positive rates make
  longs pay), applied at each whole UTC hour the position was held across.

Times are UTC epoch milliseconds; sizes are coins; money is USD.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from engine.config.fill_params import FeeSchedule as FeeSchedule  # re-exported: the fill model's inputs
from engine.config.fill_params import FillModelParams
from engine.enums import FeeMode, OrderSide, PriceSource
from strategies.enums import PositionSide

HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketQuote:
    """What the market looked like when an order was decided: mid and BBO with their times (UTC ms).

    Any field may be None when unknown; the fill model then falls back to the next source.
    """

    mid: float | None = None
    mid_ms: int | None = None
    bid: float | None = None
    ask: float | None = None
    bbo_ms: int | None = None


@dataclass(frozen=True, slots=True)
class PricedFill:
    """A fill price and where it came from, before fees."""

    price: float
    source: PriceSource
    slippage_bps: float


def _usable(price: float | None) -> bool:
    return price is not None and math.isfinite(price) and price > 0


def _fresh(ts_ms: int | None, now_ms: int, max_age_ms: int) -> bool:
    return ts_ms is not None and 0 <= now_ms - ts_ms <= max_age_ms


def _base_price(
    side: OrderSide, quote: MarketQuote | None, reference_price: float, params: FillModelParams, now_ms: int
) -> tuple[float, PriceSource] | None:
    if quote is not None:
        if params.use_bbo and _fresh(quote.bbo_ms, now_ms, params.bbo_max_age_ms):
            take_ask = (side is OrderSide.BUY) == (params.fee_mode is FeeMode.TAKER)
            px = quote.ask if take_ask else quote.bid
            if _usable(px) and _usable(quote.bid) and _usable(quote.ask):
                return float(px), PriceSource.REDIS_BBO  # type: ignore[arg-type]
        if _usable(quote.mid) and _fresh(quote.mid_ms, now_ms, params.mid_max_age_ms):
            return float(quote.mid), PriceSource.REDIS_MID  # type: ignore[arg-type]
    if _usable(reference_price):
        return float(reference_price), PriceSource.LAST_CLOSE
    return None


def fill_price(
    side: OrderSide,
    quote: MarketQuote | None,
    reference_price: float,
    params: FillModelParams,
    now_ms: int,
) -> PricedFill | None:
    """Price a paper fill: BBO, else mid, else the decision price, then adverse taker slippage.

    Returns None when no usable (finite, positive) price exists, so the caller fails closed.
    """
    base = _base_price(side, quote, reference_price, params, now_ms)
    if base is None:
        return None
    price, source = base
    if params.fee_mode is FeeMode.MAKER or params.slippage_bps == 0:
        return PricedFill(price=price, source=source, slippage_bps=0.0)
    slip = params.slippage_bps / 10_000.0
    price = price * (1.0 + slip) if side is OrderSide.BUY else price * (1.0 - slip)
    return PricedFill(price=price, source=source, slippage_bps=params.slippage_bps)


def fee_usd(size_coins: float, price: float, rate: float) -> float:
    """Return the fee in USD of a fill of `size_coins` at `price` (fee = notional x rate)."""
    return abs(size_coins) * price * rate


def order_side(position_side: PositionSide, opening: bool) -> OrderSide:
    """Return the order side that opens (or, with opening=False, closes) a position side."""
    buys = (position_side is PositionSide.LONG) == opening
    return OrderSide.BUY if buys else OrderSide.SELL


def realised_pnl_usd(
    position_side: PositionSide, entry_price: float, exit_price: float, size_coins: float
) -> float:
    """Return the gross PnL of closing `size_coins` of a position (fees excluded)."""
    move = exit_price - entry_price
    return move * size_coins if position_side is PositionSide.LONG else -move * size_coins


def unrealised_pnl_usd(
    position_side: PositionSide, entry_price: float, mark: float, size_coins: float
) -> float:
    """Return the PnL the position would realise at `mark` before fees."""
    return realised_pnl_usd(position_side, entry_price, mark, size_coins)


def weighted_entry(size_a: float, price_a: float, size_b: float, price_b: float) -> float:
    """Return the size-weighted average of two entries (an ADD onto an open position)."""
    total = size_a + size_b
    if total <= 0:
        raise ValueError(f"weighted_entry needs a positive total size, got {size_a} + {size_b}")
    return (size_a * price_a + size_b * price_b) / total


def funding_usd(position_side: PositionSide, size_coins: float, price: float, rate: float) -> float:
    """Return the cash change of one funding event: -(signed size x price x rate).

    A positive rate makes longs pay and shorts receive.
    """
    signed = size_coins if position_side is PositionSide.LONG else -size_coins
    return -(signed * price * rate)


def funding_hours(last_funding_ms: int, now_ms: int) -> list[int]:
    """Return the whole-hour UTC boundaries h with last_funding_ms < h <= now_ms, oldest first.

    Each boundary is one hourly funding event the position was held across.
    """
    if now_ms <= last_funding_ms:
        return []
    first = (last_funding_ms // HOUR_MS + 1) * HOUR_MS
    return list(range(first, now_ms + 1, HOUR_MS))
