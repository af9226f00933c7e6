"""The mei_alpha_v1 entry decision as one pure function over the last few indicator rows.

`decide` implements reference §1.3 (ranging/anomaly filters, dynamic TP multiplier, effective
min ADX, the standard trend entry with its RSI/MACD/StochRSI/BTC gates, pullback and slow-drift
entries, confidence, reverse) and the `latest` extras of §1.1. The batch `analyze` and the
incremental shard path both call it, so their decisions can only differ if their indicator
values differ.

Semantics notes (deliberate): NaN comparisons are False exactly as with pandas scalars in the
reference; divisions by zero yield inf/NaN instead of raising; `vol_trend` NaN counts as False.
The rank score is the earlier reference engine's `confidence_rank * 100 + ADX` (low=0, medium=1,
high=2; reference-engine §3.7), 0.0 for NEUTRAL: deterministic and higher = better.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields

from strategies.config import StrategyConfig
from strategies.enums import Confidence, EntryGate, EntryKind, MacdMode, Signal

Row = Mapping[str, float]
Scalar = float | bool | str
_NAN = math.nan


@dataclass(frozen=True, slots=True)
class SignalFeatures:
    """The newest bar's values that exits, sizing and the driver read, as named fields.

    Why typed: this record crosses the shard -> driver seam (Ray) for every BUY/SELL and every open
    position, and the driver reads it by attribute, not by string key. NaN means "not available"
    (warm-up, a window not yet filled). `as_snapshot()` renders it in the indicator-row key names
    that `strategies.exits` and `strategies.sizing` take. Positional order is the packing order.
    """

    close: float
    adx: float
    adx_slope: float
    atr: float
    atr_slope: float
    rsi: float
    ema_fast: float
    ema_slow: float
    ema_macro: float
    macd_hist: float
    prev_macd_hist: float
    prev2_macd_hist: float
    prev3_macd_hist: float
    bb_width: float
    avg_bb_width: float
    tp_mult: float
    is_anomaly: bool

    def as_snapshot(self) -> dict[str, float | bool | None]:
        """Return the exit/sizing snapshot: row key names, non-finite values as None (absent)."""
        return {
            "Close": _finite(self.close), "ADX": _finite(self.adx), "ADX_slope": _finite(self.adx_slope),
            "ATR": _finite(self.atr), "ATR_slope": _finite(self.atr_slope), "RSI": _finite(self.rsi),
            "EMA_fast": _finite(self.ema_fast), "EMA_slow": _finite(self.ema_slow),
            "EMA_macro": _finite(self.ema_macro), "MACD_hist": _finite(self.macd_hist),
            "prev_MACD_hist": _finite(self.prev_macd_hist), "prev2_MACD_hist": _finite(self.prev2_macd_hist),
            "prev3_MACD_hist": _finite(self.prev3_macd_hist), "bb_width": _finite(self.bb_width),
            "avg_bb_width": _finite(self.avg_bb_width), "tp_mult": _finite(self.tp_mult),
            "is_anomaly": self.is_anomaly,
        }  # fmt: skip


def _finite(value: float) -> float | None:
    return value if math.isfinite(value) else None


def _float(value: object) -> float:
    return _NAN if value is None else float(value)  # type: ignore[arg-type]


def _row_features(cur: Row) -> SignalFeatures:
    """Features of a warm-up bar: the row's own values, no cross-bar extras (NaN)."""
    get = cur.get
    return SignalFeatures(
        _float(get("Close")), _float(get("ADX")), _NAN, _float(get("ATR")), _NAN, _float(get("RSI")),
        _float(get("EMA_fast")), _float(get("EMA_slow")), _float(get("EMA_macro")), _float(get("MACD_hist")),
        _NAN, _NAN, _NAN, _float(get("bb_width")), _float(get("avg_bb_width")), _NAN, False,
    )  # fmt: skip

CONFIDENCE_RANK: Mapping[Confidence, int] = {Confidence.LOW: 0, Confidence.MEDIUM: 1, Confidence.HIGH: 2}
MIN_BARS = 5  # fewer bars than this -> NEUTRAL/low (reference warm-up)
TMC_ADX_SLOPE_GT = 0.5  # ADX slope above which the min-ADX threshold is capped
TMC_MIN_ADX_CAP = 25.0


