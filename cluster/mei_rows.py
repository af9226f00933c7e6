"""A mei_alpha_v1 primary in the shard's columns: its indicator state as a `ColumnBook` row, and
the tick's NEUTRAL decisions made for all such symbols at once.

Why: a shard holding 1,000 mei_alpha_v1 symbols spent most of a tick in per-symbol Python
(`IncrementalIndicators.advance`, then `decide_lean`). Here the state of each symbol lives in a
row of `strategies.mei_columnar.MeiColumns` (one per indicator-window set, inside the shard's
`ColumnBook`, flushed with the SDK rows in one vectorised step per candle), and
`strategies.signals_columns.decide_columns` decides every symbol of a (window set, config) group
in a few numpy operations.

* `MeiRow` stands in for the symbol's `IncrementalIndicators` (`bars`, `last_t`, `rows_view()`,
  `to_state()` = the unchanged per-row checkpoint; `row_states` many at once, packed straight
  from the columns); `stage(candles)` queues candles for the book's flush; `detach()` gives the
  row back as an `IncrementalIndicators`.
* `mei_ready(...)` returns, keyed `(symbol, MEI_PRIMARY)`, a `Decision` for every symbol whose
  array decision is NEUTRAL and whose features nobody asked for; a BUY/SELL (features needed)
  or a symbol with an open position is left out, so `ShardCore._decide` runs `decide_lean` on
  its rows exactly as before. NEUTRAL decisions are shared constants (read-only: records copy
  their fields; `gates` is not carried, no record reads it).
Pure (no I/O).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from strategies.enums import Confidence, Signal
from strategies.incremental import IncrementalIndicators
from strategies.mei_columnar import MeiColumns
from strategies.mei_columnar_export import export_states
from strategies.signals import Decision
from strategies.signals_columns import BTC_BEARISH, BTC_BULLISH, BTC_UNKNOWN, KIND_CODES, decide_columns

if TYPE_CHECKING:
    from cluster.anchor import AnchorTrend
    from cluster.columnar_book import ColumnBook
    from strategies.candle import Candle

MEI_PRIMARY = "\x00mei_alpha_v1"  # the `ready` key's row name (no YAML variant name holds a NUL)
_NEUTRAL = {code: Decision(Signal.NEUTRAL, Confidence.LOW, 0.0, entry_kind=kind)
            for kind, code in KIND_CODES.items()}
_BTC = {True: BTC_BULLISH, False: BTC_BEARISH, None: BTC_UNKNOWN}


class MeiRow:
    """One symbol's mei_alpha_v1 indicators as a row of the book (see the module docstring)."""

    __slots__ = ("bars", "book", "cols", "r")

    def __init__(self, book: ColumnBook, ind: IncrementalIndicators) -> None:
        """Load `ind` into a fresh row; raises ValueError (row given back) when it does not fit."""
        self.book = book
        self.cols, self.r = book.mei_slot(ind.params)
        try:
            self.cols.load(self.r, ind)
        except ValueError:
            self.cols.release(self.r)
            raise
        self.bars = ind.bars  # bars applied or staged (a refused candle fails and drops the symbol)

    @property
    def params(self) -> Any:
        return self.cols.params

    @property
    def slot(self) -> tuple[MeiColumns, int]:
        return self.cols, self.r

    @property
    def last_t(self) -> int | None:
        return None if self.cols.bars[self.r] == 0 else int(self.cols.last_t[self.r])

    def rows_view(self) -> tuple[dict[str, Any], ...]:
        """The kept rows as `IncrementalIndicators.rows_view()` gives them (fresh dicts)."""
        return self.cols.rows(self.r)

    def stage(self, candles: Sequence[Candle]) -> None:
        """Queue closed candles (ascending) for the book's next flush."""
        self.book.stage(self.slot, candles)
        self.bars += len(candles)

    def to_state(self) -> dict[str, Any]:
        """The per-row checkpoint (`IncrementalIndicators.to_state()`), bit-exact."""
        return export_states(self.cols, [self.r])[0]

    def detach(self) -> IncrementalIndicators:
        """Give the row back; return its state as a per-row `IncrementalIndicators`."""
        ind = self.cols.export(self.r)
        self.cols.release(self.r)
        return ind


def row_states(rows: Sequence[MeiRow]) -> list[dict[str, Any]]:
    """`[row.to_state() for row in rows]`, one bulk export per column set (strategies.mei_columnar_export)."""
    groups: dict[int, list[int]] = defaultdict(list)
    for j, row in enumerate(rows):
        groups[id(row.cols)].append(j)
    out: list[dict[str, Any]] = [{}] * len(rows)
    for members in groups.values():
        cols = rows[members[0]].cols
        for j, state in zip(members, export_states(cols, [rows[j].r for j in members]), strict=True):
            out[j] = state
    return out


def mei_ready(book: ColumnBook, states: Mapping[str, Any], symbols: Collection[str], batch: Mapping[str, int],
              anchor: AnchorTrend, want_snapshot: Collection[str]) -> dict[tuple[str, str], Decision]:
    """The NEUTRAL mei_alpha_v1 decisions of `symbols` this tick (see the module docstring)."""
    groups: dict[tuple[int, int], list[tuple[str, Any]]] = defaultdict(list)
    for symbol in symbols:
        state = states.get(symbol)
        ind = state.ind if state is not None else None
        if type(ind) is not MeiRow or symbol in want_snapshot:
            continue
        key, last_t, last_close = batch[symbol], state.last_t, state.last_close_ms
        if last_t is None or last_close is None or last_close < key or last_t > key:
            continue  # ShardCore._decide names the reason
        groups[(id(ind.cols), book.mei_group(state.cfg))].append((symbol, state))
    out: dict[tuple[str, str], Decision] = {}
    for members in groups.values():
        out.update(_decide_group(members, anchor))
    return out


def _decide_group(members: list[tuple[str, Any]], anchor: AnchorTrend) -> dict[tuple[str, str], Decision]:
    cols, cfg = members[0][1].ind.cols, members[0][1].cfg
    n = len(members)
    idx = np.fromiter((st.ind.r for _, st in members), dtype=np.int64, count=n)
    trend: dict[int, int] = {}  # most symbols of a tick share their newest open time
    btc = np.fromiter((trend[st.last_t] if st.last_t in trend else
                       trend.setdefault(st.last_t, _BTC[anchor.bullish_at(st.last_t)]) for _, st in members),
                      dtype=np.int8, count=n)
    is_btc = np.fromiter((s.upper() == "BTC" for s, _ in members), dtype=bool, count=n)
    out = decide_columns(cols.window(idx), cfg, btc, is_btc)
    neutral = _NEUTRAL
    return {(s, MEI_PRIMARY): neutral[kind] for (s, _), sig, kind in
            zip(members, out.signal.tolist(), out.kind.tolist(), strict=True) if sig == 0}
