"""A shard's columnar state: one `ColumnarSet` per indicator declaration set across all its symbols.

`ColumnBook` hands every (symbol, declaration set) of the shard's SDK strategies a row in the
`ColumnarSet` of its declarations (`slot`). During a tick the shard `stage`s each symbol's new
closed candles, then `flush` applies them all: step k applies every row's k-th staged candle in
one vectorised update per set (`strategies.sdk.columnar`, bit-identical to the per-row
`IndicatorState`).

Decisions live in `decisions` (`cluster.book_decide.BookDecisions`): a symbol whose every SDK
strategy sits in the book enrols its strategy rows once; they are kept grouped by (array form,
set) as index arrays, so a tick decides them in a few array operations per group, per row only
where the per-row path is the reference (no array form, a failing one, or a BUY/SELL reason the
array form does not give). The rows come back columnar (`cluster.records.ROW_DTYPE`).

A mei_alpha_v1 primary's indicators live here too (`mei_slot`: a row of the
`strategies.mei_columnar.MeiColumns` of its windows, flushed with the rest); its decisions are
made by `cluster.mei_rows`, grouped by `mei_group` (the config sections the decision reads).
Pure (no I/O).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cluster.book_decide import BookDecisions, Slot
from strategies.indicator_params import IndicatorParams
from strategies.mei_columnar import MeiColumns
from strategies.sdk.columnar import ColumnarSet
from strategies.sdk.indicator_set import IndicatorSet

if TYPE_CHECKING:
    from strategies.candle import Candle
    from strategies.config import StrategyConfig

__all__ = ["ColumnBook", "Slot"]


class ColumnBook:
    """See the module docstring."""

    def __init__(self) -> None:
        self._sets: dict[tuple[Any, ...], ColumnarSet | MeiColumns] = {}
        self._staged: dict[int, list[tuple[int, Sequence[Candle]]]] = defaultdict(list)
        self._by_id: dict[int, ColumnarSet | MeiColumns] = {}
        self.decisions = BookDecisions()  # the enrolled strategy rows, grouped for `decide`
        self._mei_groups: dict[int, tuple[StrategyConfig, int]] = {}  # id(cfg) -> (cfg, group)
        self._mei_keys: dict[tuple[Any, ...], int] = {}

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
