"""mei_alpha_v1's entry decision (`strategies.signals.decide_lean`) for MANY rows at once, exact.

Why: a shard decides mei_alpha_v1 for every symbol it holds each tick; the per-row decision
was a fifth of a tick (Python dict reads, gate dicts, a Decision object per symbol). This is the
same decision as numpy operations over the last rows of all symbols (`ColumnWindow`, n x K per
column, newest last): every comparison and every arithmetic statement of `signals._decide` in the
same IEEE order (Python and numpy round a double operation identically; the helpers below copy
`signals._div` and `signals._clamp`, whose NaN and zero rules differ from numpy's defaults).

`decide_columns(window, cfg, btc, is_btc)` returns `MeiColumnDecisions`: signal (+1 BUY, -1 SELL,
0 NEUTRAL), confidence (the `CONFIDENCE_RANK` code), score and entry kind (`KIND_CODES`), each
equal, row by row, to `decide_lean`'s signal, confidence, score and entry_kind (tested on every
bar of the vendored candles, with gate-blocked, reversed and flat-mode configs). It builds no
`SignalFeatures`: a caller that needs them (a BUY/SELL, an open position) decides that row
with `decide_lean`. Pure: no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strategies.config import StrategyConfig
from strategies.enums import Confidence, EntryKind, MacdMode
from strategies.sdk.strategy import ColumnWindow
from strategies.signals import CONFIDENCE_RANK, MIN_BARS, TMC_ADX_SLOPE_GT, TMC_MIN_ADX_CAP, pullback_min_adx

__all__ = ["BTC_BEARISH", "BTC_BULLISH", "BTC_UNKNOWN", "KIND_CODES", "MeiColumnDecisions", "decide_columns"]

KIND_CODES: dict[EntryKind, int] = {EntryKind.NONE: 0, EntryKind.STANDARD: 1, EntryKind.PULLBACK: 2,
                                    EntryKind.SLOW_DRIFT: 3}
BTC_BEARISH, BTC_BULLISH, BTC_UNKNOWN = 0, 1, -1  # the `btc` codes: False, True, None
_MEDIUM, _HIGH = CONFIDENCE_RANK[Confidence.MEDIUM], CONFIDENCE_RANK[Confidence.HIGH]
A = np.ndarray


@dataclass(frozen=True, slots=True)
class MeiColumnDecisions:
    """n decisions: signal (int8 +1/-1/0), confidence (int8 rank code), score (float64), kind (int8)."""

    signal: A
    confidence: A
    score: A
    kind: A


def _div(num: A, den: A) -> A:
    """`signals._div` per element: x/0 is +-inf by the sign of x only, 0/0 and NaN/0 are NaN."""
    with np.errstate(all="ignore"):
        zero = np.where((num == 0.0) | np.isnan(num), np.nan, np.copysign(np.inf, num))
        return np.where(den == 0.0, zero, num / den)


def _clamp01(x: A) -> A:
    """`signals._clamp(x, 0.0, 1.0)` = max(0.0, min(1.0, x)) with Python's min/max rules (NaN -> 1.0)."""
    with np.errstate(invalid="ignore"):
        y = np.where(x < 1.0, x, 1.0)
        return np.where(y > 0.0, y, 0.0)


@dataclass(slots=True)
class _Bar:
    """The columns `_decide` reads: the newest row (cur) and the one before (prev)."""

    adx: A
    close: A
    ema_fast: A
    ema_slow: A
    ema_macro: A
    avg_atr: A
    atr: A
    slope: A
    rsi: A
    hist: A
    avg_bbw: A
    bbw: A
    stoch_k: A
    vol: A
    vol_sma: A
    vol_trend: A
    prev_adx: A
    prev_close: A
    prev_hist: A
    prev_ema_fast: A
    prev_vol: A
    prev_vol_sma: A
    prev_vol_trend: A

    @classmethod
    def of(cls, w: ColumnWindow) -> _Bar:
        # bars >= MIN_BARS keeps 4 rows, so `prev` is always the row before the newest one
        cur = [w.col(k) for k in ("ADX", "Close", "EMA_fast", "EMA_slow", "EMA_macro", "avg_atr", "ATR",
                                  "ema_slow_slope_pct", "RSI", "MACD_hist", "avg_bb_width", "bb_width",
                                  "stoch_k", "Volume", "vol_sma", "vol_trend")]
        prev = [w.col(k, 1) for k in ("ADX", "Close", "MACD_hist", "EMA_fast", "Volume", "vol_sma",
                                      "vol_trend")]
        return cls(*cur, *prev)