@dataclass(frozen=True, slots=True)
class Decision:
    """One bar's entry decision for one symbol.

    `snapshot` holds the newest indicator row plus the extras exits and sizing read (ADX_slope,
    ATR_slope, prev*_MACD_hist, tp_mult, is_anomaly, entry_adx_threshold, ...) for diagnostics and
    the batch reference; `features` the typed subset the engine trades on (None when neither was
    built: a NEUTRAL bar in `decide_lean`). `gates` maps each evaluated `EntryGate` value to True
    (passed) / False (blocked) for the standard entry path.
    """

    signal: Signal
    confidence: Confidence
    score: float
    snapshot: dict[str, Scalar] = field(default_factory=dict)
    gates: dict[str, bool] = field(default_factory=dict)
    entry_kind: EntryKind = EntryKind.NONE
    features: SignalFeatures | None = None


# Decision's slot setters: a frozen dataclass __init__ assigns through object.__setattr__, ~2x slower.
_DECISION_SETTERS = tuple(getattr(Decision, f.name).__set__ for f in fields(Decision))
if tuple(f.name for f in fields(Decision)) != ("signal", "confidence", "score", "snapshot", "gates",
                                               "entry_kind", "features"):
    raise RuntimeError("_decision is out of date with Decision's fields")


def _decision(signal: Signal, confidence: Confidence, score: float, snapshot: dict[str, Scalar],
              gates: dict[str, bool], kind: EntryKind, features: SignalFeatures | None) -> Decision:
    """`Decision(...)` with every field given, for the per-symbol hot path."""
    obj = object.__new__(Decision)
    set_signal, set_confidence, set_score, set_snapshot, set_gates, set_kind, set_features = _DECISION_SETTERS
    set_signal(obj, signal)
    set_confidence(obj, confidence)
    set_score(obj, score)
    set_snapshot(obj, snapshot)
    set_gates(obj, gates)
    set_kind(obj, kind)
    set_features(obj, features)
    return obj


def rank_score(signal: Signal, confidence: Confidence, adx: float) -> float:
    """Return `confidence_rank * 100 + ADX` for BUY/SELL, 0.0 for NEUTRAL (NaN ADX counts 0)."""
    if signal is Signal.NEUTRAL:
        return 0.0
    adx_part = adx if math.isfinite(adx) else 0.0
    return CONFIDENCE_RANK[confidence] * 100.0 + adx_part


# Gate keys as plain strings, computed once (Enum.value is a descriptor call, slow in a hot loop).
_G = {g: g.value for g in EntryGate}
_G_WARMUP, _G_FLAT = _G[EntryGate.WARMUP], _G[EntryGate.FLAT_MODE]
_G_ADX_MIN, _G_RANGING = _G[EntryGate.ADX_ABOVE_MIN], _G[EntryGate.NOT_RANGING]
_G_ANOMALY, _G_EXTENDED = _G[EntryGate.NOT_ANOMALY], _G[EntryGate.NOT_EXTENDED]
_G_VOLUME, _G_ADX_RISING = _G[EntryGate.VOLUME_CONFIRMED], _G[EntryGate.ADX_RISING]
_G_ALIGN, _G_PRICE = _G[EntryGate.EMA_ALIGNMENT], _G[EntryGate.PRICE_VS_EMA_FAST]
_G_RSI, _G_MACD = _G[EntryGate.RSI_LIMIT], _G[EntryGate.MACD]
_G_STOCH, _G_BTC = _G[EntryGate.STOCH_RSI], _G[EntryGate.BTC_ALIGNMENT]
_SIGNAL_VALUE = {s: s.value for s in Signal}


BTC_TREND_EMA_WINDOW = 50  # the reference engine hard-codes EMA(50) of BTC Close on the main interval


def btc_bullish_from(close: float, ema_50: float) -> bool | None:
    """Return the BTC trend gate input: Close > EMA50, or None (unknown) when either is NaN."""
    if math.isnan(close) or math.isnan(ema_50):
        return None
    return close > ema_50


