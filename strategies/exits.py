"""Pure exit rules for an open position (reference §1.7), shared by the paper and live brokers.

`check_exit(position, price, snapshot, cfg, now_ms, ...)` returns an `ExitDecision`: hold, reduce
(one-time partial take-profit) or close, with an `ExitReason` and the updated trailing-stop
state the caller persists (also on hold: the trailing stop ratchets while holding).

Order follows the Python reference (not the Rust kernel): signal flip; guards (anomaly block,
exit cooldown, glitch guard); stop multiplier, breakeven, trailing update, TP levels; then smart
exits (trend breakdown/exhaustion, macro breakdown, stagnation, funding headwind, TSME, MACD
divergence, RSI overextension); then stop hit; then take-profit (partial first).

Deliberate choices (documented deviations):
* a `tp_partial_atr_mult > 0` only moves the TP trigger when partial TP is enabled;
* the flip close is evaluated here (first) when the caller passes the new signal; the reference
  does it in the entry path, also before any exit guard;
* there is no max-hold/time stop (neither reference implementation has one).
Prices are in quote currency; ATR-unit values are named `*_atr`; sizes in coins.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from strategies.config import StrategyConfig
from strategies.enums import Confidence, ExitAction, ExitReason, HoldReason, PositionSide, Signal

FALLBACK_ATR_PCT = 0.005  # entry ATR fallback: entry price x 0.5 %
WEAK_CROSS_PCT = 0.001
STAGNATION_ATR_RATIO = 0.7
STAGNATION_EXEMPT = frozenset({"PAXG"})
ROUND_EPS = 1e-9  # tolerance before flooring/ceiling to szDecimals (binary float noise)


@dataclass(frozen=True, slots=True, kw_only=True)
class PositionState:
    """What the exit and add rules need to know about an open position."""

    side: PositionSide
    entry_price: float
    size_coins: float
    entry_atr: float
    entry_time_ms: int
    confidence: Confidence = Confidence.MEDIUM
    entry_adx_threshold: float = 0.0
    leverage: float = 1.0
    trailing_sl: float | None = None
    tp1_taken: bool = False
    adds_count: int = 0
    last_add_time_ms: int = 0

    def __post_init__(self) -> None:
        for name in ("entry_price", "size_coins"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"PositionState.{name} must be finite and > 0, got {value!r}")
        if not math.isfinite(self.entry_atr) or self.entry_atr < 0:
            raise ValueError(f"PositionState.entry_atr must be finite and >= 0, got {self.entry_atr!r}")

    @property
    def is_long(self) -> bool:
        return self.side is PositionSide.LONG

    @property
    def atr(self) -> float:
        """Entry ATR, or entry price x 0.5 % when unknown (reference fallback)."""
        return self.entry_atr if self.entry_atr > 0 else self.entry_price * FALLBACK_ATR_PCT


@dataclass(frozen=True, slots=True)
class ExitDecision:
    """Result of one exit check. Persist `trailing_sl` and `tp1_taken` whatever the action."""

    action: ExitAction
    reason: ExitReason | None
    size_coins: float  # coins to sell (long) / buy back (short); 0 on hold
    fraction: float  # size_coins / position size
    trailing_sl: float | None
    tp1_taken: bool
    hold_reason: HoldReason = HoldReason.NONE
    levels: dict[str, float] = field(default_factory=dict)


def round_down(value: float, decimals: int | None) -> float:
    """Floor `value` to `decimals` places (None = no rounding)."""
    if decimals is None:
        return value
    q = 10.0 ** decimals
    return math.floor(value * q + ROUND_EPS) / q


def round_up(value: float, decimals: int | None) -> float:
    """Ceil `value` to `decimals` places (None = no rounding)."""
    if decimals is None:
        return value
    q = 10.0 ** decimals
    return math.ceil(value * q - ROUND_EPS) / q


def is_signal_flip(side: PositionSide, signal: Signal | None) -> bool:
    """True when `signal` points the other way (a flip closes regardless of confidence)."""
    return (side is PositionSide.LONG and signal is Signal.SELL) or (
        side is PositionSide.SHORT and signal is Signal.BUY)


def _num(snap: Mapping[str, object], key: str, default: float = math.nan) -> float:
    value = snap.get(key)
    if value is None or isinstance(value, str):
        return default
    return float(value)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class _View:
    """One check's inputs in position-relative terms (sign: +1 long, -1 short)."""

    pos: PositionState
    price: float
    sign: float
    atr: float
    profit_atr: float
    snap: Mapping[str, object]

    def n(self, key: str, default: float = math.nan) -> float:
        return _num(self.snap, key, default)

    @property
    def underwater(self) -> bool:
        return self.profit_atr < 0


