"""An `IndicatorSet` for MANY rows: columnar state, one vectorised step per candle, exact.

`ColumnarSet(indicator_set, keep_rows)` holds, for every (symbol, variant) row a caller
allocates, the state of every declared indicator as numpy arrays (`strategies.sdk.columnar_library`)
plus the last `keep_rows` rows of every column. `update(idx, t, o, h, l, c, v)` applies one
closed candle to each row of `idx` (one value per row) in a few numpy operations per
declaration, bit-identical to `IndicatorState.update` row by row (and so to `IndicatorSet.batch`).
`window(idx)` lays the kept rows out as the `ColumnWindow` a strategy's array form reads;
`rows(r)` gives one row's kept rows as the dicts `decide` reads (the per-row fallback).

`export(r)` returns row r as an ordinary `IndicatorState` (its `to_state()` is the checkpoint,
unchanged format) and `load(r, state)` takes one in, so checkpoints and per-row states move in
and out of the columns exactly. `take(idx)` copies rows into a new set (a throw-away peek).

Raises `NotColumnar` at construction when a declaration has no columnar twin. Pure: no I/O.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from strategies.sdk.columnar_library import ColIndicator, NotColumnar, columnar, has_columnar
from strategies.sdk.indicator_base import PRICE_COLUMNS
from strategies.sdk.indicator_set import IndicatorSet, IndicatorState
from strategies.sdk.strategy import ColumnWindow

__all__ = ["ColumnarSet", "NotColumnar", "supports_columnar"]

NO_T = np.iinfo(np.int64).min


def supports_columnar(indicator_set: IndicatorSet) -> bool:
    """True when every declaration of the set has a columnar twin."""
    return all(has_columnar(spec) for spec in indicator_set.specs)


class ColumnarSet:
    """See the module docstring."""

    def __init__(self, indicator_set: IndicatorSet, keep_rows: int, capacity: int = 16) -> None:
        if isinstance(keep_rows, bool) or not isinstance(keep_rows, int) or keep_rows < 1:
            raise ValueError(f"keep_rows must be an int >= 1, got {keep_rows!r}")
        self.indicator_set = indicator_set
        self.keep = keep_rows
        self._cap = max(1, capacity)
        self._twins: list[ColIndicator] = [columnar(spec, self._cap) for spec in indicator_set.specs]
        self._outputs = [spec.outputs for spec in indicator_set.specs]
        self.names: tuple[str, ...] = (*PRICE_COLUMNS, *indicator_set.columns)
        self.bars = np.zeros(self._cap, dtype=np.int64)
        self.last_t = np.full(self._cap, NO_T, dtype=np.int64)
        self.kept: dict[str, np.ndarray] = {
            name: np.full((self._cap, keep_rows), np.nan) for name in self.names}
        self.kept_t = np.zeros((self._cap, keep_rows), dtype=np.int64)
        self._free: list[int] = list(range(self._cap - 1, -1, -1))
        self.used = 0
        self._scratch: IndicatorState | None = None  # state_of's reused export target

    # ------------------------------------------------------------------ rows
    def alloc(self) -> int:
        """Return a fresh row number (no candle applied)."""
        if not self._free:
            self._grow(2 * self._cap)
        r = self._free.pop()
        self.used += 1
        return r

    def release(self, r: int) -> None:
        """Give row r back (its state is reset; the number may be handed out again)."""
        rows = np.array([r])
        for twin in self._twins:
            twin.reset(rows)
        self.bars[r], self.last_t[r] = 0, NO_T
        for arr in self.kept.values():
            arr[r] = np.nan
        self.kept_t[r] = 0
        self._free.append(r)
        self.used -= 1

    def _grow(self, cap: int) -> None:
        for twin in self._twins:
            twin.grow(cap)
        extra = cap - self._cap
        self.bars = np.concatenate([self.bars, np.zeros(extra, dtype=np.int64)])
        self.last_t = np.concatenate([self.last_t, np.full(extra, NO_T, dtype=np.int64)])
        for name, arr in self.kept.items():
            self.kept[name] = np.concatenate([arr, np.full((extra, self.keep), np.nan)])
        self.kept_t = np.concatenate([self.kept_t, np.zeros((extra, self.keep), dtype=np.int64)])
        self._free.extend(range(cap - 1, self._cap - 1, -1))
        self._cap = cap

    # ------------------------------------------------------------------ the hot path
    def update(self, idx: np.ndarray, t: np.ndarray, o: np.ndarray, h: np.ndarray, low: np.ndarray,
               c: np.ndarray, v: np.ndarray) -> np.ndarray:
        """Apply one closed candle per row of `idx` (distinct rows); return the mask of rows applied.

        A row whose candle is not after its last one, or has a non-finite price/volume, is left
        untouched (False in the mask), as `IndicatorState.update` would refuse it.
        """
        idx = np.asarray(idx, dtype=np.int64)
        prices = [np.asarray(x, dtype=float) for x in (o, h, low, c, v)]
        t = np.asarray(t, dtype=np.int64)
        ok = t > self.last_t[idx]
        for x in prices:
            ok &= np.isfinite(x)
        if not ok.all():
            idx, t, prices = idx[ok], t[ok], [x[ok] for x in prices]
        cols: dict[str, np.ndarray] = dict(zip(PRICE_COLUMNS, prices, strict=True))
        for twin, outputs in zip(self._twins, self._outputs, strict=True):
            cols.update(zip(outputs, twin.push(idx, cols), strict=True))
        keep = self.keep
        for name, arr in self.kept.items():
            if keep == 1:
                arr[idx, 0] = cols[name]
            else:
                sub = arr[idx]
                sub[:, :-1] = sub[:, 1:]
                sub[:, -1] = cols[name]
                arr[idx] = sub
        sub_t = self.kept_t[idx]
        sub_t[:, :-1] = sub_t[:, 1:]
        sub_t[:, -1] = t
        self.kept_t[idx] = sub_t
        self.bars[idx] += 1
        self.last_t[idx] = t
        return ok

    def window(self, idx: np.ndarray) -> ColumnWindow:
        """The kept rows of `idx` as a ColumnWindow (n x keep_rows per column, NaN-padded in front)."""
        return ColumnWindow({name: arr[idx] for name, arr in self.kept.items()}, self.bars[idx])

    def rows(self, r: int) -> tuple[dict[str, Any], ...]:
        """Row r's kept rows as dicts, oldest first (what `IndicatorState.rows()` returns)."""
        n = int(min(self.bars[r], self.keep))
        out = []
        for j in range(self.keep - n, self.keep):
            row: dict[str, Any] = {"timestamp": int(self.kept_t[r, j])}
            row.update((name, float(arr[r, j])) for name, arr in self.kept.items())
            out.append(row)
        return tuple(out)

    # ------------------------------------------------------------------ per-row states in and out
    def export(self, r: int) -> IndicatorState:
        """Row r as a per-row IndicatorState (bit-exact: same kernels, rows, bars, last open time)."""
        state = self.indicator_set.incremental(self.keep)
        for twin, kernel in zip(self._twins, state.kernels(), strict=True):
            twin.export(r, kernel)
        last_t = None if self.bars[r] == 0 else int(self.last_t[r])
        state.adopt(self.rows(r), int(self.bars[r]), last_t)
        return state

    def state_of(self, r: int) -> dict[str, Any]:
        """`export(r).to_state()` (the checkpoint, bit for bit) without building row dicts or a
        fresh state: the kept rows are packed from the arrays, the kernels exported into one
        scratch state that every call overwrites (an export assigns every field a dump reads).
        SDK checkpoints were mostly those two costs (bench.scale: ~125 rows a call)."""
        scratch = self._scratch
        if scratch is None:
            scratch = self._scratch = self.indicator_set.incremental(self.keep)
        for twin, kernel in zip(self._twins, scratch.kernels(), strict=True):
            twin.export(r, kernel)
        bars = int(self.bars[r])
        n = min(bars, self.keep)
        start = self.keep - n
        ints = [n, *self.kept_t[r, start:].tolist()]
        floats = np.stack([self.kept[name][r, start:] for name in self.names], axis=1).ravel().tolist()
        return scratch.state_with_rows(ints, floats, bars, None if bars == 0 else int(self.last_t[r]))

    def load(self, r: int, state: IndicatorState) -> None:
        """Put a per-row state into row r; raises ValueError when it does not fit (row r reset then)."""
        try:
            for twin, kernel in zip(self._twins, state.kernels(), strict=True):
                twin.load(r, kernel)
            rows = state.rows()
            if len(rows) > self.keep:
                raise ValueError(f"state keeps {len(rows)} rows, this set {self.keep}")
            for arr in self.kept.values():
                arr[r] = np.nan
            self.kept_t[r] = 0
            for j, row in enumerate(rows, start=self.keep - len(rows)):
                self.kept_t[r, j] = row["timestamp"]
                for name, arr in self.kept.items():
                    arr[r, j] = row[name]
            self.bars[r] = state.bars
            self.last_t[r] = NO_T if state.last_t is None else state.last_t
        except (AttributeError, TypeError, KeyError, ValueError) as e:
            self.release(r)
            self._free.remove(r)
            self.used += 1
            raise ValueError(f"indicator state does not fit the columns: {e!r}") from e

    def take(self, idx: np.ndarray) -> ColumnarSet:
        """A new set holding copies of rows `idx` (row j there = row idx[j] here), full, nothing free."""
        idx = np.asarray(idx, dtype=np.int64)
        twin = object.__new__(ColumnarSet)
        twin.indicator_set, twin.keep, twin.names, twin._outputs = (
            self.indicator_set, self.keep, self.names, self._outputs)
        twin._cap, twin._free, twin.used, twin._scratch = len(idx), [], len(idx), None
        twin._twins = [t.take(idx) for t in self._twins]  # type: ignore[misc]
        twin.bars, twin.last_t = self.bars[idx].copy(), self.last_t[idx].copy()
        twin.kept_t = self.kept_t[idx].copy()
        twin.kept = {name: arr[idx].copy() for name, arr in self.kept.items()}
        return twin
