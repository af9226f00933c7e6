"""Property tests: on random candle series, incremental == batch (bit for bit) == ta 0.11 (<= 1e-9).

Series are built on an integer tick grid so ties are common: flat closes (RSI with zero average
loss -> 100, StochRSI with max == min -> NaN -> 0.0, zero Bollinger width, zero true range so
ADX's TR/DI guards fire), equal highs/lows (+DM == -DM), zero volume (vol_sma 0, vol_trend
False), and rare spikes (pandas' rolling-variance cancellation recompute).
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from strategies.incremental import ROW_KEYS, IncrementalIndicators
from strategies.indicator_params import INDICATOR_COLUMNS, IndicatorParams
from strategies.indicators import compute_indicators
from tests.unit.test_indicators_oracle import assert_within, max_rel_errors, ta_indicators, ta_supports

DEFAULT = IndicatorParams()
SMALL = IndicatorParams(  # short windows so a short series reaches every indicator's defined range
    ema_fast_window=3, ema_slow_window=5, ema_macro_window=8, adx_window=3, bb_window=4,
    bb_width_avg_window=2, atr_window=3, avg_atr_window=5, rsi_window=4, vol_sma_window=3,
    vol_trend_window=2, stoch_rsi_window=5, stoch_rsi_smooth1=2, stoch_rsi_smooth2=1,
    slow_drift_slope_window=4,
)
ONES = IndicatorParams(  # degenerate windows: pandas re-seeds every window of 1
    ema_fast_window=1, ema_slow_window=2, ema_macro_window=1, adx_window=1, bb_window=1,
    bb_width_avg_window=1, atr_window=1, avg_atr_window=5, rsi_window=1, vol_sma_window=1,
    vol_trend_window=1, stoch_rsi_window=1, stoch_rsi_smooth1=1, stoch_rsi_smooth2=1,
    slow_drift_slope_window=1,
)


@st.composite
def candle_frames(draw: st.DrawFn, max_len: int = 260) -> pd.DataFrame:
    """A valid OHLCV frame (low <= open, close <= high; prices > 0; volume >= 0)."""
    n = draw(st.integers(min_value=1, max_value=max_len))
    tick = draw(st.sampled_from([1e-8, 3e-5, 0.01, 1.0, 250.0]))
    p_flat = draw(st.sampled_from([0.0, 0.3, 0.8, 1.0]))
    p_zero_vol = draw(st.sampled_from([0.0, 0.2, 1.0]))
    p_spike = draw(st.sampled_from([0.0, 0.02]))
    rng = np.random.default_rng(draw(st.integers(min_value=0, max_value=2**32 - 1)))
    close = max(1, int(rng.integers(1, 5000)))
    rows = []
    for i in range(n):
        open_ = close
        if rng.random() >= p_flat:
            close = max(1, close + int(rng.normal(0, 1 + close * 0.01)))
        if rng.random() < p_spike:
            close = close * 1000
        flat_bar = open_ == close and rng.random() < 0.5
        high = max(open_, close) + (0 if flat_bar else int(rng.integers(0, 4)))
        low = max(1, min(open_, close) - (0 if flat_bar else int(rng.integers(0, 4))))
        vol = 0.0 if rng.random() < p_zero_vol else float(rng.integers(0, 50)) * 0.5
        t = 1_700_000_000_000 + 60_000 * i
        rows.append((t, open_ * tick, high * tick, low * tick, close * tick, vol))
    return pd.DataFrame(rows, columns=["timestamp", "Open", "High", "Low", "Close", "Volume"])


def incremental_frame(df: pd.DataFrame, params: IndicatorParams) -> pd.DataFrame:
    inc = IncrementalIndicators(params)
    rows = [inc.update(int(r[0]), *r[1:]) for r in df.itertuples(index=False)]
    return pd.DataFrame(rows, columns=list(ROW_KEYS))


def assert_bit_identical(inc: pd.DataFrame, batch: pd.DataFrame) -> None:
    for name in INDICATOR_COLUMNS:
        a, b = inc[name].to_numpy(dtype=float), batch[name].to_numpy(dtype=float)
        if not np.array_equal(a, b, equal_nan=True):
            row = int(np.flatnonzero(~((a == b) | (np.isnan(a) & np.isnan(b))))[0])
            raise AssertionError(f"{name} row {row}: incremental {a[row]!r} != batch {b[row]!r}")


@settings(max_examples=60, deadline=None)
@given(candle_frames(), st.sampled_from([DEFAULT, SMALL, ONES]))
def test_random_series_incremental_equals_batch_equals_ta(df: pd.DataFrame, params: IndicatorParams) -> None:
    batch = compute_indicators(df, params)
    assert_bit_identical(incremental_frame(df, params), batch)
    if ta_supports(len(df), params):
        assert_within(max_rel_errors(batch, ta_indicators(df, params)), "batch vs ta")


def test_flat_series_matches_ta_division_by_zero_behaviour() -> None:
    n = 60
    df = pd.DataFrame({
        "timestamp": [60_000 * i for i in range(n)],
        "Open": [2.5] * n, "High": [2.5] * n, "Low": [2.5] * n, "Close": [2.5] * n, "Volume": [0.0] * n,
    })
    batch = compute_indicators(df, SMALL)
    assert_within(max_rel_errors(batch, ta_indicators(df, SMALL)), "flat batch vs ta")
    assert_bit_identical(incremental_frame(df, SMALL), batch)
    defined = slice(SMALL.rsi_window - 1, None)
    assert (batch["RSI"].iloc[defined] == 100.0).all()  # average loss 0 -> 100
    assert (batch["stoch_k"] == 0.0).all() and (batch["stoch_d"] == 0.0).all()  # max == min -> NaN -> 0
    assert (batch["bb_width"].iloc[SMALL.bb_window - 1 :] == 0.0).all()
    assert (batch[["ADX", "ADX_pos", "ADX_neg", "ATR"]] == 0.0).all().all()  # zero TR guards
    assert (batch["vol_trend"] == 0.0).all()
    assert (batch["vol_sma"].iloc[SMALL.vol_sma_window - 1 :] == 0.0).all()
    assert (batch["ema_slow_slope_pct"].iloc[SMALL.ema_slow_window + 2 :] == 0.0).all()


def test_slope_uses_reference_window_clamp_per_row() -> None:
    closes = [float(x) for x in range(1, 41)]
    df = pd.DataFrame({"Open": closes, "High": closes, "Low": closes, "Close": closes, "Volume": 1.0})
    p = IndicatorParams(ema_slow_window=2, slow_drift_slope_window=20)
    batch = compute_indicators(df, p)
    ema = batch["EMA_slow"].to_numpy()
    for i in (3, 10, 25, 39):  # W = max(3, min(20, i)) rows, inclusive of row i
        w = max(3, min(20, i))
        assert batch["ema_slow_slope_pct"].iloc[i] == (ema[i] - ema[i - w + 1]) / closes[i]
    assert math.isnan(batch["ema_slow_slope_pct"].iloc[0])


def test_empty_frame_gives_empty_indicator_columns() -> None:
    df = pd.DataFrame({c: pd.Series(dtype=float) for c in ("Open", "High", "Low", "Close", "Volume")})
    out = compute_indicators(df)
    assert len(out) == 0 and set(INDICATOR_COLUMNS) <= set(out.columns)


@settings(max_examples=10, deadline=None)
@given(candle_frames(max_len=120))
def test_batch_ignores_the_index_and_does_not_mutate_input(df: pd.DataFrame) -> None:
    shifted = df.set_index(pd.date_range("2024-01-01", periods=len(df), freq="min"))
    before = shifted.copy()
    out = compute_indicators(shifted, SMALL)
    pd.testing.assert_frame_equal(shifted, before)
    assert out.index.equals(shifted.index)
    plain = compute_indicators(df, SMALL)
    for name in INDICATOR_COLUMNS:
        assert np.array_equal(out[name].to_numpy(), plain[name].to_numpy(), equal_nan=True), name