def _hold(pos: PositionState, reason: HoldReason, levels: dict[str, float] | None = None,
          trailing: float | None = None, use_pos_trailing: bool = True) -> ExitDecision:
    trail = pos.trailing_sl if use_pos_trailing else trailing
    return ExitDecision(ExitAction.HOLD, None, 0.0, 0.0, trail, pos.tp1_taken, reason, levels or {})


def _close(v: _View, reason: ExitReason, trailing: float | None, levels: dict[str, float]) -> ExitDecision:
    return ExitDecision(ExitAction.CLOSE, reason, v.pos.size_coins, 1.0, trailing, v.pos.tp1_taken,
                        HoldReason.NONE, levels)


def _stop_mult(v: _View, cfg: StrategyConfig) -> float:
    mult = cfg.trade.sl_atr_mult
    adx = v.n("ADX")
    if v.n("ADX_slope") < 0 and v.underwater:
        mult *= 0.8
    rate = v.n("funding_rate", 0.0)
    if v.sign * rate < 0 and abs(rate) > 0.00005:  # funding tailwind: we receive it
        mult *= 1.2
    if adx > 40 and abs(v.price - v.pos.entry_price) > 0.5 * v.atr:
        mult *= 1.15
    if adx > 45:
        mult *= 1.10
    return mult


def _trailing_params(v: _View, cfg: StrategyConfig) -> tuple[float, float]:
    t = cfg.trade
    start, dist = t.trailing_start_atr, t.trailing_distance_atr
    if v.pos.confidence is Confidence.LOW:
        if t.trailing_start_atr_low_conf > 0:
            start = t.trailing_start_atr_low_conf
        if t.trailing_distance_atr_low_conf > 0:
            dist = t.trailing_distance_atr_low_conf
    return start, dist


def _trailing_distance_atr(v: _View, cfg: StrategyConfig, base: float) -> float:
    dist = base
    avg_bbw = v.n("avg_bb_width")
    if cfg.trade.enable_vol_buffered_trailing and avg_bbw > 0 and v.n("bb_width") / avg_bbw > 1.2:
        dist *= 1.25
    adx = v.n("ADX")
    if v.profit_atr > 2.0:
        if adx > 35 and v.n("ADX_slope") > 0:
            k = 1.0
        elif v.n("ATR_slope") > 0:
            k = 0.75
        else:
            k = 0.5
        dist = base * k
    elif adx < 25:
        dist = base * 0.7
    rsi = v.n("RSI")
    floor = 0.7 if (rsi > 60 if v.sign > 0 else rsi < 40) else 0.5
    return max(floor, dist)


def _update_trailing(v: _View, cfg: StrategyConfig) -> float | None:
    start, base = _trailing_params(v, cfg)
    trailing = v.pos.trailing_sl
    if v.profit_atr >= start:
        candidate = v.price - v.sign * v.atr * _trailing_distance_atr(v, cfg, base)
        if trailing is None:
            trailing = candidate
        else:
            trailing = max(trailing, candidate) if v.sign > 0 else min(trailing, candidate)
    return trailing


def _stop_level(v: _View, cfg: StrategyConfig, trailing: float | None) -> float:
    if trailing is not None:
        return trailing  # a trailing stop replaces the ATR/breakeven stop entirely (reference)
    t, entry = cfg.trade, v.pos.entry_price
    sl = entry - v.sign * v.atr * _stop_mult(v, cfg)
    if t.enable_breakeven_stop and t.breakeven_start_atr > 0 and v.profit_atr >= t.breakeven_start_atr:
        be = entry + v.sign * t.breakeven_buffer_atr * v.atr
        sl = max(sl, be) if v.sign > 0 else min(sl, be)
    return sl