def _f(row: Row, key: str) -> float:
    value = row.get(key)
    return _NAN if value is None else value


def _truthy(value: object) -> bool:
    if value is None:
        return False
    if isinstance(value, float) and math.isnan(value):
        return False
    return bool(value)


def _div(num: float, den: float) -> float:
    """Float division with numpy-like results instead of ZeroDivisionError."""
    if den == 0.0:
        if num == 0.0 or math.isnan(num):
            return math.nan
        return math.copysign(math.inf, num)
    return num / den


def _clamp(x: float, lo: float, hi: float) -> float:
    return max(lo, min(hi, x))


@dataclass(slots=True)
class _Ctx:
    """Values shared by the entry paths (one bar)."""

    close: float
    ema_fast: float
    ema_slow: float
    adx: float
    rsi: float
    hist: float
    prev_hist: float
    bullish: bool
    bearish: bool
    btc_ok_long: bool
    btc_ok_short: bool
    blocked: bool  # anomaly, extended, ranging or no volume confirmation


# Row values decide reads, fetched in one pass per row (a `_f` call per value was ~30% of decide).
_CUR_KEYS = ("ADX", "Close", "EMA_fast", "EMA_slow", "avg_atr", "ATR", "ema_slow_slope_pct", "RSI",
             "MACD_hist", "avg_bb_width", "bb_width")
_PREV_KEYS = ("ADX", "Close", "MACD_hist")


def _fs(row: Row, keys: tuple[str, ...]) -> list[float]:
    """`[_f(row, k) for k in keys]` in one call: missing or None -> NaN."""
    get = row.get
    return [_NAN if (v := get(k)) is None else v for k in keys]


def _is_ranging(avg: float, bb_width: float, adx: float, rsi: float, cfg: StrategyConfig) -> bool:
    if avg == 0.0:
        return True
    if not cfg.filters.enable_ranging_filter:
        return False
    rng = cfg.thresholds.ranging
    ratio = bb_width / avg if avg > 0 else 1.0
    votes = int(adx < rng.adx_below) + int(ratio < rng.bb_width_ratio_below)
    votes += int(rng.rsi_low < rsi < rng.rsi_high)
    return votes >= max(1, rng.min_signals)


def _is_anomaly(close: float, prev_close: float, ema_fast: float, cfg: StrategyConfig) -> bool:
    if not cfg.filters.enable_anomaly_filter:
        return False
    an = cfg.thresholds.anomaly
    return (_div(abs(close - prev_close), prev_close) > an.price_change_pct_gt
            or _div(abs(close - ema_fast), ema_fast) > an.ema_fast_dev_pct_gt)


def _tp_mult(adx: float, cfg: StrategyConfig) -> float:
    tm = cfg.thresholds.tp_and_momentum
    if adx > tm.adx_strong_gt:
        return tm.tp_mult_strong
    if adx < tm.adx_weak_lt:
        return tm.tp_mult_weak
    return cfg.trade.tp_atr_mult


def _vol_spike_mult(atr_ratio: float | None, cfg: StrategyConfig) -> float:
    """AVE: the min-ADX multiplier when ATR/avg_atr spikes above the threshold, else 1.0."""
    entry = cfg.thresholds.entry
    if atr_ratio is not None and atr_ratio > entry.ave_atr_ratio_gt and entry.ave_adx_mult > 0:
        return entry.ave_adx_mult
    return 1.0


def _effective_min_adx(adx_slope: float, vol_spike_mult: float, cfg: StrategyConfig) -> float:
    eff = cfg.thresholds.entry.min_adx
    if adx_slope > TMC_ADX_SLOPE_GT:
        eff = min(eff, TMC_MIN_ADX_CAP)
    return eff * vol_spike_mult


def pullback_min_adx(cfg: StrategyConfig) -> float:
    """`thresholds.entry.pullback_min_adx`, defaulting to `min_adx` when unset (reference)."""
    entry = cfg.thresholds.entry
    return entry.min_adx if entry.pullback_min_adx is None else entry.pullback_min_adx


