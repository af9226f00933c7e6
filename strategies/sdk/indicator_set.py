"""A strategy's declared indicators as one unit: validated once, run batch or one candle at a time.

`IndicatorSet(specs)` checks a declaration list (unique column names, every input a price column
or an output declared earlier, no clash with Open..Volume/timestamp) and offers both twins:

* `batch(candles)` -> a new frame with every declared column (the oracle: replay, parity checks);
* `incremental(keep_rows)` -> an `IndicatorState` whose `update(t, o, h, l, c, v)` returns the
  same row, bit for bit, and keeps the last `keep_rows` rows for the strategy's decision.

Declaration order is evaluation order, so a declaration may read an earlier one's output (for
example `Sma(name="avg_atr", source="atr", window=50)`). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from strategies.sdk.errors import IndicatorDeclarationError
from strategies.sdk.library import PRICE_COLUMNS, Indicator, Kernel

RESERVED_COLUMNS: tuple[str, ...] = ("timestamp", *PRICE_COLUMNS)


class IndicatorSet:
    """An ordered, validated tuple of indicator declarations (see the module docstring)."""

    __slots__ = ("_columns", "_specs")

    def __init__(self, specs: Sequence[Indicator]) -> None:
        """Validate `specs`; raise IndicatorDeclarationError naming the first bad declaration."""
        seen: set[str] = set(RESERVED_COLUMNS)
        columns: list[str] = []
        for spec in specs:
            if not isinstance(spec, Indicator):
                raise IndicatorDeclarationError(f"not a library indicator: {spec!r}")
            for col in spec.inputs:
                if col not in seen:
                    raise IndicatorDeclarationError(
                        f"{spec!r} reads {col!r}, which is neither a price column nor declared before it")
            for col in spec.outputs:
                if col in seen:
                    raise IndicatorDeclarationError(f"{spec!r} writes {col!r}, which already exists")
                seen.add(col)
                columns.append(col)
        self._specs: tuple[Indicator, ...] = tuple(specs)
        self._columns: tuple[str, ...] = tuple(columns)

    @property
    def specs(self) -> tuple[Indicator, ...]:
        """The declarations, in evaluation order (hashable: a shard groups rows by them)."""
        return self._specs

    @property
    def columns(self) -> tuple[str, ...]:
        """Every declared output column, in evaluation order."""
        return self._columns

    def batch(self, candles: pd.DataFrame) -> pd.DataFrame:
        """Return a copy of `candles` (Open..Volume, oldest first) with every declared column added.

        Raises KeyError naming a missing price column.
        """
        missing = [c for c in PRICE_COLUMNS if c not in candles.columns]
        if missing:
            raise KeyError(f"candle frame lacks {missing}; has {list(candles.columns)}")
        cols: dict[str, np.ndarray] = {c: candles[c].to_numpy(dtype=float) for c in PRICE_COLUMNS}
        for spec in self._specs:
            for name, values in zip(spec.outputs, spec.batch(cols), strict=True):
                cols[name] = np.asarray(values, dtype=float)
        out = candles.reset_index(drop=True).copy()
        for name in (*PRICE_COLUMNS, *self._columns):
            out[name] = cols[name]
        return out

    def incremental(self, keep_rows: int) -> IndicatorState:
        """Return a fresh incremental state keeping the last `keep_rows` (>= 1) rows."""
        return IndicatorState(self, keep_rows)


class IndicatorState:
    """One (symbol, variant) row's indicator state, advanced one closed candle at a time."""

    __slots__ = ("_bars", "_last_t", "_rows", "_steps")

    def __init__(self, indicator_set: IndicatorSet, keep_rows: int) -> None:
        if isinstance(keep_rows, bool) or not isinstance(keep_rows, int) or keep_rows < 1:
            raise ValueError(f"keep_rows must be an int >= 1, got {keep_rows!r}")
        self._steps: tuple[tuple[Kernel, tuple[str, ...]], ...] = tuple(
            (spec.kernel(), spec.outputs) for spec in indicator_set.specs
        )
        self._rows: deque[dict[str, Any]] = deque(maxlen=keep_rows)
        self._bars = 0
        self._last_t: int | None = None

    @property
    def bars(self) -> int:
        """Candles applied since the start of the history."""
        return self._bars

    @property
    def last_t(self) -> int | None:
        """Open time (epoch ms) of the last applied candle; None before the first."""
        return self._last_t

    def rows(self) -> tuple[dict[str, Any], ...]:
        """The kept rows, oldest first, NOT copied: read-only use (what `Strategy.decide` gets)."""
        return tuple(self._rows)

    def update(self, t_open_ms: int, o: float, h: float, l: float, c: float, v: float) -> dict[str, Any]:  # noqa: E741
        """Apply one closed candle (prices in quote units, volume in coins); return its row.

        Raises ValueError when t_open_ms is not after the last candle's (a candle applied twice or
        out of order would corrupt every window) or a price/volume is not finite.
        """
        if self._last_t is not None and t_open_ms <= self._last_t:
            raise ValueError(f"candle t={t_open_ms} is not after the last applied candle t={self._last_t}")
        row: dict[str, Any] = {"timestamp": int(t_open_ms), "Open": float(o), "High": float(h),
                               "Low": float(l), "Close": float(c), "Volume": float(v)}
        for name in PRICE_COLUMNS:
            if not math.isfinite(row[name]):
                raise ValueError(f"candle t={t_open_ms}: {name} is not finite ({row[name]!r})")
        for kernel, outputs in self._steps:
            row.update(zip(outputs, kernel.push(row), strict=True))
        self._rows.append(row)
        self._bars += 1
        self._last_t = int(t_open_ms)
        return row