def _tp_levels(v: _View, cfg: StrategyConfig) -> tuple[float, float]:
    """Return (full TP level, trigger level)."""
    t, entry = cfg.trade, v.pos.entry_price
    mult = v.n("tp_mult", 0.0)
    if not (math.isfinite(mult) and mult > 0):
        mult = t.tp_atr_mult
    tp = entry + v.sign * v.atr * mult
    if t.enable_partial_tp and t.tp_partial_atr_mult > 0 and not v.pos.tp1_taken:
        return tp, entry + v.sign * v.atr * t.tp_partial_atr_mult
    return tp, tp


def _trend_exit(v: _View, cfg: StrategyConfig) -> ExitReason | None:
    fast, slow, adx = v.n("EMA_fast"), v.n("EMA_slow"), v.n("ADX")
    against = fast < slow if v.sign > 0 else fast > slow
    weak_cross = slow != 0 and abs(fast - slow) / abs(slow) < WEAK_CROSS_PCT and adx > 25
    if against and not weak_cross:
        return ExitReason.TREND_BREAKDOWN
    t = cfg.trade
    # The entry's own ADX threshold (so entry and exit never contradict); the configured value
    # (with its low-confidence override) only for positions that carry none.
    threshold = v.pos.entry_adx_threshold
    if threshold <= 0:
        threshold = t.smart_exit_adx_exhaustion_lt
        if v.pos.confidence is Confidence.LOW and t.smart_exit_adx_exhaustion_lt_low_conf > 0:
            threshold = t.smart_exit_adx_exhaustion_lt_low_conf
    if threshold > 0 and adx < threshold:
        return ExitReason.TREND_EXHAUSTION
    if cfg.filters.require_macro_alignment:
        macro = v.n("EMA_macro")
        if (v.price < macro) if v.sign > 0 else (v.price > macro):
            return ExitReason.MACRO_BREAKDOWN
    return None


def _funding_threshold_atr(rate: float) -> float:
    r = abs(rate)
    if r > 1e-4:
        return 0.15
    if r > 6e-5:
        return 0.25
    if r > 4e-5:
        return 0.40
    if r > 2e-5:
        return 0.60
    if r < 1e-5:
        return 0.95
    return 0.80


def _funding_boosts(v: _View, thr: float) -> float:
    adx, rsi, hist, prev_hist = v.n("ADX"), v.n("RSI"), v.n("MACD_hist"), v.n("prev_MACD_hist")
    if v.sign * (hist - prev_hist) > 0:  # MACD improving in our direction
        thr = max(0.5, thr * 1.5)
    strong, high_conf = adx > 35, v.pos.confidence is Confidence.HIGH
    macro_ok = v.sign * (v.price - v.n("EMA_macro")) > 0
    factors = ((strong, 1.4), (high_conf, 1.25), (macro_ok, 1.3), (strong and high_conf and macro_ok, 1.5),
               (v.price > 0 and v.n("ATR") / v.price < 0.002, 1.25),
               ((rsi < 35) if v.sign > 0 else (rsi > 65), 1.3),
               (adx > 45, 1.6), (v.n("ADX_slope") > 1, 1.4), (adx > 40, 1.25),
               (v.profit_atr > 1.5 and v.n("ATR_slope") > 0, 1.5),
               (v.profit_atr > 3, 2.0), (2 < v.profit_atr <= 3, 1.5), (v.n("ADX_slope") < 0, 0.75))
    for cond, mult in factors:
        if cond:
            thr *= mult
    return thr


