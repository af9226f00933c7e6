"""mei_alpha_v1's indicator frame declared through the SDK library equals the legacy frame, bit for bit.

This is what lets the mei_alpha_v1 adapter switch to declarations without changing a decision:
batch (`IndicatorSet.batch`) equals `compute_indicators`, and the incremental state equals
`IncrementalIndicators`, on every bar of the shipped real candles, for default and non-default
windows (including the avg_atr clamp).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from strategies.incremental import IncrementalIndicators
from strategies.indicator_params import INDICATOR_COLUMNS, IndicatorParams
from strategies.indicators import compute_indicators
from strategies.sdk.builtin.mei_indicators import MEI_ROW_COLUMNS, mei_alpha_v1_indicators
from strategies.sdk.indicator_set import IndicatorSet
from tests.unit.sdk_data import CANDLE_FILES, bit_mismatches, candle_tuples, load_candles

PARAMS = [
    IndicatorParams(),
    IndicatorParams(ema_fast_window=9, ema_slow_window=21, ema_macro_window=55, adx_window=10, bb_window=15,
                    bb_width_avg_window=12, atr_window=7, avg_atr_window=2, rsi_window=9, vol_sma_window=12,
                    vol_trend_window=3, stoch_rsi_window=10, stoch_rsi_smooth1=2, stoch_rsi_smooth2=4,
                    slow_drift_slope_window=1),
]


@pytest.fixture(scope="module", params=CANDLE_FILES, ids=[p.stem for p in CANDLE_FILES])
def candles(request: pytest.FixtureRequest) -> pd.DataFrame:
    return load_candles(request.param)


@pytest.mark.parametrize("params", PARAMS, ids=["default", "custom"])
def test_mei_declarations_batch_equals_compute_indicators(
    params: IndicatorParams, candles: pd.DataFrame
) -> None:
    legacy = compute_indicators(candles, params)
    declared = IndicatorSet(mei_alpha_v1_indicators(params)).batch(candles)
    for col in INDICATOR_COLUMNS:
        bad = bit_mismatches(legacy[col].to_numpy(dtype=float), declared[col].to_numpy(dtype=float))
        assert not bad, f"{col}: {len(bad)} bars differ, first at {bad[0]}"


@pytest.mark.parametrize("params", PARAMS, ids=["default", "custom"])
def test_mei_declarations_incremental_equals_incremental_indicators(
    params: IndicatorParams, candles: pd.DataFrame
) -> None:
    legacy = IncrementalIndicators(params)
    state = IndicatorSet(mei_alpha_v1_indicators(params)).incremental(keep_rows=4)
    old_rows, new_rows = [], []
    for candle in candle_tuples(candles):
        old_rows.append(legacy.update(*candle))
        row = state.update(*candle)
        new_rows.append({k: row[k] for k in MEI_ROW_COLUMNS})
    for col in MEI_ROW_COLUMNS[1:]:
        old = np.array([r[col] for r in old_rows], dtype=float)
        new = np.array([r[col] for r in new_rows], dtype=float)
        bad = bit_mismatches(old, new)
        assert not bad, f"{col}: {len(bad)} bars differ, first at {bad[0]}"
    assert [r["timestamp"] for r in old_rows] == [r["timestamp"] for r in new_rows]
