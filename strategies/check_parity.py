"""Batch vs incremental strategy parity: `python -m strategies.check_parity [--btc BTC.csv] FILE.csv...`.

For each file (columns t,o,h,l,c,v, oldest first) it runs the batch path (`compute_indicators`
once, then `decide` per bar) and the incremental path (`IncrementalIndicators.update` + `decide`
per bar) with the default config, and prints one JSON document:

    {"bars": N, "max_rel_err": x, "signal_mismatches": k, "score_mismatches": s, "nan_mismatches": m,
     "btc_trend_mismatches": b, "btc": path|null, "ok": bool,
     "files": [{"file": ..., "bars": ..., "max_rel_err": ..., "worst": {...}, ...}, ...]}

With `--btc`, the strategy's BTC trend gate (BTC Close > EMA50 of BTC Close) gets an anchor: for
each bar of a file, the newest BTC candle with open time <= the bar's open time. The batch path
derives it from the whole BTC series (`btc_bullish_series`, pandas' ewm); the incremental path
feeds the BTC candles one at a time, as the shards do. Without `--btc` the gate's input is
"unknown" and it always passes, so a broken gate would go unnoticed: give it a series.
Per file, `btc_gate_blocked_bars` counts bars where the batch decision's BTC gate was closed.

With `--strategy REF` (a registered name or 'package.module:Class', see `python -m strategies
list`), the same files go through the Strategy SDK instead: `strategies.sdk.parity.strategy_parity`
compares the declared indicators' batch twin with the incremental one and the per-bar decisions
(signal, confidence, score) of both paths, plus the array form when the strategy has one. The JSON
keeps the same keys (`bars`, `max_rel_err`, `signal_mismatches`, `nan_mismatches`, `ok`, `files`)
and adds `strategy`, `column_mismatches`, `faults` and `signals`. An unknown name, an import error
or `--btc` with a strategy (SDK decisions take no BTC input here) is bad input (exit 2).

Relative error per value is |a-b| / max(|a|, |b|) (0 when both are 0 or both NaN); a value that
is NaN in one path only counts in `nan_mismatches`. The decision's rank score is compared with
the same relative error (`score_mismatches`: bars above the limit). Exit status: 0 when every
file has max_rel_err <= 1e-9 and no signal/confidence, score, BTC trend or NaN mismatch, 1 on
any mismatch, 2 on bad input (missing file, unreadable CSV, missing columns, non-numeric values,
a BTC series that leaves the gate unknown on every bar of a file). The only I/O in strategies/.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from strategies.config import StrategyConfig, default_config
from strategies.enums import EntryGate, Signal
from strategies.incremental import IncrementalIndicators
from strategies.indicator_params import INDICATOR_COLUMNS, IndicatorParams
from strategies.mei_alpha_v1 import btc_bullish_series, decide_over_frame, frame_from_ohlcv, indicator_frame
from strategies.signals import BTC_TREND_EMA_WINDOW, decide

CSV_COLUMNS = ("t", "o", "h", "l", "c", "v")
REL_ERR_LIMIT = 1e-9
EXIT_OK, EXIT_MISMATCH, EXIT_BAD_INPUT = 0, 1, 2
_BTC_GATE = EntryGate.BTC_ALIGNMENT.value


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
    if not df["t"].is_monotonic_increasing or df["t"].duplicated().any():
        raise BadInput(f"{path}: column t is not strictly increasing (oldest first, one row per bar)")
    return df


IncrementalFactory = Callable[[IndicatorParams], IncrementalIndicators]
BtcTrendFactory = Callable[[Sequence[int], Sequence[float]], "IncrementalBtcTrend"]


class IncrementalBtcTrend:
    """The BTC gate input fed one BTC candle at a time: Close > EMA50, None for the first 49.

    The recursion the shards run (`cluster/anchor.py`, restated because strategies/ imports
    nothing from cluster/; tests/unit/test_check_parity.py checks that the two agree bar for bar).
    `bullish_at(t)` must be asked with non-decreasing t; it answers for the newest BTC candle
    with open time <= t, as `AnchorTrend.bullish_at` does.
    """

    def __init__(self, times: Sequence[int], closes: Sequence[float]) -> None:
        self._times, self._closes = list(times), list(closes)
        self._next = 0
        self._ema: float | None = None
        self._bullish: bool | None = None

    def bullish_at(self, t: int) -> bool | None:
        alpha = 2.0 / (BTC_TREND_EMA_WINDOW + 1)
        while self._next < len(self._times) and self._times[self._next] <= t:
            c = self._closes[self._next]
            self._ema = c if self._ema is None else alpha * c + (1.0 - alpha) * self._ema
            self._next += 1
            self._bullish = c > self._ema if self._next >= BTC_TREND_EMA_WINDOW else None
        return self._bullish


def batch_btc_gate(btc: pd.DataFrame, times: Sequence[int]) -> list[bool | None]:
    """Per bar open time in `times`, the batch BTC gate input from the whole BTC series."""
    trend = btc_bullish_series(btc["c"].astype(float).reset_index(drop=True))
    btc_times = btc["t"].to_numpy(dtype=np.int64)
    at = np.searchsorted(btc_times, np.asarray(times, dtype=np.int64), side="right") - 1
    return [trend[i] if i >= 0 else None for i in at]


def _btc_inputs(
    df: pd.DataFrame, btc: pd.DataFrame | None, make_btc_trend: BtcTrendFactory
) -> tuple[list[bool | None] | None, IncrementalBtcTrend | None]:
    if btc is None:
        return None, None
    times = df["t"].astype("int64").tolist()
    return (batch_btc_gate(btc, times),
            make_btc_trend(btc["t"].astype("int64").tolist(), btc["c"].astype(float).tolist()))


class _Tally:
    """Mismatch counters of one file, with the first bar of each kind."""

    def __init__(self) -> None:
        self.worst: dict[str, Any] = {"rel_err": 0.0, "column": None, "bar": None}
        self.counts = {"nan": 0, "signal": 0, "score": 0, "btc_trend": 0}
        self.first: dict[str, int | None] = {"signal": None, "score": None}

    def indicators(self, i: int, batch_cols: dict[str, np.ndarray], row: dict[str, Any]) -> None:
        for col in INDICATOR_COLUMNS:
            err = rel_err(float(batch_cols[col][i]), float(row[col]))
            if math.isnan(err):
                self.counts["nan"] += 1
            elif err > self.worst["rel_err"]:
                self.worst = {"rel_err": err, "column": col, "bar": i}

    def mismatch(self, kind: str, i: int) -> None:
        self.counts[kind] += 1
        if kind in self.first and self.first[kind] is None:
            self.first[kind] = i


def _score_differs(a: float, b: float) -> bool:
    err = rel_err(a, b)
    return math.isnan(err) or err > REL_ERR_LIMIT


def check_frame(
    df: pd.DataFrame,
    symbol: str,
    cfg: StrategyConfig,
    make_incremental: IncrementalFactory = IncrementalIndicators,
    btc: pd.DataFrame | None = None,
    make_btc_trend: BtcTrendFactory = IncrementalBtcTrend,
) -> dict[str, Any]:
    """Compare both paths over every bar of a t,o,h,l,c,v frame; return the per-file report.

    `btc` (t,o,h,l,c,v, oldest first) is the BTC anchor of the trend gate; None leaves it unknown.
    """
    frame = indicator_frame(frame_from_ohlcv(df), cfg)
    batch_btc, inc_btc = _btc_inputs(df, btc, make_btc_trend)
    batch_decisions = decide_over_frame(frame, symbol, cfg, batch_btc)
    inc = make_incremental(cfg.indicator_params())
    batch_cols = {c: frame[c].to_numpy(dtype=float) for c in INDICATOR_COLUMNS}
    tally = _Tally()
    for i, (t, o, h, lo, c, v) in enumerate(df.itertuples(index=False)):
        tally.indicators(i, batch_cols, inc.update(int(t), float(o), float(h), float(lo), float(c), float(v)))
        btc_bullish = inc_btc.bullish_at(int(t)) if inc_btc is not None else None
        if batch_btc is not None and btc_bullish != batch_btc[i]:
            tally.mismatch("btc_trend", i)
        dec = decide(inc.recent_rows(4), inc.bars, cfg, btc_bullish, symbol=symbol)
        ref = batch_decisions[i]
        if (dec.signal, dec.confidence) != (ref.signal, ref.confidence):
            tally.mismatch("signal", i)
        if _score_differs(dec.score, ref.score):
            tally.mismatch("score", i)
    return {
        "bars": len(df),
        "max_rel_err": tally.worst["rel_err"],
        "signal_mismatches": tally.counts["signal"],
        "score_mismatches": tally.counts["score"],
        "nan_mismatches": tally.counts["nan"],
        "btc_trend_mismatches": tally.counts["btc_trend"],
        "worst": tally.worst,
        "first_signal_mismatch_bar": tally.first["signal"],
        "first_score_mismatch_bar": tally.first["score"],
        "signals": sum(d.signal is not Signal.NEUTRAL for d in batch_decisions),
        "btc_known_bars": sum(b is not None for b in batch_btc) if batch_btc is not None else 0,
        "btc_gate_blocked_bars": sum(d.gates.get(_BTC_GATE) is False for d in batch_decisions),
    }


_COUNTS = ("signal_mismatches", "score_mismatches", "nan_mismatches", "btc_trend_mismatches")


def _is_ok(report: dict[str, Any]) -> bool:
    return report["max_rel_err"] <= REL_ERR_LIMIT and all(report[k] == 0 for k in _COUNTS)


def _check_btc_covers(path: Path, df: pd.DataFrame, btc_path: str, btc: pd.DataFrame) -> None:
    """Raise BadInput if the BTC series leaves the gate unknown on every bar of `df`."""
    if symbol_from_path(path) == "BTC":
        return  # BTC's own gate always passes
    known_by_last_bar = int((btc["t"] <= df["t"].max()).sum())
    if known_by_last_bar < BTC_TREND_EMA_WINDOW:
        raise BadInput(f"{btc_path}: {known_by_last_bar} candles at or before the last bar of {path}, "
                       f"fewer than the {BTC_TREND_EMA_WINDOW} the BTC gate needs on any bar")


def run(
    paths: Sequence[str],
    make_incremental: IncrementalFactory = IncrementalIndicators,
    btc_path: str | None = None,
    make_btc_trend: BtcTrendFactory = IncrementalBtcTrend,
) -> tuple[int, dict[str, Any]]:
    """Check every file; return (exit status, JSON-able report). Raises BadInput on bad input."""
    frames = [(Path(p), read_candles(Path(p))) for p in paths]  # validate all before working
    btc = read_candles(Path(btc_path)) if btc_path is not None else None
    if btc_path is not None and btc is not None:
        for path, df in frames:
            _check_btc_covers(path, df, btc_path, btc)
    files = []
    for path, df in frames:
        symbol = symbol_from_path(path)
        cfg = default_config(symbol)
        report = {"file": str(path), "symbol": symbol, **check_frame(df, symbol, cfg, make_incremental, btc,
                                                                         make_btc_trend)}
        report["ok"] = _is_ok(report)
        files.append(report)
    total: dict[str, Any] = {
        "bars": sum(f["bars"] for f in files),
        "max_rel_err": max((f["max_rel_err"] for f in files), default=0.0),
        **{k: sum(f[k] for f in files) for k in _COUNTS},
        "btc": btc_path,
    }
    total["ok"] = _is_ok(total)
    return (EXIT_OK if total["ok"] else EXIT_MISMATCH), {**total, "files": files}


_SDK_COUNTS = ("signal_mismatches", "nan_mismatches", "column_mismatches", "faults")


def run_strategy(paths: Sequence[str], ref: str) -> tuple[int, dict[str, Any]]:
    """Check every file through the SDK for strategy `ref`; raises BadInput on bad input or a bad ref."""
    from strategies.sdk.errors import StrategyConfigError as SdkConfigError
    from strategies.sdk.parity import strategy_parity
    from strategies.sdk.registry import StrategyRegistry

    frames = [(Path(p), read_candles(Path(p))) for p in paths]
    files = []
    for path, df in frames:
        symbol = symbol_from_path(path)
        try:
            strategy = StrategyRegistry.installed().configure(ref, symbol=symbol)
        except SdkConfigError as e:
            raise BadInput(str(e)) from e
        report = strategy_parity(strategy, frame_from_ohlcv(df).rename(columns={"t": "timestamp"}), symbol)
        files.append({"file": str(path), "symbol": symbol, **report.to_dict()})
    total: dict[str, Any] = {
        "strategy": ref,
        "bars": sum(f["bars"] for f in files),
        "max_rel_err": max((f["max_rel_err"] for f in files), default=0.0),
        **{k: sum(f[k] for f in files) for k in _SDK_COUNTS},
        "signals": sum(f["signals"] for f in files),
    }
    total["ok"] = total["max_rel_err"] == 0.0 and all(total[k] == 0 for k in _SDK_COUNTS)
    return (EXIT_OK if total["ok"] else EXIT_MISMATCH), {**total, "files": files}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m strategies.check_parity",
                                     description="Batch vs incremental strategy parity over candle CSVs.")
    parser.add_argument("files", nargs="+", metavar="FILE.csv", help="candle CSV with columns t,o,h,l,c,v")
    parser.add_argument("--btc", metavar="BTC.csv", default=None,
                        help="BTC candles (t,o,h,l,c,v) anchoring the BTC trend gate; without it the gate "
                             "input is unknown and the gate always passes")
    parser.add_argument("--strategy", metavar="REF", default=None,
                        help="check this SDK strategy (a registered name or 'package.module:Class') instead "
                             "of the default mei_alpha_v1 path")
    args = parser.parse_args(argv)
    try:
        if args.strategy is not None and args.btc is not None:
            raise BadInput("--btc applies to the default mei_alpha_v1 path only, not to --strategy")
        if args.strategy is not None:
            status, report = run_strategy(args.files, args.strategy)
        else:
            status, report = run(args.files, btc_path=args.btc)
    except BadInput as e:
        print(f"check_parity: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(report, indent=2))
    return status


if __name__ == "__main__":
    sys.exit(main())