def _truthy(x: A) -> A:
    return (x == x) & (x != 0)


def _is_ranging(b: _Bar, cfg: StrategyConfig) -> A:
    avg = b.avg_bbw
    if not cfg.filters.enable_ranging_filter:
        return avg == 0.0
    rng = cfg.thresholds.ranging
    with np.errstate(all="ignore"):
        ratio = np.where(avg > 0, b.bbw / avg, 1.0)
        votes = ((b.adx < rng.adx_below).astype(np.int64) + (ratio < rng.bb_width_ratio_below)
                 + ((rng.rsi_low < b.rsi) & (b.rsi < rng.rsi_high)))
    return (avg == 0.0) | (votes >= max(1, rng.min_signals))


def _is_anomaly(b: _Bar, cfg: StrategyConfig) -> A:
    if not cfg.filters.enable_anomaly_filter:
        return np.zeros(len(b.adx), dtype=bool)
    an = cfg.thresholds.anomaly
    with np.errstate(invalid="ignore"):
        return ((_div(np.abs(b.close - b.prev_close), b.prev_close) > an.price_change_pct_gt)
                | (_div(np.abs(b.close - b.ema_fast), b.ema_fast) > an.ema_fast_dev_pct_gt))


def _eff_min_adx(b: _Bar, cfg: StrategyConfig) -> A:
    entry = cfg.thresholds.entry
    spike = np.ones(len(b.adx))
    if entry.ave_enabled:
        with np.errstate(all="ignore"):
            ratio_hit = (b.avg_atr > 0) & (b.atr / b.avg_atr > entry.ave_atr_ratio_gt)
        if entry.ave_adx_mult > 0:
            spike = np.where(ratio_hit, entry.ave_adx_mult, 1.0)
    eff = entry.min_adx
    with np.errstate(invalid="ignore"):
        base = np.where(b.adx - b.prev_adx > TMC_ADX_SLOPE_GT, min(eff, TMC_MIN_ADX_CAP), eff)
    return base * spike


def _vol_ok(b: _Bar, cfg: StrategyConfig) -> A:
    flt = cfg.filters
    if not flt.require_volume_confirmation:
        return np.ones(len(b.adx), dtype=bool)
    with np.errstate(invalid="ignore"):
        above = b.vol > b.vol_sma
        trend = _truthy(b.vol_trend)
        if flt.vol_confirm_include_prev:
            return (above | (b.prev_vol > b.prev_vol_sma)) & (trend | _truthy(b.prev_vol_trend))
    return above & trend


def _sides(b: _Bar, cfg: StrategyConfig, btc: A, is_btc: A) -> tuple[A, A, A, A]:
    """(bullish, bearish, btc_ok_long, btc_ok_short)."""
    with np.errstate(invalid="ignore"):
        bullish, bearish = b.ema_fast > b.ema_slow, b.ema_fast < b.ema_slow
        if cfg.filters.require_macro_alignment:
            bullish &= b.ema_slow > b.ema_macro
            bearish &= b.ema_slow < b.ema_macro
        if not cfg.filters.require_btc_alignment:
            ones = np.ones(len(b.adx), dtype=bool)
            return bullish, bearish, ones, ones
        pass_all = is_btc | (btc == BTC_UNKNOWN) | (b.adx > cfg.thresholds.entry.btc_adx_override)
    return bullish, bearish, pass_all | (btc == BTC_BULLISH), pass_all | (btc == BTC_BEARISH)


