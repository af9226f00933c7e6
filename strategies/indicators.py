"""Batch indicators over a whole candle frame: the readable reference for the incremental engine.

Semantics are those of the `ta` 0.11.0 calls the reference strategy makes (fillna=False), written
here with pandas/numpy so `ta` stays a test-only oracle:

* EMA: `ewm(span=n, adjust=False, min_periods=n)`; NaN for the first n-1 rows.
* RSI: Wilder `ewm(alpha=1/n, adjust=False, min_periods=n)` of gains and losses (row 0 counts as
  a zero gain/loss observation); 100 where the average loss is 0.
* ATR: Wilder average of the true range seeded by the mean of the first n ranges (row 0's range
  is High-Low); rows before n-1 are 0.0, not NaN.
* ADX/+DI/-DI: Wilder sums of TR/+DM/-DM seeded by the sum of rows 1..n; +DI/-DI are 0.0 up to
  and including row n; ADX is 0.0 before row 2n-1, seeded there with the mean DX of rows
  n..2n-1 and Wilder-smoothed after. Zero TR or zero DI sum gives 0.0, like `ta`.
* Bollinger: SMA(n) +- 2 population std; bb_width = (bb_high - bb_low) / Close.
* StochRSI: (RSI - min) / (max - min) over n rows (NaN when max == min), k = SMA(smooth1),
  d = SMA(smooth2) of k; stoch_k/stoch_d NaN become 0.0 (the reference's fill).
* vol_trend: 1.0 where SMA(Volume, vol_trend_window) > vol_sma, else 0.0 (NaN compares False).
* ema_slow_slope_pct: per row i, the value the reference's analyze() would compute on the frame
  ending at row i (see `indicator_params.slope_lag`); NaN where it reaches before row 0.

Seed sums (ATR, ADX) use `math.fsum`, so they may differ from `ta` in the last bit or two; every
other operation is the same IEEE arithmetic as `ta`/pandas. Pure: no I/O.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from strategies.indicator_params import (
    BB_WINDOW_DEV,
    INDICATOR_COLUMNS,
    MACD_FAST_WINDOW,
    MACD_SIGNAL_WINDOW,
    MACD_SLOW_WINDOW,
    PRICE_COLUMNS,
    SLOPE_WINDOW_MIN,
    IndicatorParams,
)

if TYPE_CHECKING:  # pandas is imported inside the batch functions: a shard's start-up never needs it
    import pandas as pd

__all__ = ["INDICATOR_COLUMNS", "IndicatorParams", "compute_indicators"]


def _series(values: np.ndarray) -> pd.Series:
    """`pd.Series(values)`, importing pandas on first use: only batch paths need it, and a
    shard actor that never runs one starts ~1 s sooner on 2 cores without it."""
    import pandas as pd

    return pd.Series(values)


def _ema(values: pd.Series, window: int) -> pd.Series:
    return values.ewm(span=window, min_periods=window, adjust=False).mean()


def _rsi(close: pd.Series, window: int) -> np.ndarray:
    diff = close.diff(1)
    gains = diff.where(diff > 0, 0.0)
    losses = -diff.where(diff < 0, 0.0)
    avg_gain = gains.ewm(alpha=1 / window, min_periods=window, adjust=False).mean().to_numpy()
    avg_loss = losses.ewm(alpha=1 / window, min_periods=window, adjust=False).mean().to_numpy()
    with np.errstate(all="ignore"):
        return np.where(avg_loss == 0, 100.0, 100 - (100 / (1 + avg_gain / avg_loss)))


def _true_range(high: np.ndarray, low: np.ndarray, close: np.ndarray) -> np.ndarray:
    """True range per row; row 0 (no previous close) is High - Low."""
    tr = np.empty(len(close))
    if len(close):
        tr[0] = high[0] - low[0]
        prev = close[:-1]
        tr[1:] = np.maximum(high[1:], prev) - np.minimum(low[1:], prev)
    return tr


def _atr(tr: np.ndarray, window: int) -> np.ndarray:
    out = np.zeros(len(tr))
    if len(tr) < window:
        return out
    values = tr.tolist()
    atr = math.fsum(values[:window]) / window
    out[window - 1] = atr
    for i in range(window, len(values)):
        atr = (atr * (window - 1) + values[i]) / float(window)
        out[i] = atr
    return out


def _wilder_sums(values: list[float], window: int) -> list[float]:
    """Wilder running sums over values[1:]: index j is the sum ending at row window + j."""
    if len(values) <= window:
        return []
    acc = math.fsum(values[1 : window + 1])
    sums = [acc]
    for x in values[window + 1 :]:
        acc = acc - acc / float(window) + x
        sums.append(acc)
    return sums


def _directional(
    high: np.ndarray, low: np.ndarray, tr: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Return (ADX, +DI, -DI) with `ta` 0.11's zero-filled warm-up."""
    n_rows = len(tr)
    adx, di_pos, di_neg = np.zeros(n_rows), np.zeros(n_rows), np.zeros(n_rows)
    if n_rows <= window:
        return adx, di_pos, di_neg
    up = np.zeros(n_rows)
    down = np.zeros(n_rows)
    up[1:] = high[1:] - high[:-1]
    down[1:] = low[:-1] - low[1:]
    plus_dm = np.where((up > down) & (up > 0), up, 0.0)
    minus_dm = np.where((down > up) & (down > 0), down, 0.0)
    trs = _wilder_sums(tr.tolist(), window)
    pos = _wilder_sums(plus_dm.tolist(), window)
    neg = _wilder_sums(minus_dm.tolist(), window)
    dx: list[float] = []
    for j, (t, p, m) in enumerate(zip(trs, pos, neg, strict=True)):
        dip = 100 * (p / t) if t != 0 else 0.0
        din = 100 * (m / t) if t != 0 else 0.0
        if j >= 1:
            di_pos[window + j] = dip
            di_neg[window + j] = din
        dx.append(100 * abs((dip - din) / (dip + din)) if dip + din != 0 else 0.0)
    if len(dx) >= window:
        value = math.fsum(dx[:window]) / window
        adx[2 * window - 1] = value
        for j in range(window, len(dx)):
            value = (value * (window - 1) + dx[j]) / float(window)
            adx[window + j] = value
    return adx, di_pos, di_neg


