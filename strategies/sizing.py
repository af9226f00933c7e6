"""Pure entry gates, sizing, leverage and pyramiding rules (reference §1.4-§1.6).

Shared by the paper and live brokers. Units are in every name: `_usd` (quote notional or
margin), `_coins` (base-asset size), `_ms` (epoch milliseconds). No field means coins in one path
and USD in another (the reference's `target_size` quirk is not copied).

* `check_entry_gates`: execution-time gates that do not need account state: min confidence,
  SSF (MACD sign), REEF (RSI extreme) and the PESC re-entry cooldown.
* `compute_entry_sizing`: margin = equity x allocation, scaled by confidence, ADX and ATR; leverage
  by confidence with caps and the venue tier limit; total-margin cap; min-notional rule; size
  rounded to szDecimals within [min notional, max notional per order].
* `check_add` / `compute_add_sizing` / `apply_add`: pyramiding.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from strategies.config import StrategyConfig
from strategies.enums import Confidence, ExitReason, PositionSide, Signal, SizingBlock
from strategies.exits import PositionState, round_down, round_up
from strategies.signals import CONFIDENCE_RANK

ADD_MIN_STOP_DISTANCE_ATR = 0.5
ADD_RSI_LONG_MAX = 75.0
ADD_RSI_SHORT_MIN = 25.0
PESC_ADX_FAST = 40.0  # ADX at/above which the shortest re-entry cooldown applies
PESC_ADX_SLOW = 25.0  # ADX at/below which the longest applies


@dataclass(frozen=True, slots=True)
class GateResult:
    """Outcome of a rule check: ok, or the blocking reason code with structured details."""

    ok: bool
    block: SizingBlock | None = None
    details: dict[str, float | str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EntrySizing:
    """A sized order (ok) or why none (block). All zero when blocked before sizing."""

    ok: bool
    block: SizingBlock | None
    margin_usd: float
    leverage: float
    notional_usd: float
    size_coins: float
    details: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LastClose:
    """The symbol's most recent full close (for the PESC re-entry cooldown)."""

    side: PositionSide
    time_ms: int
    reason: ExitReason


def side_for(signal: Signal) -> PositionSide:
    """Return the position side a BUY/SELL opens; raise ValueError for NEUTRAL."""
    if signal is Signal.BUY:
        return PositionSide.LONG
    if signal is Signal.SELL:
        return PositionSide.SHORT
    raise ValueError("NEUTRAL opens no position")


def _num(snap: Mapping[str, object], key: str) -> float:
    value = snap.get(key)
    return math.nan if value is None or isinstance(value, str) else float(value)  # type: ignore[arg-type]


def reentry_cooldown_minutes(adx: float, cfg: StrategyConfig) -> float:
    """PESC cooldown: min minutes at ADX >= 40, max at ADX <= 25, linear in between."""
    t = cfg.trade
    if not math.isfinite(adx) or adx <= PESC_ADX_SLOW:
        return t.reentry_cooldown_max_mins
    if adx >= PESC_ADX_FAST:
        return t.reentry_cooldown_min_mins
    w = (adx - PESC_ADX_SLOW) / (PESC_ADX_FAST - PESC_ADX_SLOW)
    return t.reentry_cooldown_max_mins + w * (t.reentry_cooldown_min_mins - t.reentry_cooldown_max_mins)