def _macd_ok(b: _Bar, mode: MacdMode) -> tuple[A, A]:
    with np.errstate(invalid="ignore"):
        if mode is MacdMode.ACCEL:
            return b.hist > b.prev_hist, b.hist < b.prev_hist
        if mode is MacdMode.SIGN:
            return b.hist > 0, b.hist < 0
    ones = np.ones(len(b.adx), dtype=bool)
    return ones, ones


def _standard(b: _Bar, cfg: StrategyConfig, sides: tuple[A, A, A, A]) -> tuple[A, A]:
    """(BUY mask, SELL mask) of `_standard_entry` (its pre-gates applied by the caller)."""
    entry, tm = cfg.thresholds.entry, cfg.thresholds.tp_and_momentum
    strong = tm.adx_strong_gt if tm.adx_strong_gt > entry.min_adx else entry.min_adx + 1.0
    with np.errstate(all="ignore"):
        w = _clamp01((b.adx - entry.min_adx) / (strong - entry.min_adx))
        long_limit = tm.rsi_long_weak + w * (tm.rsi_long_strong - tm.rsi_long_weak)
        short_limit = tm.rsi_short_weak + w * (tm.rsi_short_strong - tm.rsi_short_weak)
        stoch_k = np.where(np.isnan(b.stoch_k), 0.0, b.stoch_k)
        macd_long, macd_short = _macd_ok(b, entry.macd_hist_entry_mode)
        bullish, bearish, btc_long, btc_short = sides
        buy = bullish & (b.close > b.ema_fast) & (b.rsi > long_limit) & macd_long & btc_long
        sell = bearish & (b.close < b.ema_fast) & (b.rsi < short_limit) & macd_short & btc_short
        if cfg.filters.use_stoch_rsi_filter:
            sr = cfg.thresholds.stoch_rsi
            buy &= stoch_k < sr.block_long_if_k_gt
            sell &= stoch_k > sr.block_short_if_k_lt
    return buy, sell & ~buy


def _need_sign(b: _Bar, on: bool) -> tuple[A, A]:
    if not on:
        ones = np.ones(len(b.adx), dtype=bool)
        return ones, ones
    with np.errstate(invalid="ignore"):
        return b.hist > 0, b.hist < 0


def _pullback(b: _Bar, cfg: StrategyConfig, sides: tuple[A, A, A, A], blocked: A) -> tuple[A, A]:
    entry = cfg.thresholds.entry
    bullish, bearish, btc_long, btc_short = sides
    sign_long, sign_short = _need_sign(b, entry.pullback_require_macd_sign)
    with np.errstate(invalid="ignore"):
        live = ~blocked & (b.adx >= pullback_min_adx(cfg))
        cross_up = (b.prev_close <= b.prev_ema_fast) & (b.close > b.ema_fast)
        cross_down = (b.prev_close >= b.prev_ema_fast) & (b.close < b.ema_fast)
        buy = live & cross_up & bullish & btc_long & sign_long & (b.rsi >= entry.pullback_rsi_long_min)
        sell = live & cross_down & bearish & btc_short & sign_short & (b.rsi <= entry.pullback_rsi_short_max)
    return buy, sell & ~buy


def _slow_drift(b: _Bar, cfg: StrategyConfig, sides: tuple[A, A, A, A], blocked: A) -> tuple[A, A]:
    entry = cfg.thresholds.entry
    bullish, bearish, btc_long, btc_short = sides
    sign_long, sign_short = _need_sign(b, entry.slow_drift_require_macd_sign)
    min_slope = entry.slow_drift_min_slope_pct
    with np.errstate(invalid="ignore"):
        live = ~blocked & (b.adx >= entry.slow_drift_min_adx)
        buy = (live & bullish & (b.close > b.ema_slow) & btc_long & (b.slope >= min_slope) & sign_long
               & (b.rsi >= entry.slow_drift_rsi_long_min))
        sell = (live & bearish & (b.close < b.ema_slow) & btc_short & (b.slope <= -min_slope) & sign_short
                & (b.rsi <= entry.slow_drift_rsi_short_max))
    return buy, sell & ~buy