def _vol_confirm(cur: Row, prev: Row, cfg: StrategyConfig) -> bool:
    if not cfg.filters.require_volume_confirmation:
        return True
    vol, vol_sma, trend = _f(cur, "Volume"), _f(cur, "vol_sma"), _truthy(cur.get("vol_trend"))
    if cfg.filters.vol_confirm_include_prev:
        above = vol > vol_sma or _f(prev, "Volume") > _f(prev, "vol_sma")
        return above and (trend or _truthy(prev.get("vol_trend")))
    return vol > vol_sma and trend


def _macd_ok(ctx: _Ctx, long: bool, mode: MacdMode) -> bool:
    if mode is MacdMode.ACCEL:
        return ctx.hist > ctx.prev_hist if long else ctx.hist < ctx.prev_hist
    if mode is MacdMode.SIGN:
        return ctx.hist > 0 if long else ctx.hist < 0
    return True


def _rsi_limits(adx: float, cfg: StrategyConfig) -> tuple[float, float]:
    """DRE: interpolate the RSI limits between weak and strong trend by ADX."""
    entry, tm = cfg.thresholds.entry, cfg.thresholds.tp_and_momentum
    strong = tm.adx_strong_gt if tm.adx_strong_gt > entry.min_adx else entry.min_adx + 1.0
    w = _clamp((adx - entry.min_adx) / (strong - entry.min_adx), 0.0, 1.0)
    long_limit = tm.rsi_long_weak + w * (tm.rsi_long_strong - tm.rsi_long_weak)
    short_limit = tm.rsi_short_weak + w * (tm.rsi_short_strong - tm.rsi_short_weak)
    return long_limit, short_limit


def _standard_entry(
    ctx: _Ctx, cur: Row, cfg: StrategyConfig, gates: dict[str, bool], extras: dict[str, Scalar]
) -> tuple[Signal, Confidence]:
    """The standard trend entry after its pre-gates passed; fills the direction gates."""
    entry = cfg.thresholds.entry
    long_limit, short_limit = _rsi_limits(ctx.adx, cfg)
    extras["rsi_long_limit"], extras["rsi_short_limit"] = long_limit, short_limit
    stoch_on = cfg.filters.use_stoch_rsi_filter
    stoch_k = _f(cur, "stoch_k")
    if math.isnan(stoch_k):
        stoch_k = 0.0  # reference quirk kept: NaN -> 0.0 never blocks longs, always blocks shorts
    sr = cfg.thresholds.stoch_rsi
    long_checks = {
        _G_ALIGN: ctx.bullish,
        _G_PRICE: ctx.close > ctx.ema_fast,
        _G_RSI: ctx.rsi > long_limit,
        _G_MACD: _macd_ok(ctx, True, entry.macd_hist_entry_mode),
        _G_STOCH: (not stoch_on) or stoch_k < sr.block_long_if_k_gt,
        _G_BTC: ctx.btc_ok_long,
    }
    short_checks = {
        _G_ALIGN: ctx.bearish,
        _G_PRICE: ctx.close < ctx.ema_fast,
        _G_RSI: ctx.rsi < short_limit,
        _G_MACD: _macd_ok(ctx, False, entry.macd_hist_entry_mode),
        _G_STOCH: (not stoch_on) or stoch_k > sr.block_short_if_k_lt,
        _G_BTC: ctx.btc_ok_short,
    }
    if all(long_checks.values()):
        signal = Signal.BUY
    elif all(short_checks.values()):
        signal = Signal.SELL
    else:
        signal = Signal.NEUTRAL
    show_short = signal is Signal.SELL or (signal is Signal.NEUTRAL and ctx.bearish)
    shown = short_checks if show_short else long_checks
    gates.update(shown)
    if signal is Signal.NEUTRAL:
        return signal, Confidence.LOW
    high = _f(cur, "Volume") > _f(cur, "vol_sma") * entry.high_conf_volume_mult
    return signal, Confidence.HIGH if high else Confidence.MEDIUM