def check_entry_gates(
    signal: Signal,
    confidence: Confidence,
    snapshot: Mapping[str, object],
    cfg: StrategyConfig,
    *,
    now_ms: int,
    last_close: LastClose | None = None,
) -> GateResult:
    """Apply min-confidence, PESC, SSF and REEF (reference §1.4 order) to a new entry."""
    t = cfg.trade
    side = side_for(signal)
    if CONFIDENCE_RANK[confidence] < CONFIDENCE_RANK[t.entry_min_confidence]:
        return GateResult(False, SizingBlock.MIN_CONFIDENCE,
                          {"confidence": confidence.value, "min": t.entry_min_confidence.value})
    if t.reentry_cooldown_minutes > 0 and last_close is not None and last_close.side is side and (
            last_close.reason is not ExitReason.SIGNAL_FLIP):
        cooldown = reentry_cooldown_minutes(_num(snapshot, "ADX"), cfg)
        elapsed_min = (now_ms - last_close.time_ms) / 60_000
        if elapsed_min < cooldown:
            return GateResult(False, SizingBlock.REENTRY_COOLDOWN,
                              {"elapsed_min": elapsed_min, "cooldown_min": cooldown})
    hist, rsi = _num(snapshot, "MACD_hist"), _num(snapshot, "RSI")
    if t.enable_ssf_filter and not (hist >= 0 if side is PositionSide.LONG else hist <= 0):
        return GateResult(False, SizingBlock.SSF, {"MACD_hist": hist})
    if t.enable_reef_filter and (rsi > t.reef_long_rsi_block_gt if side is PositionSide.LONG
                                 else rsi < t.reef_short_rsi_block_lt):
        return GateResult(False, SizingBlock.REEF, {"RSI": rsi})
    return GateResult(True)


def size_for_notional_bounds(
    notional_usd: float,
    price: float,
    sz_decimals: int | None,
    min_notional_usd: float,
    max_notional_usd: float | None = None,
) -> float:
    """Coins for `notional_usd`: floored to szDecimals, raised to reach the min notional (ceil),
    capped at `max_notional_usd` (floor). The result may still be below the min when max < min."""
    size = round_down(notional_usd / price, sz_decimals)
    size = max(size, round_up(min_notional_usd / price, sz_decimals))
    if max_notional_usd is not None and max_notional_usd > 0:
        size = min(size, round_down(max_notional_usd / price, sz_decimals))
    return max(size, 0.0)


def _scaled_margin(base_margin_usd: float, price: float, confidence: Confidence, adx: float,
                   atr: float, cfg: StrategyConfig) -> float:
    t = cfg.trade
    margin = base_margin_usd
    if t.enable_dynamic_sizing:
        margin *= {Confidence.HIGH: t.confidence_mult_high, Confidence.MEDIUM: t.confidence_mult_medium,
                   Confidence.LOW: t.confidence_mult_low}[confidence]
        min_adx = cfg.thresholds.entry.min_adx
        span = t.adx_sizing_full_adx - min_adx
        w = (adx - min_adx) / span if span > 0 and math.isfinite(adx) else 0.0
        w = min(1.0, max(0.0, w))
        margin *= t.adx_sizing_min_mult + w * (1.0 - t.adx_sizing_min_mult)
    if math.isfinite(atr) and atr > 0:
        margin *= min(t.vol_scalar_max, max(t.vol_scalar_min, price * t.vol_baseline_pct / atr))
    return margin * t.size_multiplier


def entry_leverage(confidence: Confidence, cfg: StrategyConfig) -> float:
    """Leverage by confidence (or the fixed `trade.leverage`), capped, at least 1."""
    t = cfg.trade
    if t.enable_dynamic_leverage:
        lev = {Confidence.HIGH: t.leverage_high, Confidence.MEDIUM: t.leverage_medium,
               Confidence.LOW: t.leverage_low}[confidence]
    else:
        lev = t.leverage
    if t.leverage_max_cap > 0:
        lev = min(lev, t.leverage_max_cap)
    return max(1.0, lev)


def _blocked(block: SizingBlock, **details: float) -> EntrySizing:
    return EntrySizing(False, block, 0.0, 0.0, 0.0, 0.0, dict(details))


def _bad(equity_usd: float, price: float) -> bool:
    return not (math.isfinite(equity_usd) and equity_usd > 0 and math.isfinite(price) and price > 0)


