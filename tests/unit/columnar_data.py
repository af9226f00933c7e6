"""The vendored real candles (tests/data/ohlcv) as ROWS of a columnar set, for the columnar parity tests.

Every file is one row. Rows start at different bars (row k joins `k * STAGGER` steps late), so
each step updates a different subset of the rows, as a shard's tick does when symbols join,
fall behind or catch up.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from strategies.sdk.indicator_base import PRICE_COLUMNS
from tests.fixtures.data_files import ohlcv_files
from tests.unit.sdk_data import load_candles

STAGGER = 37


@dataclass(frozen=True)
class Rows:
    """Per file: its frame's columns; per step: which rows move and the candle each one gets."""

    names: list[str]
    cols: list[dict[str, np.ndarray]]  # per row: timestamp and Open..Volume
    starts: list[int]

    @property
    def steps(self) -> int:
        return max(s + len(c["Close"]) for s, c in zip(self.starts, self.cols, strict=True))

    def step(self, j: int) -> tuple[np.ndarray, np.ndarray, list[np.ndarray]]:
        """(rows moving at step j, their bar numbers, [t, o, h, l, c, v] arrays for those rows)."""
        idx = [r for r, (s, c) in enumerate(zip(self.starts, self.cols, strict=True))
               if s <= j < s + len(c["Close"])]
        bars = np.array([j - self.starts[r] for r in idx], dtype=np.int64)
        arrays = [np.array([self.cols[r][name][b] for r, b in zip(idx, bars, strict=True)])
                  for name in ("timestamp", *PRICE_COLUMNS)]
        return np.array(idx, dtype=np.int64), bars, arrays

    def walk(self) -> Iterator[tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
        for j in range(self.steps):
            yield self.step(j)


def vendored_rows() -> Rows:
    paths = ohlcv_files()
    frames = [load_candles(p) for p in paths]
    names = ("timestamp", *PRICE_COLUMNS)
    cols = [{c: f[c].to_numpy(dtype=np.int64 if c == "timestamp" else float) for c in names} for f in frames]
    return Rows([p.stem for p in paths], cols, [k * STAGGER for k in range(len(paths))])