def _pullback_entry(ctx: _Ctx, prev: Row, cfg: StrategyConfig) -> Signal:
    entry = cfg.thresholds.entry
    if ctx.blocked or not ctx.adx >= pullback_min_adx(cfg):
        return Signal.NEUTRAL
    prev_close, prev_ema_fast = _f(prev, "Close"), _f(prev, "EMA_fast")
    cross_up = prev_close <= prev_ema_fast and ctx.close > ctx.ema_fast
    cross_down = prev_close >= prev_ema_fast and ctx.close < ctx.ema_fast
    need_sign = entry.pullback_require_macd_sign
    if (cross_up and ctx.bullish and ctx.btc_ok_long and (not need_sign or ctx.hist > 0)
            and ctx.rsi >= entry.pullback_rsi_long_min):
        return Signal.BUY
    if (cross_down and ctx.bearish and ctx.btc_ok_short and (not need_sign or ctx.hist < 0)
            and ctx.rsi <= entry.pullback_rsi_short_max):
        return Signal.SELL
    return Signal.NEUTRAL


def _slow_drift_entry(ctx: _Ctx, slope: float, cfg: StrategyConfig) -> Signal:
    entry = cfg.thresholds.entry
    if ctx.blocked or not ctx.adx >= entry.slow_drift_min_adx:
        return Signal.NEUTRAL
    need_sign = entry.slow_drift_require_macd_sign
    min_slope = entry.slow_drift_min_slope_pct
    if (ctx.bullish and ctx.close > ctx.ema_slow and ctx.btc_ok_long and slope >= min_slope
            and (not need_sign or ctx.hist > 0) and ctx.rsi >= entry.slow_drift_rsi_long_min):
        return Signal.BUY
    if (ctx.bearish and ctx.close < ctx.ema_slow and ctx.btc_ok_short and slope <= -min_slope
            and (not need_sign or ctx.hist < 0) and ctx.rsi <= entry.slow_drift_rsi_short_max):
        return Signal.SELL
    return Signal.NEUTRAL


def _fallback_entry(
    ctx: _Ctx, prev: Row, slope: float, cfg: StrategyConfig
) -> tuple[Signal, Confidence, EntryKind, float] | None:
    """The pullback, then the slow-drift entry (when enabled): (signal, confidence, kind, ADX threshold)."""
    entry = cfg.thresholds.entry
    if entry.enable_pullback_entries:
        signal = _pullback_entry(ctx, prev, cfg)
        if signal is not Signal.NEUTRAL:
            return signal, entry.pullback_confidence, EntryKind.PULLBACK, pullback_min_adx(cfg)
    if entry.enable_slow_drift_entries:
        signal = _slow_drift_entry(ctx, slope, cfg)
        if signal is not Signal.NEUTRAL:
            return signal, Confidence.LOW, EntryKind.SLOW_DRIFT, entry.slow_drift_min_adx
    return None


def _btc_ok(
    adx: float, btc_bullish: bool | None, symbol: str | None, cfg: StrategyConfig
) -> tuple[bool, bool]:
    if not cfg.filters.require_btc_alignment:
        return True, True
    is_btc = symbol is not None and symbol.upper() == "BTC"
    override = adx > cfg.thresholds.entry.btc_adx_override
    return (is_btc or btc_bullish is None or btc_bullish or override,
            is_btc or btc_bullish is None or not btc_bullish or override)


def _base_snapshot(cur: Row, stoch_filter: bool, extras: Mapping[str, Scalar]) -> dict[str, Scalar]:
    """The newest row (stoch_k NaN shown as the 0.0 the StochRSI gate used) plus the extras."""
    snapshot: dict[str, Scalar] = dict(cur)
    if stoch_filter and math.isnan(_f(cur, "stoch_k")):
        snapshot["stoch_k"] = 0.0
    snapshot.update(extras)
    return snapshot


def _hist_at(rows: Sequence[Row], back: int) -> float:
    return _f(rows[-1 - back], "MACD_hist") if len(rows) > back else 0.0


