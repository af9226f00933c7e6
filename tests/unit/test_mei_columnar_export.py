"""Bulk checkpoints of mei_alpha_v1 column rows equal the per-row checkpoint, bit for bit.

Over the real candles of tests/data/ohlcv (rows joining at staggered steps, so at any step some
rows are still warming up): `export_states` must give exactly `IncrementalIndicators.to_state()`
of a per-row twin fed the same candles, and the packed layout (`pack_states`) must be what
serves the rows past their warm-up (else the speed-up silently is not there). A column set whose
per-row export disagrees with the packed layout is served per row (the self-check).
"""

from __future__ import annotations

import base64
from typing import Any

import numpy as np
import pytest

from cluster.shard_store import decode_checkpoint, encode_checkpoint
from strategies.incremental import IncrementalIndicators
from strategies.indicator_params import IndicatorParams
from strategies.mei_columnar import MeiColumns
from strategies.mei_columnar_export import _base64_rows, export_states, pack_states, packable
from tests.unit.columnar_data import vendored_rows

CUSTOM = IndicatorParams(ema_fast_window=9, ema_slow_window=21, ema_macro_window=55, adx_window=10,
                         bb_window=15, bb_width_avg_window=12, atr_window=7, avg_atr_window=2, rsi_window=9,
                         vol_sma_window=12, vol_trend_window=3, stoch_rsi_window=10, stoch_rsi_smooth1=2,
                         stoch_rsi_smooth2=4, slow_drift_slope_window=1)
SAME_RSI = IndicatorParams(rsi_window=14, stoch_rsi_window=14, bb_window=1, vol_trend_window=1)


@pytest.mark.parametrize("params", [IndicatorParams(), CUSTOM, SAME_RSI],
                         ids=["default", "custom", "same_rsi"])
def test_bulk_export_equals_the_per_row_checkpoint_on_every_sampled_bar(params: IndicatorParams) -> None:
    rows = vendored_rows()
    cols = MeiColumns(params, capacity=1)
    slots = [cols.alloc() for _ in rows.names]
    refs = [IncrementalIndicators(params) for _ in rows.names]
    packed = warming = 0
    for j, (idx, _bars, arrays) in enumerate(rows.walk()):
        cols.update(np.array([slots[k] for k in idx]), *arrays)
        for n, k in enumerate(idx):
            refs[k].advance(int(arrays[0][n]), *(float(a[n]) for a in arrays[1:]))
        if j < 60 or j % 97 == 0:
            live = [k for k in range(len(slots)) if refs[k].bars]
            got = export_states(cols, [slots[k] for k in live])
            for k, state in zip(live, got, strict=True):
                want = refs[k].to_state()
                assert state == want, (j, rows.names[k])
                assert (decode_checkpoint(encode_checkpoint({"ind": state})) or {})["ind"] == want  # stored
            mask = packable(cols, np.array([slots[k] for k in live]))
            packed += int(mask.sum())
            warming += int((~mask).sum())
    assert packed > 100 and warming > 20  # both ways were exercised


def test_packed_rows_restore_into_a_per_row_state_that_continues_identically() -> None:
    rows = vendored_rows()
    cols = MeiColumns(IndicatorParams(), capacity=1)
    slots = [cols.alloc() for _ in rows.names]
    steps = list(rows.walk())
    for idx, _bars, arrays in steps[:400]:
        cols.update(np.array([slots[k] for k in idx]), *arrays)
    ready = [r for r in slots if packable(cols, np.array([r]))[0]]
    assert ready
    restored = {r: IncrementalIndicators.from_state(decode_checkpoint(encode_checkpoint(state)) or {})
                for r, state in zip(ready, pack_states(cols, np.array(ready)), strict=True)}
    for idx, _bars, arrays in steps[400:460]:
        cols.update(np.array([slots[k] for k in idx]), *arrays)
        for n, k in enumerate(idx):
            if slots[k] in restored:
                restored[slots[k]].advance(int(arrays[0][n]), *(float(a[n]) for a in arrays[1:]))
    for r, ind in restored.items():
        assert cols.export(r).to_state() == ind.to_state()


def test_pack_states_refuses_a_row_in_its_warm_up() -> None:
    cols = MeiColumns(IndicatorParams(), capacity=1)
    r = cols.alloc()
    cols.update(np.array([r]), np.array([1]), *(np.array([1.0]) for _ in range(5)))
    with pytest.raises(ValueError, match="warm-up"):
        pack_states(cols, np.array([r]))
    assert export_states(cols, [r]) == [cols.export(r).to_state()]


class _OtherExport(MeiColumns):
    """Columns whose per-row export no longer matches the packed layout (a format drift)."""

    def export(self, r: int) -> IncrementalIndicators:
        ind = super().export(r)
        ind._bb_mean.same += 1  # any field the packed layout also writes
        return ind


def test_a_layout_drift_is_caught_and_served_per_row() -> None:
    rows = vendored_rows()
    cols = _OtherExport(IndicatorParams(), capacity=1)
    slots = [cols.alloc() for _ in rows.names]
    for idx, _bars, arrays in list(rows.walk())[:300]:
        cols.update(np.array([slots[k] for k in idx]), *arrays)
    ready = [r for r in slots if packable(cols, np.array([r]))[0]]
    assert ready
    assert pack_states(cols, np.array(ready))[0] != cols.export(ready[0]).to_state()
    got: list[dict[str, Any]] = export_states(cols, ready)
    assert got == [cols.export(r).to_state() for r in ready]


@pytest.mark.parametrize("width", [1, 2, 3, 4, 451, 452])
def test_rows_encoded_in_one_call_equal_each_row_encoded_alone(width: int) -> None:
    rng = np.random.default_rng(width)
    rows = rng.standard_normal((5, width))
    rows[0, 0], rows[-1, -1] = np.nan, -0.0
    assert _base64_rows(rows) == [base64.b64encode(row.tobytes()).decode("ascii") for row in rows]
