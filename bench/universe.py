"""A synthetic symbol universe built from the real candles in data/ohlcv/ (tests and bench/tick.py).

The seven 5m BTC-quoted files share one time window, so they replay together. More symbols are
synthesised by taking each file from a different starting row (so series differ in shape) and
rescaling prices (prices x factor, volume / factor), all re-stamped on one common 5m timeline.
The anchor "BTC" is synthesised the same way. Deterministic; pure apart from reading the CSVs.
"""

from __future__ import annotations

import csv
from functools import cache
from pathlib import Path

from strategies.candle import Candle

DATA_DIR = Path("/work/shared/data/ohlcv")
FILES = ("ETH_BTC-5m", "LTC_BTC-5m", "ETC_BTC-5m", "XMR_BTC-5m", "DASH_BTC-5m", "ADA_BTC-5m", "XLM_BTC-5m")
INTERVAL = "5m"
INTERVAL_MS = 300_000
T0_MS = 1_700_000_000_000 - (1_700_000_000_000 % INTERVAL_MS)


@cache
def _rows(name: str) -> tuple[tuple[float, float, float, float, float], ...]:
    with open(DATA_DIR / f"{name}.csv", newline="") as fh:
        reader = csv.DictReader(fh)
        return tuple(
            (float(r["o"]), float(r["h"]), float(r["l"]), float(r["c"]), float(r["v"])) for r in reader
        )


def symbol_names(n: int) -> list[str]:
    """Return n synthetic symbol names (S0000, S0001, ...)."""
    return [f"S{i:04d}" for i in range(n)]


def series(symbol_index: int, bars: int, *, anchor: bool = False) -> list[Candle]:
    """Return `bars` candles for synthetic symbol `symbol_index` on the common timeline.

    Raises ValueError if more bars are asked than one source file holds after the offset.
    """
    name = FILES[(symbol_index + (3 if anchor else 0)) % len(FILES)]
    rows = _rows(name)
    offset = (symbol_index * 37 + (11 if anchor else 0)) % 400
    if offset + bars > len(rows):
        raise ValueError(f"{bars} bars from offset {offset} exceed {name}'s {len(rows)} rows")
    scale = 1000.0 * (1.0 + (symbol_index % 97) / 50.0) if not anchor else 400_000.0
    out = []
    for k, (o, h, low, c, v) in enumerate(rows[offset: offset + bars]):
        t = T0_MS + k * INTERVAL_MS
        out.append(Candle(t, t + INTERVAL_MS - 1, o * scale, h * scale, low * scale, c * scale, v / scale, 1))
    return out
