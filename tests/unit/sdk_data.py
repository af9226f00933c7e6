"""Shared helpers of the Strategy SDK tests: the shipped real candles and a bit-exact comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DATA_DIR = Path(__file__).resolve().parents[2] / "simulator" / "data"
CANDLE_FILES = sorted(DATA_DIR.glob("*.csv"))
_NAMES = {"t": "timestamp", "o": "Open", "h": "High", "l": "Low", "c": "Close", "v": "Volume"}


def load_candles(path: Path) -> pd.DataFrame:
    """Read a shipped t,o,h,l,c,v CSV as a frame with the strategy's column names."""
    return pd.read_csv(path).rename(columns=_NAMES)


def candle_tuples(df: pd.DataFrame) -> list[tuple[int, float, float, float, float, float]]:
    """The frame's candles as (t, o, h, l, c, v) tuples of plain Python numbers."""
    cols = [df[c].tolist() for c in ("timestamp", "Open", "High", "Low", "Close", "Volume")]
    return [(int(t), o, h, lo, c, v) for t, o, h, lo, c, v in zip(*cols, strict=True)]


def bit_mismatches(a: np.ndarray, b: np.ndarray) -> list[int]:
    """Row indices where a and b differ in NaN-ness or in any bit of a non-NaN value (-0.0 != 0.0)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    assert a.shape == b.shape, (a.shape, b.shape)
    a_nan, b_nan = np.isnan(a), np.isnan(b)
    differ = (a_nan != b_nan) | (~a_nan & ~b_nan & (a.view(np.uint64) != b.view(np.uint64)))
    return np.flatnonzero(differ).tolist()
