"""mei_alpha_v1's indicator frame written as SDK declarations (the first step of its adapter).

`mei_alpha_v1_indicators(params)` declares, from the library, every column
`strategies.indicators.compute_indicators` produces; `tests/unit/test_sdk_mei_indicators.py`
proves the declared set gives the same 19 columns bit for bit (batch and incremental) on real
candles, so the adapter that puts mei_alpha_v1 on the SDK can switch its indicators to
declarations without changing a single decision. The set writes three extra columns the legacy
frame lacks (bb_mid, MACD, MACD_signal); the adapter hands `decide` rows projected to
`MEI_ROW_COLUMNS` so snapshots keep their exact keys. Pure: no I/O.
"""

from __future__ import annotations

from strategies.indicator_params import (
    BB_WINDOW_DEV,
    INDICATOR_COLUMNS,
    MACD_FAST_WINDOW,
    MACD_SIGNAL_WINDOW,
    MACD_SLOW_WINDOW,
    PRICE_COLUMNS,
    IndicatorParams,
)
from strategies.sdk.library import (
    Adx,
    Atr,
    Bollinger,
    Ema,
    Indicator,
    Macd,
    Rsi,
    SlopePct,
    Sma,
    SmaAbove,
    StochRsi,
)

MEI_ROW_COLUMNS: tuple[str, ...] = ("timestamp", *PRICE_COLUMNS, *INDICATOR_COLUMNS)


def mei_alpha_v1_indicators(params: IndicatorParams | None = None) -> tuple[Indicator, ...]:
    """Return the declarations equivalent to `compute_indicators(df, params)`."""
    p = params if params is not None else IndicatorParams()
    return (
        Ema(name="EMA_fast", window=p.ema_fast_window),
        Ema(name="EMA_slow", window=p.ema_slow_window),
        Ema(name="EMA_macro", window=p.ema_macro_window),
        Adx(name="ADX", window=p.adx_window),
        Bollinger(name="bb", window=p.bb_window, dev=BB_WINDOW_DEV),
        Sma(name="avg_bb_width", source="bb_width", window=p.bb_width_avg_window),
        Atr(name="ATR", window=p.atr_window),
        Sma(name="avg_atr", source="ATR", window=p.effective_avg_atr_window),
        Rsi(name="RSI", window=p.rsi_window),
        Macd(name="MACD", fast=MACD_FAST_WINDOW, slow=MACD_SLOW_WINDOW, signal=MACD_SIGNAL_WINDOW),
        Sma(name="vol_sma", source="Volume", window=p.vol_sma_window),
        SmaAbove(name="vol_trend", source="Volume", fast=p.vol_trend_window, slow=p.vol_sma_window),
        StochRsi(name="stoch", window=p.stoch_rsi_window, smooth_k=p.stoch_rsi_smooth1,
                 smooth_d=p.stoch_rsi_smooth2),
        SlopePct(name="ema_slow_slope_pct", source="EMA_slow", window=p.slow_drift_slope_window),
    )
