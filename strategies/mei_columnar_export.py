"""Checkpoints of many `MeiColumns` rows at once: `[cols.export(r).to_state() for r in rows]`, bit for bit.

Why: a shard checkpoints about 1/16 of its symbols every tick, and the per-row way
(`MeiColumns.export` builds an `IncrementalIndicators`, ~20 kernel objects, then `to_state`
packs it again) cost ~370 us a row, ~20 us per symbol per tick. A row past its warm-up (every
ring full, no ATR/ADX seed left, 4 rows kept) always packs into the same layout: the same number
of ints and floats in the same places. `export_states` builds that layout for all such rows with
one gather per column (an int matrix and a float matrix, a row per checkpoint) and only formats
each row's dict; rows still warming up (or, defensively, any row when the first steady row of
the set does not come out identical to the per-row export) take the per-row way.

The layout mirrors `IncrementalIndicators.to_state` and the `dump` of each kernel in
`strategies.kernels`; tests compare it with the per-row export over real candles, and the first
call per column set re-checks one row itself, so a change to either side can only make this
slower, never different. Pure: no I/O.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from strategies.incremental import RECENT_ROWS_KEPT, STATE_VERSION, _params_dict

if TYPE_CHECKING:
    from strategies.mei_columnar import MeiColumns

log = logging.getLogger(__name__)

_CHECKED: dict[int, tuple[Any, bool]] = {}  # id(cols) -> (cols, fast layout verified on one row)


def export_states(cols: MeiColumns, rows: Sequence[int]) -> list[dict[str, Any]]:
    """The checkpoint (`IncrementalIndicators.to_state()`) of each row, in order (module docstring)."""
    idx = np.asarray(rows, dtype=np.int64)
    out: list[dict[str, Any] | None] = [None] * len(idx)
    steady = np.flatnonzero(packable(cols, idx))
    if len(steady) and _verified(cols, int(idx[steady[0]])):
        for j, state in zip(steady.tolist(), _pack(cols, idx[steady]), strict=True):
            out[j] = state
    return [state if state is not None else cols.export(int(r)).to_state() for r, state in zip(idx, out,
                                                                                                strict=True)]


def _verified(cols: MeiColumns, r: int) -> bool:
    """Once per column set: does the packed layout equal the per-row export on row r? (else never used)"""
    known = _CHECKED.get(id(cols))
    if known is not None and known[0] is cols:
        return known[1]
    if len(_CHECKED) > 256:
        _CHECKED.clear()
    same = pack_states(cols, np.array([r]))[0] == cols.export(r).to_state()
    if not same:
        log.error("mei_columnar_export: packed checkpoint differs from the per-row export; using the per-row "
                  "export for this column set")
    _CHECKED[id(cols)] = (cols, same)
    return same


def _rings(cols: MeiColumns) -> list[Any]:
    kernels = [cols.slope, cols.stoch_range, cols.stoch_k, cols.stoch_d, cols.bb_mean, cols.bb_var,
               cols.bb_width_avg, cols.atr_avg, cols.vol_sma, cols.vol_trend]
    return kernels


def _width(kernel: Any) -> int:
    return int(kernel.a["buf"].shape[1])


def packable(cols: MeiColumns, idx: np.ndarray) -> np.ndarray:
    """Mask of the rows `idx` whose export has the fixed layout: warm-up over, every ring full."""
    d = cols.directional
    bars = cols.bars[idx]
    ok = bars >= max(cols.keep, RECENT_ROWS_KEPT, d.n_atr, d.n + 1, 2 * d.n)
    for kernel in _rings(cols):
        ok &= kernel.a["cnt"][idx] == _width(kernel)
    return ok


def _ordered(kernel: Any, idx: np.ndarray) -> np.ndarray:
    """Full rings oldest first (`Ring.ordered`), n x width."""
    width = _width(kernel)
    at = (kernel.a["pos"][idx][:, None] + np.arange(width)) % width
    return kernel.a["buf"][idx[:, None], at]


def _ewm(kernel: Any, idx: np.ndarray, ints: list[Any], floats: list[np.ndarray]) -> None:
    a = kernel.a
    ints += [a["nobs"][idx], a["started"][idx]]
    floats += [a["weighted"][idx], a["old_wt"][idx]]


def _roll_mean(kernel: Any, idx: np.ndarray, ints: list[Any], floats: list[np.ndarray]) -> None:
    a = kernel.a
    ints += [_width(kernel), a["nobs"][idx], a["neg_ct"][idx], a["same"][idx]]
    floats += [_ordered(kernel, idx), a["sum_x"][idx], a["comp_add"][idx], a["comp_rem"][idx], a["prev"][idx]]


def _matrix(blocks: list[Any], n: int, dtype: Any) -> np.ndarray:
    """The blocks side by side (a scalar or 1-D block is one column), n rows of `dtype`."""
    width = sum(b.shape[1] if isinstance(b, np.ndarray) and b.ndim == 2 else 1 for b in blocks)
    out = np.empty((n, width), dtype=dtype)
    at = 0
    for block in blocks:
        if isinstance(block, np.ndarray) and block.ndim == 2:
            out[:, at: at + block.shape[1]] = block
            at += block.shape[1]
        else:
            out[:, at] = block
            at += 1
    return out


def pack_states(cols: MeiColumns, idx: np.ndarray) -> list[dict[str, Any]]:
    """The checkpoints of `packable` rows, packed from the columns; raises ValueError for another row."""
    if not packable(cols, idx).all():
        raise ValueError("pack_states: a row is still in its warm-up (export it per row)")
    return _pack(cols, idx)


def _pack(cols: MeiColumns, idx: np.ndarray) -> list[dict[str, Any]]:
    n = len(idx)
    ints: list[Any] = [_width(cols.slope), cols.keep, cols.kept_t[idx]]
    floats: list[np.ndarray] = [_ordered(cols.slope, idx),
                                cols.kept[idx].transpose(0, 2, 1).reshape(n, -1)]  # rows, oldest first
    for kernel in (cols.ema_fast, cols.ema_slow, cols.ema_macro, cols.macd_fast, cols.macd_slow,
                   cols.macd_signal):
        _ewm(kernel, idx, ints, floats)
    for rsi in (cols.rsi, cols.stoch_rsi):
        if rsi is not None:
            _ewm(rsi.up, idx, ints, floats)
            _ewm(rsi.down, idx, ints, floats)
            floats.append(rsi.a["prev_close"][idx])
    minmax = cols.stoch_range
    ints += [_width(minmax), minmax.a["nan_ct"][idx]]
    floats.append(_ordered(minmax, idx))
    _roll_mean(cols.stoch_k, idx, ints, floats)
    _roll_mean(cols.stoch_d, idx, ints, floats)
    _roll_mean(cols.bb_mean, idx, ints, floats)
    var = cols.bb_var.a
    ints += [_width(cols.bb_var), var["unstable"][idx], var["started"][idx]]
    floats += [_ordered(cols.bb_var, idx), *(var[k][idx] for k in ("nobs", "mean_x", "ssqdm", "comp_add",
                                                                    "comp_rem"))]
    for kernel in (cols.bb_width_avg, cols.atr_avg, cols.vol_sma, cols.vol_trend):
        _roll_mean(kernel, idx, ints, floats)
    d = cols.directional.a
    floats += [d[k][idx] for k in ("prev_high", "prev_low", "prev_close", "atr", "tr_sum", "dm_pos", "dm_neg",
                                   "adx")]
    ints.append(np.zeros((n, 5), dtype=np.int64))  # the five warm-up seeds, all empty
    int_rows = _matrix(ints, n, np.int64).tolist()
    float_rows = _matrix(floats, n, np.dtype("<f8"))
    params = _params_dict(cols.params)
    bars, last_t = cols.bars[idx].tolist(), cols.last_t[idx].tolist()
    texts = _base64_rows(float_rows)
    return [{"version": STATE_VERSION, "params": dict(params), "bars": b, "last_t": t, "i": i_row, "f": text}
            for b, t, i_row, text in zip(bars, last_t, int_rows, texts, strict=True)]


def _base64_rows(rows: np.ndarray) -> list[str]:
    """`[base64.b64encode(row.tobytes()).decode("ascii") for row in rows]` with ONE encode call.

    Each row is padded with zero bytes to a multiple of 3 bytes, so every row encodes to its own
    block of characters; in the last group the zero bytes encode as "A"s exactly where the per-row
    encoding writes "=" padding (the characters before them only see the row's own bits)."""
    n = len(rows)
    raw = np.ascontiguousarray(rows).view(np.uint8).reshape(n, -1)
    size = raw.shape[1]
    pad = -size % 3
    if pad:
        raw = np.concatenate([raw, np.zeros((n, pad), dtype=np.uint8)], axis=1)
    text = base64.b64encode(raw.tobytes()).decode("ascii")
    width = (size + pad) // 3 * 4
    if not pad:
        return [text[k: k + width] for k in range(0, n * width, width)]
    tail = "=" * pad
    return [text[k: k + width - pad] + tail for k in range(0, n * width, width)]
