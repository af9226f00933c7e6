"""Closed vocabularies of the strategy layer. Values are what goes into SQLite and logs."""

from __future__ import annotations

from enum import StrEnum


class Signal(StrEnum):
    BUY = "BUY"
    SELL = "SELL"
    NEUTRAL = "NEUTRAL"


class Confidence(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class PositionSide(StrEnum):
    LONG = "LONG"
    SHORT = "SHORT"


class TradeAction(StrEnum):
    OPEN = "OPEN"
    ADD = "ADD"
    REDUCE = "REDUCE"
    CLOSE = "CLOSE"


# --- strategy decision, exit and sizing vocabularies (STRAT-LOGIC) ---


class StrategyMode(StrEnum):
    """`AI_QUANT_STRATEGY_MODE` overlays (`modes.<mode>` in the YAML). FLAT blocks new entries."""

    PRIMARY = "primary"
    FALLBACK = "fallback"
    CONSERVATIVE = "conservative"
    FLAT = "flat"


class MacdMode(StrEnum):
    """`thresholds.entry.macd_hist_entry_mode`: accel = hist beyond prev hist, sign = hist sign."""

    ACCEL = "accel"
    SIGN = "sign"
    NONE = "none"


class EntryKind(StrEnum):
    """Which entry path produced a BUY/SELL (precedence: standard > pullback > slow_drift)."""

    NONE = "none"
    STANDARD = "standard"
    PULLBACK = "pullback"
    SLOW_DRIFT = "slow_drift"


class EntryGate(StrEnum):
    """Gates of the standard trend entry; `Decision.gates[gate]` is True when the gate passed."""

    WARMUP = "warmup"
    FLAT_MODE = "flat_mode"
    ADX_ABOVE_MIN = "adx_above_min"
    NOT_RANGING = "not_ranging"
    NOT_ANOMALY = "not_anomaly"
    NOT_EXTENDED = "not_extended"
    VOLUME_CONFIRMED = "volume_confirmed"
    ADX_RISING = "adx_rising"
    EMA_ALIGNMENT = "ema_alignment"
    PRICE_VS_EMA_FAST = "price_vs_ema_fast"
    RSI_LIMIT = "rsi_limit"
    MACD = "macd"
    STOCH_RSI = "stoch_rsi"
    BTC_ALIGNMENT = "btc_alignment"


class ExitAction(StrEnum):
    HOLD = "hold"
    REDUCE = "reduce"
    CLOSE = "close"


class ExitReason(StrEnum):
    """Why a position is reduced or closed. Values are stable: they go into SQLite and logs."""

    STOP_LOSS = "stop_loss"
    TRAILING_STOP = "trailing_stop"
    TAKE_PROFIT = "take_profit"
    TAKE_PROFIT_PARTIAL = "take_profit_partial"
    TREND_BREAKDOWN = "trend_breakdown"
    TREND_EXHAUSTION = "trend_exhaustion"
    MACRO_BREAKDOWN = "macro_breakdown"
    STAGNATION = "stagnation"
    FUNDING_HEADWIND = "funding_headwind"
    TSME = "tsme"
    MACD_DIVERGENCE = "macd_divergence"
    RSI_OVEREXTENSION = "rsi_overextension"
    SIGNAL_FLIP = "signal_flip"


class HoldReason(StrEnum):
    """Why an exit check held although it might otherwise have acted."""

    NONE = "none"
    ANOMALY_BLOCK = "anomaly_block"
    EXIT_COOLDOWN = "exit_cooldown"
    GLITCH_GUARD = "glitch_guard"
    PARTIAL_TP_DONE = "partial_tp_done"


class SizingBlock(StrEnum):
    """Why an entry or an add is not sized / not allowed (reason codes; None when allowed)."""

    BAD_INPUT = "bad_input"
    MIN_CONFIDENCE = "min_confidence"
    SSF = "ssf"
    REEF = "reef"
    REENTRY_COOLDOWN = "reentry_cooldown"
    MARGIN_CAP = "margin_cap"
    BELOW_MIN_NOTIONAL = "below_min_notional"
    TIER_LEVERAGE = "tier_leverage"
    PYRAMIDING_DISABLED = "pyramiding_disabled"
    MAX_ADDS = "max_adds"
    ADD_MIN_CONFIDENCE = "add_min_confidence"
    ADD_COOLDOWN = "add_cooldown"
    PARTIAL_TP_TAKEN = "partial_tp_taken"
    STOP_TOO_CLOSE = "stop_too_close"
    MACD_NOT_EXPANDING = "macd_not_expanding"
    RSI_GUARD = "rsi_guard"
    ADD_MIN_PROFIT = "add_min_profit"
