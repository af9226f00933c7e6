"""mei_alpha_v1 batch reference: indicators on a pandas frame, then the shared `decide`.

`analyze` is the readable oracle for tests and backtests (reference §1.1); `analyze_series`
returns one decision per bar with the indicators computed once (parity checks, replay).

Deliberate deviations from the reference's quirks:
* the input frame is never mutated (indicators go on a copy);
* the return type is always a `Decision` (the reference returns a 2-tuple during warm-up);
* config is passed in (`cfg`), not looked up from a process-wide manager;
* `btc_bullish` is honoured (the reference engine computed it but never passed it on).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pandas as pd

from strategies.config import StrategyConfig, default_config
from strategies.indicators import compute_indicators
from strategies.signals import BTC_TREND_EMA_WINDOW, MIN_BARS, Decision, btc_bullish_from, decide

OHLCV_COLUMNS = ("Open", "High", "Low", "Close", "Volume")
INDICATOR_COLUMNS = (
    "EMA_fast", "EMA_slow", "EMA_macro", "ADX", "ADX_pos", "ADX_neg", "bb_high", "bb_low",
    "bb_width", "avg_bb_width", "ATR", "avg_atr", "RSI", "MACD_hist", "vol_sma", "vol_trend",
    "stoch_k", "stoch_d", "ema_slow_slope_pct",
)
ROW_COLUMNS = ("timestamp", *OHLCV_COLUMNS, *INDICATOR_COLUMNS)
WINDOW_ROWS = 4  # decide() reads at most the last four rows (prev3 MACD hist)
_SHORT_NAMES = {"t": "timestamp", "o": "Open", "h": "High", "l": "Low", "c": "Close", "v": "Volume"}


def frame_from_ohlcv(df: pd.DataFrame) -> pd.DataFrame:
    """Return a copy with the short CSV names (t,o,h,l,c,v) renamed to the strategy's names."""
    return df.rename(columns={k: v for k, v in _SHORT_NAMES.items() if k in df.columns})


def indicator_frame(df: pd.DataFrame, cfg: StrategyConfig) -> pd.DataFrame:
    """Return a new frame (0-based index) with the indicator columns added; `df` is not touched."""
    missing = [c for c in OHLCV_COLUMNS if c not in df.columns]
    if missing:
        raise ValueError(f"candle frame lacks columns {missing}; has {list(df.columns)}")
    base = df.reset_index(drop=True).copy()
    if "timestamp" not in base.columns:
        base["timestamp"] = range(len(base))
    return compute_indicators(base, cfg.indicator_params())


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    cols = [c for c in ROW_COLUMNS if c in frame.columns]
    return frame[cols].to_dict("records")


def analyze(
    df: pd.DataFrame,
    symbol: str,
    btc_bullish: bool | None = None,
    cfg: StrategyConfig | None = None,
) -> Decision:
    """Decide on the newest bar of `df` (columns Open..Volume, oldest -> newest). Pure."""
    cfg = cfg if cfg is not None else default_config(symbol)
    if len(df) < MIN_BARS:
        return decide([], len(df), cfg, btc_bullish, symbol=symbol)
    records = _records(indicator_frame(df, cfg).iloc[-WINDOW_ROWS:])
    return decide(records, len(df), cfg, btc_bullish, symbol=symbol)


def analyze_series(
    df: pd.DataFrame,
    symbol: str,
    cfg: StrategyConfig | None = None,
    btc_bullish_series: Sequence[bool | None] | None = None,
) -> list[Decision]:
    """Return the decision `analyze` would give on every prefix of `df` (one per bar).

    Indicators are computed once over the whole frame; this equals per-prefix `analyze` because
    every indicator value at bar i depends only on bars <= i.
    """
    cfg = cfg if cfg is not None else default_config(symbol)
    if not len(df):
        return []
    return decide_over_frame(indicator_frame(df, cfg), symbol, cfg, btc_bullish_series)


def decide_over_frame(
    frame: pd.DataFrame,
    symbol: str,
    cfg: StrategyConfig,
    btc_bullish_series: Sequence[bool | None] | None = None,
) -> list[Decision]:
    """Run `decide` on every bar of a frame that already has the indicator columns."""
    if btc_bullish_series is not None and len(btc_bullish_series) != len(frame):
        raise ValueError(f"btc_bullish_series has {len(btc_bullish_series)} values for {len(frame)} bars")
    records = _records(frame)
    out: list[Decision] = []
    for i in range(len(records)):
        btc = btc_bullish_series[i] if btc_bullish_series is not None else None
        window = records[max(0, i + 1 - WINDOW_ROWS): i + 1]
        out.append(decide(window, i + 1, cfg, btc, symbol=symbol))
    return out


def btc_bullish_series(btc_close: pd.Series) -> list[bool | None]:
    """Per bar, the BTC gate input the reference engine derives: Close > EMA(Close, 50).

    EMA as `ta`'s (span 50, adjust=False, min_periods=50); None (unknown) during warm-up.
    """
    ema = btc_close.ewm(span=BTC_TREND_EMA_WINDOW, adjust=False, min_periods=BTC_TREND_EMA_WINDOW).mean()
    return [btc_bullish_from(float(c), float(e)) for c, e in zip(btc_close, ema, strict=True)]
