"""Batch = incremental (= columnar) parity of any SDK strategy over one candle history.

`strategy_parity(strategy, candles, symbol)` runs the three paths a strategy has and compares them
on every bar:

* batch: `IndicatorSet.batch` once, then `evaluate` on each bar's last K rows of that frame;
* incremental: `IndicatorState.update` per candle, then `evaluate` on the kept rows;
* columnar state (`strategies.sdk.columnar.ColumnarSet`, what a shard holds): updated per candle,
  its values compared with the batch frame bit for bit (counted in `max_rel_err` and
  `nan_mismatches` like the incremental path's);
* columnar decisions (when the strategy has an array form): `evaluate_columns` over all bars at
  once, from the batch frame laid out as a `ColumnWindow` of n bars x K rows AND from the
  columnar state's kept rows, each compared with the batch decision (signal, confidence, score,
  and the reason code when the array form gives one).

It returns the numbers `python -m strategies.check_parity` prints (`bars`, `max_rel_err`,
`signal_mismatches`, plus `nan_mismatches`, `column_mismatches`, `faults`, `signals`); the
integration round points check_parity's `--strategy NAME` at this function. Pure: no I/O.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from strategies.sdk.columnar import ColumnarSet, supports_columnar
from strategies.sdk.strategy import (
    ColumnWindow,
    DecisionContext,
    Strategy,
    StrategyDecision,
    StrategyFault,
    evaluate,
    evaluate_columns,
)


@dataclass(frozen=True, slots=True)
class ParityReport:
    """Parity of one strategy over one candle history (0 mismatches everywhere = exact)."""

    bars: int
    max_rel_err: float  # indicator values, incremental vs batch
    nan_mismatches: int  # values NaN in one path only
    signal_mismatches: int  # bars whose (signal, confidence, score) differ, batch vs incremental
    column_mismatches: int  # bars whose array-form decision differs from the per-row one (0 if none)
    faults: int  # bars where the strategy faulted (either path)
    signals: int  # non-NEUTRAL batch decisions: a parity over zero signals proves little

    @property
    def ok(self) -> bool:
        return (self.max_rel_err == 0.0 and self.nan_mismatches == 0 and self.signal_mismatches == 0
                and self.column_mismatches == 0 and self.faults == 0)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"ok": self.ok}


def _rel_err(a: float, b: float) -> float:
    if a == b or (a != a and b != b):
        return 0.0
    if a != a or b != b:
        return math.nan
    return abs(a - b) / max(abs(a), abs(b))


def _key(d: StrategyDecision | StrategyFault) -> tuple[Any, ...]:
    if isinstance(d, StrategyFault):
        return ("fault", d.kind, d.detail)
    return (d.signal, d.confidence, d.score)


def column_window(frame: pd.DataFrame, names: tuple[str, ...], k: int) -> ColumnWindow:
    """Lay a batch frame out as n bars x k rows per column (NaN-padded before bar 0)."""
    n = len(frame)
    columns = {}
    for name in names:
        values = np.concatenate([np.full(k - 1, np.nan), frame[name].to_numpy(dtype=float)])
        columns[name] = np.lib.stride_tricks.sliding_window_view(values, k)[:n]
    return ColumnWindow(columns, np.arange(1, n + 1, dtype=np.int64))


def _columnar_rows(strategy: Strategy[Any], frame: pd.DataFrame) -> ColumnWindow | None:
    """Run the columnar state over the frame's candles (one row); return every bar's kept rows."""
    iset, k = strategy.indicator_set, strategy.LOOKBACK_ROWS
    if not supports_columnar(iset):
        return None
    cset = ColumnarSet(iset, k, capacity=1)
    row = np.array([cset.alloc()])
    n = len(frame)
    kept = {name: np.empty((n, k)) for name in cset.names}
    prices = [frame[c].to_numpy(dtype=float) for c in ("Open", "High", "Low", "Close", "Volume")]
    times = frame["timestamp"].to_numpy(dtype=np.int64)
    for i in range(n):
        cset.update(row, times[i: i + 1], *(p[i: i + 1] for p in prices))
        for name, arr in cset.kept.items():
            kept[name][i] = arr[row[0]]
    return ColumnWindow(kept, np.arange(1, n + 1, dtype=np.int64))


def _column_key(columnar: Any, i: int, with_reason: bool) -> tuple[Any, ...]:
    return (*columnar.at(i), columnar.reason_at(i)) if with_reason else columnar.at(i)


def _ref_key(d: StrategyDecision | StrategyFault, with_reason: bool) -> tuple[Any, ...]:
    key = _key(d)
    return (*key, d.reason) if with_reason and isinstance(d, StrategyDecision) else key


def _count_diff(frame: pd.DataFrame, names: tuple[str, ...], rows: ColumnWindow) -> tuple[float, int]:
    """(worst relative error, NaN-ness mismatches) of the columnar state's newest rows vs the frame."""
    worst, nans = 0.0, 0
    for name in names:
        for a, b in zip(frame[name].tolist(), rows.col(name).tolist(), strict=True):
            err = _rel_err(float(a), float(b))
            nans += err != err
            worst = max(worst, err) if err == err else worst
    return worst, nans


def strategy_parity(strategy: Strategy[Any], candles: pd.DataFrame, symbol: str) -> ParityReport:
    """Compare the strategy's paths on every bar of `candles` (timestamp, Open..Volume, oldest first)."""
    k = strategy.LOOKBACK_ROWS
    frame = strategy.indicator_set.batch(candles)
    records = frame.to_dict("records")
    cols = ("timestamp", "Open", "High", "Low", "Close", "Volume")
    state = strategy.indicator_set.incremental(keep_rows=k)
    names = strategy.indicator_set.columns
    columnar_rows = _columnar_rows(strategy, frame)
    worst, nan_mismatches = (0.0, 0) if columnar_rows is None else _count_diff(frame, names, columnar_rows)
    signal_mismatches, faults, signals = 0, 0, 0
    batch_decisions = []
    for i, candle in enumerate(zip(*(frame[c].tolist() for c in cols), strict=True)):
        row = state.update(int(candle[0]), *candle[1:])
        for name in names:
            err = _rel_err(float(records[i][name]), row[name])
            if err != err:
                nan_mismatches += 1
            worst = max(worst, err) if err == err else worst
        ctx = DecisionContext(symbol=symbol, bars=i + 1)
        ref = evaluate(strategy, records[max(0, i + 1 - k): i + 1], ctx)
        inc = evaluate(strategy, state.rows(), ctx)
        batch_decisions.append(ref)
        signal_mismatches += _key(ref) != _key(inc)
        faults += isinstance(ref, StrategyFault) or isinstance(inc, StrategyFault)
        signals += isinstance(ref, StrategyDecision) and ref.side is not None
    column_mismatches = 0
    windows = [column_window(frame, ("Open", "High", "Low", "Close", "Volume", *names), k), columnar_rows]
    for window in windows:
        columnar = evaluate_columns(strategy, window) if window is not None else None
        if columnar is None:
            continue
        with_reason = columnar.reason is not None
        column_mismatches += sum(_column_key(columnar, i, with_reason) != _ref_key(d, with_reason)
                                 for i, d in enumerate(batch_decisions))
    return ParityReport(len(frame), worst, nan_mismatches, signal_mismatches, column_mismatches, faults,
                        signals)
