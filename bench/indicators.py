"""Micro-benchmark: one incremental indicator update vs a pandas recompute over the lookback window.

Prints one JSON object. The baseline (`compute_indicators` over the last `--lookback` candles, the
reference engine's per-tick cost) is measured in the same run on the same candles, so the ratio is
meaningful on any machine. Also reports the per-symbol state size (checkpoint JSON and live
object). Medians over repeated runs (best also shown).
Usage: python -m bench.indicators [--file CSV] [--updates N] [--lookback 200] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any

import pandas as pd

from simulator.cli import SHIPPED_DATA
from strategies.incremental import IncrementalIndicators
from strategies.indicators import compute_indicators

DEFAULT_FILE = SHIPPED_DATA / "ETH_BTC-5m.csv"  # real candles shipped with the simulator (5760 bars)


def _deep_size(obj: Any, seen: set[int]) -> int:
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    size = sys.getsizeof(obj)
    if isinstance(obj, dict):
        size += sum(_deep_size(k, seen) + _deep_size(v, seen) for k, v in obj.items())
    elif isinstance(obj, list | tuple | deque | set):
        size += sum(_deep_size(x, seen) for x in obj)
    elif hasattr(obj, "__slots__"):
        size += sum(_deep_size(getattr(obj, s), seen) for s in obj.__slots__ if hasattr(obj, s))
    return size


def _load(path: Path) -> pd.DataFrame:
    raw = pd.read_csv(path)
    return raw.rename(
        columns={"t": "timestamp", "o": "Open", "h": "High", "l": "Low", "c": "Close", "v": "Volume"}
    )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--file", type=Path, default=DEFAULT_FILE)
    ap.add_argument("--updates", type=int, default=5000, help="timed incremental updates")
    ap.add_argument("--lookback", type=int, default=200, help="rows per baseline recompute")
    ap.add_argument("--baseline-runs", type=int, default=50)
    ap.add_argument("--repeats", type=int, default=5, help="timed replays of the same updates")
    args = ap.parse_args(argv)

    df = _load(args.file)
    cols = df[["timestamp", "Open", "High", "Low", "Close", "Volume"]]
    bars = [(int(r[0]), *r[1:]) for r in cols.itertuples(index=False)]
    warm = max(0, len(bars) - args.updates)
    inc = IncrementalIndicators()
    for bar in bars[:warm]:
        inc.update(*bar)
    checkpoint = inc.to_state()
    timed = bars[warm:]
    per_update_us = []
    for _ in range(args.repeats):  # replay the same candles from the same checkpoint
        inc = IncrementalIndicators.from_state(checkpoint)
        t0 = time.perf_counter()
        for bar in timed:
            inc.update(*bar)
        per_update_us.append((time.perf_counter() - t0) / len(timed) * 1e6)
    inc_us = statistics.median(per_update_us)

    baseline_us = []
    for k in range(args.baseline_runs):
        end = len(df) - k
        window = df.iloc[end - args.lookback : end]
        t0 = time.perf_counter()
        compute_indicators(window)
        baseline_us.append((time.perf_counter() - t0) * 1e6)
    base = statistics.median(baseline_us)

    reps = 200
    t0 = time.perf_counter()
    for _ in range(reps):
        state_json = json.dumps(inc.to_state(), allow_nan=False, separators=(",", ":"))
    save_us = (time.perf_counter() - t0) / reps * 1e6
    t0 = time.perf_counter()
    for _ in range(reps):
        IncrementalIndicators.from_state(json.loads(state_json))
    restore_us = (time.perf_counter() - t0) / reps * 1e6

    print(json.dumps({
        "file": args.file.name,
        "bars": len(bars),
        "incremental_update_us": round(inc_us, 2),
        "incremental_update_us_best": round(min(per_update_us), 2),
        "baseline_recompute_us": round(base, 1),
        "baseline_recompute_us_best": round(min(baseline_us), 1),
        "baseline_lookback_rows": args.lookback,
        "speedup": round(base / inc_us, 1),
        "state_json_bytes": len(state_json),
        "live_object_bytes": _deep_size(inc, set()),
        "checkpoint_save_us": round(save_us, 1),  # to_state + json.dumps
        "checkpoint_restore_us": round(restore_us, 1),  # json.loads + from_state
        "python": sys.version.split()[0],
    }))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
