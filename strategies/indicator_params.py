"""Indicator windows and the indicator column vocabulary shared by the batch and incremental paths.

Both `strategies.indicators.compute_indicators` (batch) and
`strategies.incremental.IncrementalIndicators` (one candle at a time) take the same
`IndicatorParams` and produce exactly the columns in `INDICATOR_COLUMNS`, so a row from either
path can be fed to the same signal function.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

MACD_FAST_WINDOW = 12  # fixed in the reference strategy, not configurable
MACD_SLOW_WINDOW = 26
MACD_SIGNAL_WINDOW = 9
BB_WINDOW_DEV = 2  # Bollinger band width in population standard deviations (ta default)
AVG_ATR_WINDOW_MIN = 5
AVG_ATR_WINDOW_MAX = 500
SLOPE_WINDOW_MIN = 3  # ema_slow_slope_pct looks back at least 3 rows (inclusive), see slope_lag()

# Price/volume columns every row carries, then the indicator columns in a fixed order.
PRICE_COLUMNS: tuple[str, ...] = ("Open", "High", "Low", "Close", "Volume")
INDICATOR_COLUMNS: tuple[str, ...] = (
    "EMA_fast",
    "EMA_slow",
    "EMA_macro",
    "ADX",
    "ADX_pos",
    "ADX_neg",
    "bb_high",
    "bb_low",
    "bb_width",
    "avg_bb_width",
    "ATR",
    "avg_atr",
    "RSI",
    "MACD_hist",
    "vol_sma",
    "vol_trend",
    "stoch_k",
    "stoch_d",
    "ema_slow_slope_pct",
)


@dataclass(frozen=True, kw_only=True, slots=True)
class IndicatorParams:
    """Indicator windows, in bars. Defaults are the reference strategy's.

    `avg_atr_window` is clamped to 5..500 where it is used (`effective_avg_atr_window`), as the
    reference clamps `thresholds.entry.ave_avg_atr_window`. Every window must be an int >= 1.
    """

    ema_fast_window: int = 20
    ema_slow_window: int = 50
    ema_macro_window: int = 200
    adx_window: int = 14
    bb_window: int = 20
    bb_width_avg_window: int = 30
    atr_window: int = 14
    avg_atr_window: int = 50
    rsi_window: int = 14
    vol_sma_window: int = 20
    vol_trend_window: int = 5
    stoch_rsi_window: int = 14
    stoch_rsi_smooth1: int = 3
    stoch_rsi_smooth2: int = 3
    slow_drift_slope_window: int = 20

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"IndicatorParams.{f.name} must be an int >= 1, got {value!r}")

    @property
    def effective_avg_atr_window(self) -> int:
        """Return avg_atr_window clamped to 5..500 bars (the reference's clamp)."""
        return min(AVG_ATR_WINDOW_MAX, max(AVG_ATR_WINDOW_MIN, self.avg_atr_window))

    def to_dict(self) -> dict[str, int]:
        """Return the windows as a plain dict (for checkpoints and logs)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IndicatorParams:
        """Build from a plain dict; raise ValueError naming any unknown key."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ValueError(f"unknown IndicatorParams key(s): {', '.join(unknown)}")
        return cls(**data)


def slope_lag(slope_window: int, row_index: int) -> int:
    """Return how many rows back ema_slow_slope_pct looks from row `row_index` (0-based).

    The reference computes, on a frame of `n` rows, `(EMA_slow[-1] - EMA_slow[-W]) / Close[-1]`
    with `W = max(3, min(slow_drift_slope_window, n - 1))`. For the frame ending at row i
    (n = i + 1) that is EMA_slow[i] - EMA_slow[i - (W - 1)]; a negative target row means NaN.
    """
    w = max(SLOPE_WINDOW_MIN, min(slope_window, row_index))
    return w - 1
