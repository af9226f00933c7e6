"""The `ta` 0.11 oracle for the indicator parity tests, and the comparison rule they share.

`ta_indicators` restates the reference strategy's indicator calls (strategy spec Part 1.2) with
`ta` itself; `ema_slow_slope_pct` is computed literally as the reference does on the frame that
ends at each row. `max_rel_errors` is the one definition of "relative error" the parity tests use.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import ta

from strategies.indicator_params import INDICATOR_COLUMNS, IndicatorParams

REL_TOL = 1e-9
# Relative error is |a - b| / max(|b|, SCALE_FLOOR * max|column|): a plain |b| denominator would
# turn last-bit noise on a value that crosses zero (MACD_hist, slope, ADX seeds near 0) into an
# arbitrarily large "relative" error, so the denominator is floored at 1e-12 of the column's own
# magnitude. Exactly equal values (including equal infinities) count as 0 error.
SCALE_FLOOR = 1e-12


def load_ohlcv(path: Path) -> pd.DataFrame:
    """Read a `t,o,h,l,c,v` CSV into the engine's frame layout (timestamp + Open..Volume)."""
    raw = pd.read_csv(path)
    return raw.rename(
        columns={"t": "timestamp", "o": "Open", "h": "High", "l": "Low", "c": "Close", "v": "Volume"}
    )


def ta_supports(n_rows: int, p: IndicatorParams) -> bool:
    """True if ta 0.11 can run on this many rows (its ADX raises below 2n rows, ATR below n)."""
    return n_rows >= 2 * p.adx_window and n_rows >= p.atr_window


def reference_slope(ema_slow: np.ndarray, close: np.ndarray, slope_window: int) -> np.ndarray:
    """The reference's ema_slow_slope_pct evaluated on every prefix frame, literally."""
    out = np.full(len(close), np.nan)
    for i in range(len(close)):
        frame_len = i + 1
        w = max(3, min(slope_window, frame_len - 1))
        if w <= frame_len:
            with np.errstate(all="ignore"):
                out[i] = (ema_slow[i] - ema_slow[frame_len - w]) / close[i]
    return out


def ta_indicators(df: pd.DataFrame, p: IndicatorParams) -> pd.DataFrame:
    """Every INDICATOR_COLUMNS column computed with ta 0.11 (fillna=False), as the reference does."""
    c, h, lo, v = df["Close"], df["High"], df["Low"], df["Volume"]
    o: dict[str, pd.Series] = {}
    o["EMA_fast"] = ta.trend.ema_indicator(c, p.ema_fast_window)
    o["EMA_slow"] = ta.trend.ema_indicator(c, p.ema_slow_window)
    o["EMA_macro"] = ta.trend.ema_indicator(c, p.ema_macro_window)
    adx = ta.trend.ADXIndicator(h, lo, c, p.adx_window)
    o["ADX"], o["ADX_pos"], o["ADX_neg"] = adx.adx(), adx.adx_pos(), adx.adx_neg()
    bb = ta.volatility.BollingerBands(c, p.bb_window)
    o["bb_high"], o["bb_low"] = bb.bollinger_hband(), bb.bollinger_lband()
    o["bb_width"] = (o["bb_high"] - o["bb_low"]) / c
    o["avg_bb_width"] = o["bb_width"].rolling(p.bb_width_avg_window).mean()
    o["ATR"] = ta.volatility.average_true_range(h, lo, c, p.atr_window)
    o["avg_atr"] = o["ATR"].rolling(p.effective_avg_atr_window).mean()
    o["RSI"] = ta.momentum.rsi(c, p.rsi_window)
    o["MACD_hist"] = ta.trend.MACD(c).macd_diff()
    o["vol_sma"] = v.rolling(p.vol_sma_window).mean()
    o["vol_trend"] = (v.rolling(p.vol_trend_window).mean() > o["vol_sma"]).astype(float)
    stoch = ta.momentum.StochRSIIndicator(c, p.stoch_rsi_window, p.stoch_rsi_smooth1, p.stoch_rsi_smooth2)
    o["stoch_k"] = stoch.stochrsi_k().fillna(0.0)
    o["stoch_d"] = stoch.stochrsi_d().fillna(0.0)
    o["ema_slow_slope_pct"] = pd.Series(
        reference_slope(o["EMA_slow"].to_numpy(), c.to_numpy(dtype=float), p.slow_drift_slope_window),
        index=df.index,
    )
    return pd.DataFrame({name: o[name].to_numpy(dtype=float) for name in INDICATOR_COLUMNS})


def max_rel_errors(actual: pd.DataFrame, expected: pd.DataFrame) -> dict[str, float]:
    """Return the max relative error per indicator column; raise AssertionError on NaN mismatch."""
    out: dict[str, float] = {}
    for name in INDICATOR_COLUMNS:
        a = np.asarray(actual[name], dtype=float)
        b = np.asarray(expected[name], dtype=float)
        assert a.shape == b.shape, f"{name}: {a.shape} rows vs {b.shape}"
        nan_a, nan_b = np.isnan(a), np.isnan(b)
        if not np.array_equal(nan_a, nan_b):
            row = int(np.flatnonzero(nan_a != nan_b)[0])
            raise AssertionError(f"{name}: NaN position differs first at row {row}: {a[row]!r} vs {b[row]!r}")
        a, b = a[~nan_b], b[~nan_b]
        if a.size == 0:
            out[name] = 0.0
            continue
        finite = np.isfinite(b)
        scale = float(np.max(np.abs(b[finite]))) if finite.any() else 0.0
        with np.errstate(all="ignore"):
            denom = np.maximum(np.abs(b), SCALE_FLOOR * scale)
            rel = np.where(a == b, 0.0, np.abs(a - b) / denom)
        rel = np.where(np.isnan(rel), np.inf, rel)  # unequal with a zero denominator or inf vs finite
        out[name] = float(rel.max())
    return out


def assert_within(errors: dict[str, float], label: str, tol: float = REL_TOL) -> None:
    bad = {k: v for k, v in errors.items() if not v <= tol}
    assert not bad, f"{label}: relative error above {tol}: {bad}"


def test_max_rel_errors_floors_denominator_at_column_scale() -> None:
    expected = pd.DataFrame({n: [1e-20, 1.0, math.nan] for n in INDICATOR_COLUMNS})
    actual = expected.copy()
    actual.loc[0, "MACD_hist"] = 2e-20  # 1e-20 off a value 1e-20 of the column's scale
    actual.loc[1, "RSI"] = 1.0 + 1e-6
    errors = max_rel_errors(actual, expected)
    assert errors["MACD_hist"] == pytest.approx(1e-20 / 1e-12)
    assert errors["RSI"] == pytest.approx(1e-6)
    assert errors["EMA_fast"] == 0.0


def test_max_rel_errors_rejects_nan_position_mismatch() -> None:
    expected = pd.DataFrame({n: [1.0, math.nan] for n in INDICATOR_COLUMNS})
    actual = expected.copy()
    actual.loc[1, "ATR"] = 0.0  # a zero where the oracle has NaN is a real difference
    with pytest.raises(AssertionError, match="ATR: NaN position"):
        max_rel_errors(actual, expected)