def _funding_headwind(v: _View, now_ms: int) -> bool:
    """Close when paying funding and underwater by more than a rate-dependent ATR threshold."""
    rate = v.n("funding_rate", 0.0)
    if not (math.isfinite(rate) and v.sign * rate > 0 and v.underwater):
        return False
    thr = _funding_threshold_atr(rate)
    if v.n("ATR") > 1.2 * v.pos.atr:
        thr *= 0.6
    hours = (now_ms - v.pos.entry_time_ms) / 3_600_000
    if hours > 1:
        thr = max(0.35, thr * max(0.0, 1 - (hours - 1) / 11))
    aligned = v.sign * (v.n("EMA_fast") - v.n("EMA_slow")) > 0
    if aligned and v.n("ADX") > 25:
        thr = max(thr, 0.75)
    return -v.profit_atr > _funding_boosts(v, thr)


def _momentum_exit(v: _View, cfg: StrategyConfig) -> ExitReason | None:
    t = cfg.trade
    adx = v.n("ADX")
    h = [v.n("MACD_hist")] + [v.n(k, 0.0) for k in ("prev_MACD_hist", "prev2_MACD_hist", "prev3_MACD_hist")]
    s = v.sign  # "against the position": long h < h1 < h2 ; short h > h1 > h2
    falling2 = s * h[0] < s * h[1] < s * h[2]
    slope_ok = (not t.tsme_require_adx_slope_negative) or v.n("ADX_slope") < 0
    if adx > 50 and v.profit_atr >= t.tsme_min_profit_atr and slope_ok and falling2:
        return ExitReason.TSME
    if v.profit_atr > 1.5 and adx > 35 and falling2 and s * h[2] < s * h[3]:
        return ExitReason.MACD_DIVERGENCE
    if t.enable_rsi_overextension_exit:
        low = v.pos.confidence is Confidence.LOW
        lo_profit = v.profit_atr < t.rsi_exit_profit_atr_switch

        def pick(normal: float, low_conf: float) -> float:
            return low_conf if low and low_conf > 0 else normal

        rsi = v.n("RSI")
        if s > 0:
            limit = pick(t.rsi_exit_ub_lo_profit, t.rsi_exit_ub_lo_profit_low_conf) if lo_profit else pick(
                t.rsi_exit_ub_hi_profit, t.rsi_exit_ub_hi_profit_low_conf)
            if rsi > limit:
                return ExitReason.RSI_OVEREXTENSION
        else:
            limit = pick(t.rsi_exit_lb_lo_profit, t.rsi_exit_lb_lo_profit_low_conf) if lo_profit else pick(
                t.rsi_exit_lb_hi_profit, t.rsi_exit_lb_hi_profit_low_conf)
            if rsi < limit:
                return ExitReason.RSI_OVEREXTENSION
    return None


def _smart_exit(v: _View, cfg: StrategyConfig, now_ms: int, symbol: str | None) -> ExitReason | None:
    reason = _trend_exit(v, cfg)
    if reason is not None:
        return reason
    exempt = symbol is not None and symbol.upper() in STAGNATION_EXEMPT
    if not exempt and v.underwater and v.n("ATR") < STAGNATION_ATR_RATIO * v.pos.atr:
        return ExitReason.STAGNATION
    if _funding_headwind(v, now_ms):
        return ExitReason.FUNDING_HEADWIND
    return _momentum_exit(v, cfg)


def _take_profit(v: _View, cfg: StrategyConfig, trailing: float | None, levels: dict[str, float],
                 sz_decimals: int | None) -> ExitDecision:
    t, pos = cfg.trade, v.pos
    if t.enable_partial_tp and not pos.tp1_taken and 0 < t.tp_partial_pct < 1:
        part = round_down(pos.size_coins * t.tp_partial_pct, sz_decimals)
        remainder = pos.size_coins - part
        # A partial below either minimum would be refused by the venue/reduce path: close fully.
        part_min_usd = max(t.tp_partial_min_notional_usd, t.min_notional_usd)
        if remainder * v.price >= t.min_notional_usd and 0 < part < pos.size_coins and (
                part * v.price >= part_min_usd):
            lock = pos.entry_price if trailing is None else (
                max(trailing, pos.entry_price) if v.sign > 0 else min(trailing, pos.entry_price))
            return ExitDecision(ExitAction.REDUCE, ExitReason.TAKE_PROFIT_PARTIAL, part,
                                part / pos.size_coins, lock, True, HoldReason.NONE, levels)
        return _close(v, ExitReason.TAKE_PROFIT, trailing, levels)
    if t.enable_partial_tp and pos.tp1_taken and t.tp_partial_atr_mult <= 0:
        return _hold(pos, HoldReason.PARTIAL_TP_DONE, levels, trailing, use_pos_trailing=False)
    return _close(v, ExitReason.TAKE_PROFIT, trailing, levels)


