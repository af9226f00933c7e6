"""A synthetic symbol universe built from the simulator's shipped real candles (tests, bench/tick.py).

The seven 5m BTC-quoted files share one time window, so they replay together. More symbols are
synthesised by taking each file from a different starting row (so series differ in shape) and
rescaling prices (prices x factor, volume / factor), all re-stamped on one common 5m timeline.
The anchor "BTC" is synthesised the same way. Deterministic; pure apart from reading the CSVs.
`python -m bench.universe [--symbols 5] [--bars 300]` prints a JSON summary of such a universe.
"""

from __future__ import annotations

import argparse
import csv
import json
from functools import cache

from simulator.cli import SHIPPED_DATA
from strategies.candle import Candle

DATA_DIR = SHIPPED_DATA  # simulator/data: the seven 5m BTC-quoted files, ~5760 bars each
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


def _summary(name: str, candles: list[Candle]) -> dict[str, object]:
    return {"symbol": name, "bars": len(candles), "first_t": candles[0].t, "last_t": candles[-1].t,
            "close_min": min(c.c for c in candles), "close_max": max(c.c for c in candles)}


def main(argv: list[str] | None = None) -> int:
    """Print the universe the benches build: per symbol its bars, time span and close range."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--symbols", type=int, default=5)
    parser.add_argument("--bars", type=int, default=300)
    args = parser.parse_args(argv)
    try:
        universe = {s: series(i, args.bars) for i, s in enumerate(symbol_names(args.symbols))}
        universe["BTC"] = series(0, args.bars, anchor=True)
    except ValueError as e:
        parser.error(str(e))
    print(json.dumps({"interval": INTERVAL, "data_dir": str(DATA_DIR), "bars": args.bars,
                      "symbols": [_summary(s, c) for s, c in universe.items()]}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
