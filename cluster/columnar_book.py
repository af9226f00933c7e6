"""A shard's columnar state: one `ColumnarSet` per indicator declaration set across all its symbols.

`ColumnBook` hands every (symbol, declaration set) of the shard's SDK strategies a row in the
`ColumnarSet` of its declarations (`slot`). During a tick the shard `stage`s each symbol's new
closed candles, then `flush` applies them all: step k applies every row's k-th staged candle in
one vectorised update per set (`strategies.sdk.columnar`, bit-identical to the per-row
`IndicatorState`). `decide` then evaluates every staged strategy row: rows whose strategies share
`column_key()` and a set decide together through `evaluate_columns` and the array exits; a
strategy without an array form, or one whose array form fails, is evaluated per row through the
same fenced `run_row` as before (`cluster.shard_sdk`), so the records are the per-row records.

Reason codes: an array form that gives none costs exactness only in the record's `detail` of a
NEUTRAL row; its BUY/SELL rows are re-evaluated per row for their reason.

A mei_alpha_v1 primary's indicators live here too (`mei_slot`: a row of the
`strategies.mei_columnar.MeiColumns` of its windows, flushed with the rest); its decisions are
made by `cluster.mei_rows`, grouped by `mei_group` (the config sections the decision reads).
Pure (no I/O).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import fields
from typing import TYPE_CHECKING, Any

import numpy as np

from cluster.records import VariantDecision
from strategies.enums import PositionSide, Signal
from strategies.indicator_params import IndicatorParams
from strategies.mei_columnar import MeiColumns
from strategies.sdk.columnar import ColumnarSet
from strategies.sdk.indicator_set import IndicatorSet
from strategies.sdk.strategy import (
    CONFIDENCE_CODES,
    SIGNAL_CODES,
    DecisionContext,
    Strategy,
    evaluate_columns,
)

if TYPE_CHECKING:
    from strategies.candle import Candle
    from strategies.config import StrategyConfig

Slot = tuple[ColumnarSet, int]


class ColumnBook:
    """See the module docstring."""

    def __init__(self) -> None:
        self._sets: dict[tuple[Any, ...], ColumnarSet | MeiColumns] = {}
        self._staged: dict[int, list[tuple[int, Sequence[Candle]]]] = defaultdict(list)
        self._by_id: dict[int, ColumnarSet | MeiColumns] = {}
        self._mei_groups: dict[int, tuple[StrategyConfig, int]] = {}  # id(cfg) -> (cfg, group)
        self._mei_keys: dict[tuple[Any, ...], int] = {}
        self._memo: dict[int, tuple[Strategy[Any], int | None]] = {}  # id(strategy) -> its group key
        self._keys: dict[Any, int] = {}

    def slot(self, indicator_set: IndicatorSet, keep: int) -> Slot:
        """A fresh row in the set of these declarations (created on first use)."""
        key = (indicator_set.specs, keep)
        cset = self._sets.get(key)
        if cset is None:
            cset = self._sets[key] = ColumnarSet(indicator_set, keep, capacity=64)
            self._by_id[id(cset)] = cset
        return cset, cset.alloc()

    def mei_slot(self, params: IndicatorParams) -> tuple[MeiColumns, int]:
        """A fresh row in the mei_alpha_v1 columns of these indicator windows (created on first use)."""
        key = ("mei_alpha_v1", params)
        cols = self._sets.get(key)
        if cols is None:
            cols = self._sets[key] = MeiColumns(params, capacity=64)
            self._by_id[id(cols)] = cols
        assert isinstance(cols, MeiColumns)
        return cols, cols.alloc()

    def mei_group(self, cfg: StrategyConfig) -> int:
        """A small int per distinct decision config (trade, filters, thresholds, mode; not the symbol)."""
        known = self._mei_groups.get(id(cfg))
        if known is None or known[0] is not cfg:
            if len(self._mei_groups) > 4 * max(64, self.rows()):  # forget configs of dropped symbols
                self._mei_groups.clear()
            key = (cfg.trade, cfg.filters, cfg.thresholds, cfg.strategy_mode)
            known = self._mei_groups[id(cfg)] = (cfg, self._mei_keys.setdefault(key, len(self._mei_keys)))
        return known[1]

    @staticmethod
    def release(slot: Slot) -> None:
        slot[0].release(slot[1])

    def rows(self) -> int:
        """Rows held (all sets)."""
        return sum(c.used for c in self._sets.values())

    def stage(self, slot: tuple[Any, int], candles: Sequence[Candle]) -> None:
        """Queue closed candles (ascending) for a row; applied by the next `flush`."""
        if candles:
            self._staged[id(slot[0])].append((slot[1], candles))

    def flush(self) -> set[Slot]:
        """Apply every staged candle; return the slots a candle was refused for (not after the last)."""
        failed: set[Slot] = set()
        staged, self._staged = self._staged, defaultdict(list)
        for set_id, entries in staged.items():
            cset = self._by_id[set_id]
            depth = max(len(c) for _, c in entries)
            for k in range(depth):
                step = [(r, cs[k]) for r, cs in entries if len(cs) > k]
                idx = np.fromiter((r for r, _ in step), dtype=np.int64, count=len(step))
                fields = [[getattr(c, f) for _, c in step] for f in ("t", "o", "h", "l", "c", "v")]
                ok = cset.update(idx, *(np.asarray(x) for x in fields))
                if not ok.all():
                    failed.update((cset, int(r)) for r in idx[~ok])
        return failed

    def decide(self, requests: Sequence[tuple[str, Any, Slot, bool | None]],
               run_row: Any) -> dict[tuple[str, str], VariantDecision]:
        """Decide `requests` = (symbol, strategy row, slot, btc_bullish); key (symbol, row name)."""
        groups: dict[tuple[int, int], list[tuple[str, Any, Slot, bool | None]]] = defaultdict(list)
        out: dict[tuple[str, str], VariantDecision] = {}
        memo = self._memo
        for req in requests:
            strategy = req[1].strategy
            known = memo.get(id(strategy))
            if known is None or known[0] is not strategy:
                known = memo[id(strategy)] = (strategy, self._group_of(strategy))
            if known[1] is None:
                out[(req[0], req[1].name)] = _per_row(req, run_row)
            else:
                groups[(known[1], id(req[2][0]))].append(req)
        for members in groups.values():
            out.update(_decide_group(members, run_row))
        return out

    def _group_of(self, strategy: Strategy[Any]) -> int | None:
        """A small int per distinct `column_key()` (None: no array form or an unhashable key: per row)."""
        if type(strategy).decide_columns is Strategy.decide_columns:
            return None
        try:
            key = strategy.column_key()
            return self._keys.setdefault(key, len(self._keys))
        except Exception:  # an unhashable or failing key: no grouping for this strategy
            return None


def _per_row(req: tuple[str, Any, Slot, bool | None], run_row: Any) -> VariantDecision:
    symbol, row, (cset, r), btc = req
    ctx = DecisionContext(symbol=symbol, bars=int(cset.bars[r]), btc_bullish=btc)
    return run_row(row, cset.rows(r), ctx)


def _decide_group(members: list[tuple[str, Any, Slot, bool | None]], run_row: Any,
                  ) -> dict[tuple[str, str], VariantDecision]:
    """One strategy (by column key) over rows of one set: the array forms, else per row."""
    strategy = members[0][1].strategy
    cset = members[0][2][0]
    idx = np.fromiter((m[2][1] for m in members), dtype=np.int64, count=len(members))
    window = cset.window(idx)
    try:
        dec = evaluate_columns(strategy, window)
        warm = window.bars >= strategy.warmup
        sides = (PositionSide.LONG, PositionSide.SHORT)
        exits = [strategy.indicator_exit_columns(side, window) for side in sides]
        if dec is None or any(e is None or np.shape(e) != (len(idx),) for e in exits):
            raise ValueError("no complete array form")
    except Exception:  # the fence: the per-row path isolates (and records) whatever failed
        return {(m[0], m[1].name): _per_row(m, run_row) for m in members}
    exit_long, exit_short = (warm & np.asarray(e, dtype=bool) for e in exits)
    close = window.col("Close")
    atr = window.col(strategy.rules.atr_column)
    with np.errstate(invalid="ignore"):
        atr = np.where(np.isfinite(atr) & (atr > 0), atr, math.nan)
    out = {}
    need_reason = dec.reason is None
    signals = [_SIGNALS[x] for x in dec.signal.tolist()]
    confidences = [_CONFIDENCES[x] for x in dec.confidence.tolist()]
    table = {-2: "warmup", -1: "", **dict(enumerate(dec.reasons))}
    reasons = [""] * len(members) if need_reason else [table[x] for x in dec.reason.tolist()]
    columns = zip(members, signals, confidences, dec.score.tolist(), close.tolist(), atr.tolist(),
                  exit_long.tolist(), exit_short.tolist(), reasons, strict=True)
    for m, signal, confidence, score, c, a, el, es, reason in columns:
        row = m[1]
        if need_reason and signal is not Signal.NEUTRAL:
            out[(m[0], row.name)] = _per_row(m, run_row)
            continue
        out[(m[0], row.name)] = _record(row.name, row.ref, signal, confidence, score, c, a, el, es, None,
                                        reason)
    return out


_SIGNALS = {code: signal for signal, code in SIGNAL_CODES.items()}
_CONFIDENCES = {code: conf for conf, code in CONFIDENCE_CODES.items()}
_S = tuple(getattr(VariantDecision, f.name).__set__ for f in fields(VariantDecision))
if len(_S) != 11:
    raise RuntimeError("_record is out of date with VariantDecision's fields")


def _record(variant: str, ref: str, signal: Signal, confidence: Any, score: float, close: float, atr: float,
            exit_long: bool, exit_short: bool, fault: str | None, detail: str) -> VariantDecision:
    """`VariantDecision(...)` with every field, in order, without the frozen __init__'s cost."""
    obj = object.__new__(VariantDecision)
    _S[0](obj, variant)
    _S[1](obj, ref)
    _S[2](obj, signal)
    _S[3](obj, confidence)
    _S[4](obj, score)
    _S[5](obj, close)
    _S[6](obj, atr)
    _S[7](obj, exit_long)
    _S[8](obj, exit_short)
    _S[9](obj, fault)
    _S[10](obj, detail)
    return obj