def _guard(v: _View, cfg: StrategyConfig, now_ms: int, last_close_ms: int | None) -> HoldReason | None:
    t = cfg.trade
    if cfg.filters.block_exits_on_anomaly and bool(v.snap.get("is_anomaly", False)):
        return HoldReason.ANOMALY_BLOCK
    if last_close_ms is not None and 0 <= now_ms - last_close_ms < t.exit_cooldown_s * 1000:
        plain_sl = v.pos.entry_price - v.sign * v.atr * t.sl_atr_mult
        if not (v.sign * (v.price - plain_sl) <= 0):
            return HoldReason.EXIT_COOLDOWN
    if t.block_exits_on_extreme_dev:
        move = abs(v.price - v.pos.entry_price)
        if move / v.pos.entry_price > t.glitch_price_dev_pct or move > t.glitch_atr_mult * v.atr:
            return HoldReason.GLITCH_GUARD
    return None


def check_exit(
    position: PositionState,
    price: float,
    snapshot: Mapping[str, object],
    cfg: StrategyConfig,
    now_ms: int,
    *,
    symbol: str | None = None,
    signal: Signal | None = None,
    last_close_ms: int | None = None,
    sz_decimals: int | None = None,
) -> ExitDecision:
    """Evaluate the exit rules for `position` at `price` (quote units) and `now_ms` (epoch ms).

    `snapshot` is the latest `Decision.snapshot` (plus `funding_rate`, hourly decimal, when known).
    `last_close_ms` is the symbol's last full close (exit cooldown); `sz_decimals` rounds partial
    sizes down. Raises ValueError on a non-finite or non-positive price.
    """
    if not (math.isfinite(price) and price > 0):
        raise ValueError(f"exit check needs a finite price > 0, got {price!r}")
    sign = 1.0 if position.is_long else -1.0
    atr = position.atr
    v = _View(position, price, sign, atr, sign * (price - position.entry_price) / atr, snapshot)
    if is_signal_flip(position.side, signal):
        return _close(v, ExitReason.SIGNAL_FLIP, position.trailing_sl, {"profit_atr": v.profit_atr})
    guard = _guard(v, cfg, now_ms, last_close_ms)
    if guard is not None:
        return _hold(position, guard, {"profit_atr": v.profit_atr})
    trailing = _update_trailing(v, cfg)
    sl = _stop_level(v, cfg, trailing)
    tp, trigger = _tp_levels(v, cfg)
    levels = {"sl": sl, "tp": tp, "tp_trigger": trigger, "profit_atr": v.profit_atr, "atr": atr}
    smart = _smart_exit(v, cfg, now_ms, symbol)
    if smart is not None:
        return _close(v, smart, trailing, levels)
    if sign * (price - sl) <= 0:
        return _close(v, ExitReason.TRAILING_STOP if trailing is not None else ExitReason.STOP_LOSS,
                      trailing, levels)
    if sign * (price - trigger) >= 0:
        return _take_profit(v, cfg, trailing, levels, sz_decimals)
    return _hold(position, HoldReason.NONE, levels, trailing, use_pos_trailing=False)


def with_exit_applied(position: PositionState, decision: ExitDecision) -> PositionState | None:
    """Return the position after `decision` (None when closed); trailing/partial state persisted."""
    if decision.action is ExitAction.CLOSE:
        return None
    size = position.size_coins
    if decision.action is ExitAction.REDUCE:
        size -= decision.size_coins
    return replace(position, size_coins=size, trailing_sl=decision.trailing_sl, tp1_taken=decision.tp1_taken)