def _gates(b: _Bar, cfg: StrategyConfig) -> tuple[A, A]:
    """(every standard pre-gate passed, blocked for the fallback entries) per row."""
    flt, entry = cfg.filters, cfg.thresholds.entry
    ranging = _is_ranging(b, cfg)
    anomaly = _is_anomaly(b, cfg)
    eff_min_adx = _eff_min_adx(b, cfg)
    with np.errstate(invalid="ignore"):
        trending_up = ((b.adx > b.prev_adx) | (b.adx > flt.adx_rising_saturation)
                       if flt.require_adx_rising else np.ones(len(b.adx), dtype=bool))
        if entry.enable_slow_drift_entries:
            ranging = ranging & ~(np.abs(b.slope) >= entry.slow_drift_min_slope_pct)
        if flt.enable_extension_filter:
            extended = _div(np.abs(b.close - b.ema_fast), b.ema_fast) > entry.max_dist_ema_fast
        else:
            extended = np.zeros(len(b.adx), dtype=bool)
        vol_ok = _vol_ok(b, cfg)
        passed = (b.adx > eff_min_adx) & ~ranging & ~anomaly & ~extended & vol_ok & trending_up
    return passed, anomaly | extended | ranging | ~vol_ok


def decide_columns(window: ColumnWindow, cfg: StrategyConfig, btc: A, is_btc: A) -> MeiColumnDecisions:
    """`decide_lean` for every row of `window` (see the module docstring).

    `btc[i]` is row i's BTC gate input as BTC_BULLISH / BTC_BEARISH / BTC_UNKNOWN; `is_btc[i]` is
    True when row i's symbol is BTC (its own gate always passes).
    """
    b = _Bar.of(window)
    n = len(window.bars)
    entry = cfg.thresholds.entry
    sides = _sides(b, cfg, np.asarray(btc), np.asarray(is_btc, dtype=bool))
    passed, blocked = _gates(b, cfg)
    buy, sell = _standard(b, cfg, sides)
    buy, sell = passed & buy, passed & sell
    with np.errstate(invalid="ignore"):
        high = b.vol > b.vol_sma * entry.high_conf_volume_mult
    conf = np.where(buy | sell, np.where(high, _HIGH, _MEDIUM), 0)
    kind = np.where(buy | sell, KIND_CODES[EntryKind.STANDARD], 0)
    fallbacks = []
    if entry.enable_pullback_entries:
        fallbacks.append((_pullback(b, cfg, sides, blocked), CONFIDENCE_RANK[entry.pullback_confidence],
                          KIND_CODES[EntryKind.PULLBACK]))
    if entry.enable_slow_drift_entries:
        fallbacks.append((_slow_drift(b, cfg, sides, blocked), 0, KIND_CODES[EntryKind.SLOW_DRIFT]))
    for (f_buy, f_sell), f_conf, f_kind in fallbacks:
        take = ~(buy | sell) & (f_buy | f_sell)
        buy, sell = buy | (take & f_buy), sell | (take & f_sell)
        conf, kind = np.where(take, f_conf, conf), np.where(take, f_kind, kind)
    signal = buy.astype(np.int8) - sell.astype(np.int8)
    if cfg.trade.reverse_entry_signal:
        signal = -signal
    warm = window.bars >= MIN_BARS
    kind = np.where(warm, kind, 0)
    if not cfg.entries_enabled:
        signal = np.zeros(n, dtype=np.int8)
    signal = np.where(warm, signal, 0).astype(np.int8)
    conf = np.where(signal != 0, conf, 0).astype(np.int8)
    with np.errstate(invalid="ignore"):
        adx_part = np.where(np.isfinite(b.adx), b.adx, 0.0)
    score = np.where(signal != 0, conf * 100.0 + adx_part, 0.0)
    return MeiColumnDecisions(signal, conf, score, kind.astype(np.int8))