def decide(
    rows: Sequence[Row],
    bars: int,
    cfg: StrategyConfig,
    btc_bullish: bool | None,
    *,
    symbol: str | None = None,
) -> Decision:
    """Decide BUY/SELL/NEUTRAL from the last <= 4 indicator rows (oldest -> newest).

    `bars` is the full history length (warm-up: < 5 -> NEUTRAL/low). `btc_bullish` None means
    unknown (the BTC gate passes); `symbol` "BTC" always passes the BTC gate. The decision
    carries both the diagnostic snapshot dict and the typed `features`, also when NEUTRAL.
    """
    return _decide(rows, bars, cfg, btc_bullish, symbol, detail=True, as_dict=True)


def decide_lean(
    rows: Sequence[Row],
    bars: int,
    cfg: StrategyConfig,
    btc_bullish: bool | None,
    *,
    symbol: str | None = None,
    with_features: bool = False,
) -> Decision:
    """`decide` for the shard: never the snapshot dict; typed `features` for BUY/SELL and, with
    `with_features`, for NEUTRAL too (an open position's exits need them).

    Why: the shard decides for thousands of symbols per tick and ships features only for BUY/SELL
    and open positions, as a typed record the driver reads by attribute; building the ~50-key
    dict of every symbol was a large share of its per-symbol cost. Signal, confidence, score,
    gates, entry kind and every `features` are exactly `decide`'s.
    """
    return _decide(rows, bars, cfg, btc_bullish, symbol, detail=with_features, as_dict=False)


def _warmup(rows: Sequence[Row], detail: bool, as_dict: bool) -> Decision:
    """NEUTRAL/low before MIN_BARS; with `detail` the newest row as snapshot and features."""
    snap: dict[str, Scalar] = dict(rows[-1]) if rows and detail and as_dict else {}
    features = _row_features(rows[-1]) if rows and detail else None
    return _decision(Signal.NEUTRAL, Confidence.LOW, 0.0, snap, {_G_WARMUP: False}, EntryKind.NONE, features)


def _trend_sides(cur: Row, ema_fast: float, ema_slow: float, macro: bool) -> tuple[bool, bool]:
    """(bullish, bearish) from the EMA stack; with `macro`, the slow EMA must also sit on the
    right side of the macro EMA."""
    bullish, bearish = ema_fast > ema_slow, ema_fast < ema_slow
    if macro:
        ema_macro = _f(cur, "EMA_macro")
        return bullish and ema_slow > ema_macro, bearish and ema_slow < ema_macro
    return bullish, bearish