def _finish(margin_usd: float, lev: float, price: float, equity_usd: float, open_margin_usd: float,
            cfg: StrategyConfig, sz_decimals: int | None) -> EntrySizing:
    """Margin cap, min-notional rule and size rounding shared by entries and adds."""
    t = cfg.trade
    cap_usd = equity_usd * t.max_total_margin_pct
    if open_margin_usd + margin_usd > cap_usd:
        return _blocked(SizingBlock.MARGIN_CAP, open_margin_usd=open_margin_usd, margin_usd=margin_usd,
                        cap_usd=cap_usd)
    notional = margin_usd * lev
    if notional < t.min_notional_usd:
        if not t.bump_to_min_notional:
            return _blocked(SizingBlock.BELOW_MIN_NOTIONAL, notional_usd=notional, min_usd=t.min_notional_usd)
        notional = t.min_notional_usd
    size = size_for_notional_bounds(notional, price, sz_decimals, t.min_notional_usd,
                                    t.max_notional_usd_per_order)
    final_notional = size * price
    if size <= 0 or final_notional < t.min_notional_usd * (1 - 1e-12):
        return _blocked(SizingBlock.BELOW_MIN_NOTIONAL, notional_usd=final_notional,
                        min_usd=t.min_notional_usd)
    return EntrySizing(True, None, final_notional / lev, lev, final_notional, size,
                       {"requested_notional_usd": notional})


def compute_entry_sizing(
    *,
    equity_usd: float,
    price: float,
    confidence: Confidence,
    adx: float,
    atr: float,
    cfg: StrategyConfig,
    open_margin_usd: float = 0.0,
    tier_max_leverage: float | None = None,
    sz_decimals: int | None = None,
) -> EntrySizing:
    """Size a new entry at `price` (the expected fill price, quote units).

    `open_margin_usd` is the estimated margin of the open positions (total-margin cap);
    `tier_max_leverage` the venue's max leverage for this notional (None = unknown/no limit).
    The returned `margin_usd` is notional / leverage after rounding.
    """
    if _bad(equity_usd, price):
        return _blocked(SizingBlock.BAD_INPUT, equity_usd=equity_usd, price=price)
    t = cfg.trade
    margin = _scaled_margin(equity_usd * t.allocation_pct, price, confidence, adx, atr, cfg)
    if t.min_margin_usd is not None and t.min_margin_usd > 0:
        margin = max(margin, t.min_margin_usd)
    lev = entry_leverage(confidence, cfg)
    if tier_max_leverage is not None and tier_max_leverage < lev:
        lev = max(1.0, tier_max_leverage)
    return _finish(margin, lev, price, equity_usd, open_margin_usd, cfg, sz_decimals)


def check_add(
    position: PositionState,
    *,
    price: float,
    confidence: Confidence,
    snapshot: Mapping[str, object],
    cfg: StrategyConfig,
    now_ms: int,
) -> GateResult:
    """Pyramiding rules (reference §1.6 order) for a same-direction signal on an open position."""
    t = cfg.trade
    if not t.enable_pyramiding:
        return GateResult(False, SizingBlock.PYRAMIDING_DISABLED)
    if position.adds_count >= t.max_adds_per_symbol:
        return GateResult(False, SizingBlock.MAX_ADDS, {"adds": position.adds_count})
    if CONFIDENCE_RANK[confidence] < CONFIDENCE_RANK[t.add_min_confidence]:
        return GateResult(False, SizingBlock.ADD_MIN_CONFIDENCE, {"confidence": confidence.value})
    since_min = (now_ms - position.last_add_time_ms) / 60_000
    if since_min < t.add_cooldown_minutes:
        return GateResult(False, SizingBlock.ADD_COOLDOWN, {"since_min": since_min})
    if position.tp1_taken:
        return GateResult(False, SizingBlock.PARTIAL_TP_TAKEN)
    return _check_add_market(position, price, snapshot, cfg)


