"""Batch vs incremental parity over candle CSV files: `python -m strategies.check_parity FILE.csv...`.

For each file (columns t,o,h,l,c,v, oldest first) it runs the batch path (`compute_indicators`
once, then `decide` per bar) and the incremental path (`IncrementalIndicators.update` + `decide`
per bar) with the default config, and prints one JSON document:

    {"bars": N, "max_rel_err": x, "signal_mismatches": k, "nan_mismatches": m, "ok": bool,
     "files": [{"file": ..., "bars": ..., "max_rel_err": ..., "worst": {...}, ...}, ...]}

Relative error per value is |a-b| / max(|a|, |b|) (0 when both are 0 or both NaN); a value that
is NaN in one path only counts in `nan_mismatches`. Exit status: 0 when every file has
max_rel_err <= 1e-9 and no signal/confidence or NaN mismatch, 1 on any mismatch, 2 on bad input
(missing file, unreadable CSV, missing columns, non-numeric values). The only I/O in strategies/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from strategies.config import StrategyConfig, default_config
from strategies.incremental import IncrementalIndicators
from strategies.indicator_params import INDICATOR_COLUMNS, IndicatorParams
from strategies.mei_alpha_v1 import decide_over_frame, frame_from_ohlcv, indicator_frame
from strategies.signals import decide

CSV_COLUMNS = ("t", "o", "h", "l", "c", "v")
REL_ERR_LIMIT = 1e-9
EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2


class BadInput(ValueError):
    """A parity input file is missing or malformed."""


def rel_err(a: float, b: float) -> float:
    """Return |a-b| / max(|a|,|b|); 0.0 for equal values (incl. both NaN); NaN if only one is NaN."""
    a_nan, b_nan = math.isnan(a), math.isnan(b)
    if a_nan or b_nan:
        return 0.0 if a_nan and b_nan else math.nan
    if a == b:
        return 0.0
    return abs(a - b) / max(abs(a), abs(b))


def symbol_from_path(path: Path) -> str:
    """`ETH_BTC-5m.csv` -> `ETH` (only used for the BTC alignment gate)."""
    return path.stem.split("_")[0].split("-")[0].upper()


def read_candles(path: Path) -> pd.DataFrame:
    """Read a t,o,h,l,c,v CSV; raise BadInput naming the file and the problem."""
    if not path.is_file():
        raise BadInput(f"{path}: no such file")
    try:
        raw = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.ParserError) as e:
        raise BadInput(f"{path}: cannot read CSV: {e}") from e
    missing = [c for c in CSV_COLUMNS if c not in raw.columns]
    if missing:
        raise BadInput(f"{path}: missing columns {missing} (need {','.join(CSV_COLUMNS)})")
    if raw.empty:
        raise BadInput(f"{path}: no rows")
    df = raw[list(CSV_COLUMNS)]
    for col in CSV_COLUMNS:
        if not pd.api.types.is_numeric_dtype(df[col]) or df[col].isna().any():
            raise BadInput(f"{path}: column {col} has missing or non-numeric values")
    return df


IncrementalFactory = Callable[[IndicatorParams], IncrementalIndicators]


def check_frame(
    df: pd.DataFrame,
    symbol: str,
    cfg: StrategyConfig,
    make_incremental: IncrementalFactory = IncrementalIndicators,
) -> dict[str, Any]:
    """Compare both paths over every bar of a t,o,h,l,c,v frame; return the per-file report."""
    frame = indicator_frame(frame_from_ohlcv(df), cfg)
    batch_decisions = decide_over_frame(frame, symbol, cfg)
    inc = make_incremental(cfg.indicator_params())
    batch_cols = {c: frame[c].to_numpy(dtype=float) for c in INDICATOR_COLUMNS}
    worst: dict[str, Any] = {"rel_err": 0.0, "column": None, "bar": None}
    nan_mismatches = signal_mismatches = 0
    first_signal_mismatch: int | None = None
    rows = df.itertuples(index=False)
    for i, (t, o, h, lo, c, v) in enumerate(rows):
        row = inc.update(int(t), float(o), float(h), float(lo), float(c), float(v))
        for col in INDICATOR_COLUMNS:
            err = rel_err(float(batch_cols[col][i]), float(row[col]))
            if math.isnan(err):
                nan_mismatches += 1
            elif err > worst["rel_err"]:
                worst = {"rel_err": err, "column": col, "bar": i}
        dec = decide(inc.recent_rows(4), inc.bars, cfg, None, symbol=symbol)
        ref = batch_decisions[i]
        if (dec.signal, dec.confidence) != (ref.signal, ref.confidence):
            signal_mismatches += 1
            if first_signal_mismatch is None:
                first_signal_mismatch = i
    return {
        "bars": len(df),
        "max_rel_err": worst["rel_err"],
        "signal_mismatches": signal_mismatches,
        "nan_mismatches": nan_mismatches,
        "worst": worst,
        "first_signal_mismatch_bar": first_signal_mismatch,
        "signals": sum(d.signal.value != "NEUTRAL" for d in batch_decisions),
    }


def _is_ok(report: dict[str, Any]) -> bool:
    return (report["max_rel_err"] <= REL_ERR_LIMIT and report["signal_mismatches"] == 0
            and report["nan_mismatches"] == 0)


def run(
    paths: Sequence[str], make_incremental: IncrementalFactory = IncrementalIndicators
) -> tuple[int, dict[str, Any]]:
    """Check every file; return (exit status, JSON-able report). Raises BadInput on bad input."""
    frames = [(Path(p), read_candles(Path(p))) for p in paths]  # validate all before working
    files = []
    for path, df in frames:
        symbol = symbol_from_path(path)
        cfg = default_config(symbol)
        report = {"file": str(path), "symbol": symbol, **check_frame(df, symbol, cfg, make_incremental)}
        report["ok"] = _is_ok(report)
        files.append(report)
    total = {
        "bars": sum(f["bars"] for f in files),
        "max_rel_err": max((f["max_rel_err"] for f in files), default=0.0),
        "signal_mismatches": sum(f["signal_mismatches"] for f in files),
        "nan_mismatches": sum(f["nan_mismatches"] for f in files),
    }
    total["ok"] = _is_ok(total)
    return (EXIT_OK if total["ok"] else EXIT_MISMATCH), {**total, "files": files}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m strategies.check_parity",
                                     description="Batch vs incremental strategy parity over candle CSVs.")
    parser.add_argument("files", nargs="+", metavar="FILE.csv", help="candle CSV with columns t,o,h,l,c,v")
    args = parser.parse_args(argv)
    try:
        status, report = run(args.files)
    except BadInput as e:
        print(f"check_parity: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(report, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