def _decide(
    rows: Sequence[Row], bars: int, cfg: StrategyConfig, btc_bullish: bool | None, symbol: str | None,
    *, detail: bool, as_dict: bool,
) -> Decision:  # fmt: skip
    # detail: build features (and, with as_dict, the snapshot dict) also for a NEUTRAL bar.
    if bars < MIN_BARS or not rows:
        return _warmup(rows, detail, as_dict)
    cur, prev = rows[-1], rows[-2] if len(rows) > 1 else rows[-1]
    flt, entry = cfg.filters, cfg.thresholds.entry
    adx, close, ema_fast, ema_slow, avg_atr, atr, slope, rsi, hist, avg_bbw, bbw = _fs(cur, _CUR_KEYS)
    prev_adx, prev_close, prev_hist = _fs(prev, _PREV_KEYS)
    adx_slope = adx - prev_adx
    atr_ratio = atr / avg_atr if entry.ave_enabled and avg_atr > 0 else None
    spike_mult = _vol_spike_mult(atr_ratio, cfg)

    is_ranging = _is_ranging(avg_bbw, bbw, adx, rsi, cfg)
    is_anomaly = _is_anomaly(close, prev_close, ema_fast, cfg)
    eff_min_adx = _effective_min_adx(adx_slope, spike_mult, cfg)
    trending_up = (not flt.require_adx_rising) or adx > prev_adx or adx > flt.adx_rising_saturation
    vol_ok = _vol_confirm(cur, prev, cfg)
    bullish, bearish = _trend_sides(cur, ema_fast, ema_slow, flt.require_macro_alignment)
    btc_long, btc_short = _btc_ok(adx, btc_bullish, symbol, cfg)
    if entry.enable_slow_drift_entries and is_ranging and abs(slope) >= entry.slow_drift_min_slope_pct:
        is_ranging = False
    is_extended = flt.enable_extension_filter and (
        _div(abs(close - ema_fast), ema_fast) > entry.max_dist_ema_fast)

    ctx = _Ctx(close=close, ema_fast=ema_fast, ema_slow=ema_slow, adx=adx, rsi=rsi,
               hist=hist, prev_hist=prev_hist, bullish=bullish,
               bearish=bearish, btc_ok_long=btc_long, btc_ok_short=btc_short,
               blocked=is_anomaly or is_extended or is_ranging or not vol_ok)
    gates: dict[str, bool] = {
        _G_WARMUP: True,
        _G_ADX_MIN: adx > eff_min_adx,
        _G_RANGING: not is_ranging,
        _G_ANOMALY: not is_anomaly,
        _G_EXTENDED: not is_extended,
        _G_VOLUME: vol_ok,
        _G_ADX_RISING: trending_up,
    }
    extras: dict[str, Scalar] = {}
    signal, confidence, kind = Signal.NEUTRAL, Confidence.LOW, EntryKind.NONE
    entry_adx_threshold = eff_min_adx
    if all(gates.values()):
        signal, confidence = _standard_entry(ctx, cur, cfg, gates, extras)
        kind = EntryKind.STANDARD if signal is not Signal.NEUTRAL else EntryKind.NONE
    if signal is Signal.NEUTRAL:
        fallback = _fallback_entry(ctx, prev, slope, cfg)
        if fallback is not None:
            signal, confidence, kind, entry_adx_threshold = fallback
    raw_signal = signal
    if cfg.trade.reverse_entry_signal and signal is not Signal.NEUTRAL:
        signal = Signal.SELL if signal is Signal.BUY else Signal.BUY
    entries_enabled = cfg.entries_enabled
    gates[_G_FLAT] = entries_enabled
    if not entries_enabled:
        signal, confidence = Signal.NEUTRAL, Confidence.LOW
    if signal is Signal.NEUTRAL and not detail:
        return _decision(signal, confidence, 0.0, {}, gates, kind, None)
    score = rank_score(signal, confidence, adx)
    atr_slope, tp_mult = atr - _f(prev, "ATR"), _tp_mult(adx, cfg)
    features = SignalFeatures(
        close, adx, adx_slope, atr, atr_slope, rsi, ema_fast, ema_slow, _f(cur, "EMA_macro"), hist,
        _hist_at(rows, 1), _hist_at(rows, 2), _hist_at(rows, 3), bbw, avg_bbw, tp_mult, is_anomaly,
    )  # fmt: skip
    if not as_dict:
        return _decision(signal, confidence, score, {}, gates, kind, features)

    snapshot = _base_snapshot(cur, flt.use_stoch_rsi_filter, extras)
    snapshot.update({
        "ADX_slope": adx_slope,
        "ATR_slope": atr_slope,
        "prev_MACD_hist": features.prev_macd_hist,
        "prev2_MACD_hist": features.prev2_macd_hist,
        "prev3_MACD_hist": features.prev3_macd_hist,
        "tp_mult": tp_mult,
        "is_anomaly": is_anomaly,
        "is_ranging": is_ranging,
        "is_extended": bool(is_extended),
        "effective_min_adx": eff_min_adx,
        "entry_adx_threshold": entry_adx_threshold,
        "ema_slow_slope_pct": slope,
        "macd_entry_mode": str(entry.macd_hist_entry_mode),
        "ave_enabled": entry.ave_enabled,
        "atr_ratio": atr_ratio if atr_ratio is not None else _NAN,  # NaN: not computed (AVE off)
        "vol_spike_mult": spike_mult,
        "pullback_enabled": entry.enable_pullback_entries,
        "pullback_used": kind is EntryKind.PULLBACK,
        "slow_drift_enabled": entry.enable_slow_drift_entries,
        "slow_drift_used": kind is EntryKind.SLOW_DRIFT,
        "raw_signal": _SIGNAL_VALUE[raw_signal],
        "reversed_signal": signal is not raw_signal and signal is not Signal.NEUTRAL,
    })
    return _decision(signal, confidence, score, snapshot, gates, kind, features)