def _check_add_market(position: PositionState, price: float, snapshot: Mapping[str, object],
                      cfg: StrategyConfig) -> GateResult:
    t = cfg.trade
    sign = 1.0 if position.is_long else -1.0
    atr = _num(snapshot, "ATR")
    if not (math.isfinite(atr) and atr > 0):
        atr = position.atr
    stop = position.trailing_sl
    if stop is None:
        stop = position.entry_price - sign * atr * t.sl_atr_mult
    if not sign * (price - stop) >= ADD_MIN_STOP_DISTANCE_ATR * atr:
        return GateResult(False, SizingBlock.STOP_TOO_CLOSE, {"stop": stop, "atr": atr})
    hist, prev_hist = _num(snapshot, "MACD_hist"), _num(snapshot, "prev_MACD_hist")
    if not sign * (hist - prev_hist) > 0:
        return GateResult(False, SizingBlock.MACD_NOT_EXPANDING, {"MACD_hist": hist, "prev": prev_hist})
    rsi = _num(snapshot, "RSI")
    if not (rsi <= ADD_RSI_LONG_MAX if sign > 0 else rsi >= ADD_RSI_SHORT_MIN):
        return GateResult(False, SizingBlock.RSI_GUARD, {"RSI": rsi})
    profit_atr = sign * (price - position.entry_price) / atr
    need = t.add_min_profit_atr
    rsi_extreme = rsi > 65 if sign > 0 else rsi < 35
    if _num(snapshot, "ADX_slope") > 0.75 and _num(snapshot, "ATR_slope") <= 0 and not rsi_extreme:
        need *= 0.5
    if not profit_atr >= need:
        return GateResult(False, SizingBlock.ADD_MIN_PROFIT, {"profit_atr": profit_atr, "need_atr": need})
    return GateResult(True, None, {"profit_atr": profit_atr, "atr": atr})


def compute_add_sizing(
    position: PositionState,
    *,
    equity_usd: float,
    price: float,
    confidence: Confidence,
    adx: float,
    atr: float,
    cfg: StrategyConfig,
    open_margin_usd: float = 0.0,
    tier_max_leverage: float | None = None,
    sz_decimals: int | None = None,
) -> EntrySizing:
    """Size an ADD: base margin x add_fraction (clamped 0..2), same scalars, the position's leverage.

    `tier_max_leverage` is the venue limit for the combined notional; below the position's
    leverage the add is refused (TIER_LEVERAGE).
    """
    if _bad(equity_usd, price):
        return _blocked(SizingBlock.BAD_INPUT, equity_usd=equity_usd, price=price)
    t = cfg.trade
    lev = max(1.0, position.leverage)
    if tier_max_leverage is not None and tier_max_leverage < lev:
        return _blocked(SizingBlock.TIER_LEVERAGE, tier_max_leverage=tier_max_leverage, leverage=lev)
    fraction = min(2.0, max(0.0, t.add_fraction_of_base_margin))
    margin = _scaled_margin(equity_usd * t.allocation_pct * fraction, price, confidence, adx, atr, cfg)
    return _finish(margin, lev, price, equity_usd, open_margin_usd, cfg, sz_decimals)


def apply_add(position: PositionState, *, add_size_coins: float, fill_price: float, atr: float,
              now_ms: int) -> PositionState:
    """Return the position after an ADD fill: weighted entry price and entry ATR, adds+1, tp1 reset."""
    if not (add_size_coins > 0 and fill_price > 0 and math.isfinite(add_size_coins * fill_price)):
        raise ValueError(f"invalid add: size={add_size_coins!r} price={fill_price!r}")
    total = position.size_coins + add_size_coins
    entry_atr = position.entry_atr
    if math.isfinite(atr) and atr > 0:  # size-weighted; an unknown entry ATR takes the add's ATR
        entry_atr = (entry_atr * position.size_coins + atr * add_size_coins) / total if entry_atr > 0 else atr
    return replace(
        position,
        size_coins=total,
        entry_price=(position.entry_price * position.size_coins + fill_price * add_size_coins) / total,
        entry_atr=entry_atr,
        adds_count=position.adds_count + 1,
        last_add_time_ms=now_ms,
        tp1_taken=False,
    )