def _slope_pct(ema_slow: np.ndarray, close: np.ndarray, slope_window: int) -> np.ndarray:
    rows = np.arange(len(close))
    lag = np.maximum(SLOPE_WINDOW_MIN, np.minimum(slope_window, rows)) - 1
    back = rows - lag
    earlier = np.where(back >= 0, ema_slow[np.clip(back, 0, None)], np.nan)
    with np.errstate(all="ignore"):
        return (ema_slow - earlier) / close


def _stoch_rsi(close: pd.Series, p: IndicatorParams) -> tuple[np.ndarray, np.ndarray]:
    rsi = _series(_rsi(close, p.stoch_rsi_window))
    lowest = rsi.rolling(p.stoch_rsi_window).min()
    highest = rsi.rolling(p.stoch_rsi_window).max()
    raw = (rsi - lowest) / (highest - lowest)
    k = raw.rolling(p.stoch_rsi_smooth1).mean()
    d = k.rolling(p.stoch_rsi_smooth2).mean()
    return k.fillna(0.0).to_numpy(), d.fillna(0.0).to_numpy()


def compute_indicators(df: pd.DataFrame, params: IndicatorParams | None = None) -> pd.DataFrame:
    """Return a new frame: df's columns plus every INDICATOR_COLUMNS column, row for row.

    df needs Open, High, Low, Close, Volume (oldest -> newest); other columns (timestamp, ...)
    are carried over. Raises KeyError if a price column is missing.
    """
    p = params if params is not None else IndicatorParams()
    high, low, close_arr, volume_arr = (
        df[c].to_numpy(dtype=float) for c in ("High", "Low", "Close", "Volume")
    )
    close = _series(close_arr)
    volume = _series(volume_arr)
    cols: dict[str, np.ndarray] = {}

    cols["EMA_fast"] = _ema(close, p.ema_fast_window).to_numpy()
    ema_slow = _ema(close, p.ema_slow_window).to_numpy()
    cols["EMA_slow"] = ema_slow
    cols["EMA_macro"] = _ema(close, p.ema_macro_window).to_numpy()

    cols["ADX"], cols["ADX_pos"], cols["ADX_neg"] = _directional(
        high, low, _true_range(high, low, close_arr), p.adx_window
    )

    mavg = close.rolling(p.bb_window).mean().to_numpy()
    mstd = close.rolling(p.bb_window).std(ddof=0).to_numpy()
    bb_high = mavg + BB_WINDOW_DEV * mstd
    bb_low = mavg - BB_WINDOW_DEV * mstd
    with np.errstate(all="ignore"):
        bb_width = (bb_high - bb_low) / close_arr
    cols["bb_high"], cols["bb_low"], cols["bb_width"] = bb_high, bb_low, bb_width
    cols["avg_bb_width"] = _series(bb_width).rolling(p.bb_width_avg_window).mean().to_numpy()

    atr = _atr(_true_range(high, low, close_arr), p.atr_window)
    cols["ATR"] = atr
    cols["avg_atr"] = _series(atr).rolling(p.effective_avg_atr_window).mean().to_numpy()

    cols["RSI"] = _rsi(close, p.rsi_window)

    macd = _ema(close, MACD_FAST_WINDOW) - _ema(close, MACD_SLOW_WINDOW)
    cols["MACD_hist"] = (macd - _ema(macd, MACD_SIGNAL_WINDOW)).to_numpy()

    vol_sma = volume.rolling(p.vol_sma_window).mean()
    cols["vol_sma"] = vol_sma.to_numpy()
    cols["vol_trend"] = (volume.rolling(p.vol_trend_window).mean() > vol_sma).to_numpy(dtype=float)

    cols["stoch_k"], cols["stoch_d"] = _stoch_rsi(close, p)
    cols["ema_slow_slope_pct"] = _slope_pct(ema_slow, close_arr, p.slow_drift_slope_window)

    out = df.copy()
    for name in PRICE_COLUMNS:
        out[name] = df[name].to_numpy(dtype=float)
    for name in INDICATOR_COLUMNS:
        out[name] = np.asarray(cols[name], dtype=float)
    return out
