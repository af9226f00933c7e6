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
* `mei_neutral(...)` returns, per group, every symbol whose array decision is NEUTRAL and whose
  features nobody asked for (`MeiNeutral`: arrays the shard writes into its record columns,
  `cluster.decision_block`); a BUY/SELL (features needed) or a symbol with an open position is
  left out, so `ShardCore._decide` runs `decide_lean` on its rows exactly as before. Their
  `Decision`s are shared constants (read-only; `gates` is not carried, no record reads it).
Pure (no I/O).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
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


@dataclass(frozen=True, slots=True)
class MeiNeutral:
    """The symbols of one (window set, config) group whose mei_alpha_v1 primary decided NEUTRAL in the
    columns, with what their records hold: newest applied open time, anchor trend code, entry kind."""

    symbols: list[str]
    states: list[Any]
    t: np.ndarray  # int64: each symbol's newest applied open time (the record's `t`)
    btc: np.ndarray  # int8: BTC_BULLISH / BTC_BEARISH / BTC_UNKNOWN of the anchor at t
    kind: np.ndarray  # int8: KIND_CODES of the decision's entry kind

    def decision(self, i: int) -> Decision:
        """Row i as the `Decision` `decide_lean` gives (shared constant: read-only)."""
        return _NEUTRAL[int(self.kind[i])]


def mei_neutral(book: ColumnBook, states: Mapping[str, Any], symbols: Collection[str],
                batch: Mapping[str, int], anchor: AnchorTrend, want_snapshot: Collection[str],
                ) -> list[MeiNeutral]:
    """The NEUTRAL mei_alpha_v1 decisions of `symbols` this tick, per group (see the module docstring).

    One pass in Python per symbol (group it), then arrays per group; the anchor trend is looked up
    once per distinct open time (most symbols of a tick share it)."""
    groups: defaultdict[tuple[int, int], tuple[list[str], list[Any]]] = defaultdict(lambda: ([], []))
    get, mei_row, mei_group = states.get, MeiRow, book.mei_group
    for symbol in symbols:
        state = get(symbol)
        if state is None or type(ind := state.ind) is not mei_row or symbol in want_snapshot:
            continue
        key, last_t, last_close = batch[symbol], state.last_t, state.last_close_ms
        if last_t is None or last_close is None or last_close < key or last_t > key:
            continue  # ShardCore._decide names the reason
        members = groups[(id(ind.cols), mei_group(state.cfg))]
        members[0].append(symbol)
        members[1].append(state)
    return [_decide_group(names, held, anchor) for names, held in groups.values()]


def _decide_group(symbols: list[str], states: list[Any], anchor: AnchorTrend) -> MeiNeutral:
    cols, cfg = states[0].ind.cols, states[0].cfg
    n = len(states)
    rt = np.array([(st.ind.r, st.last_t) for st in states], dtype=np.int64).reshape(n, 2)
    idx, t = rt[:, 0], np.ascontiguousarray(rt[:, 1])
    if n and t.min() == t.max():  # the usual tick: every symbol on the same bar
        btc = np.full(n, _BTC[anchor.bullish_at(int(t[0]))], dtype=np.int8)
    else:
        distinct, where = np.unique(t, return_inverse=True)
        trend = [_BTC[anchor.bullish_at(u)] for u in distinct.tolist()]
        btc = np.array(trend, dtype=np.int8)[where.reshape(n)]
    is_btc = np.zeros(n, dtype=bool)
    is_btc[[i for i, s in enumerate(symbols) if len(s) == 3 and s.upper() == "BTC"]] = True
    out = decide_columns(cols.window(idx), cfg, btc, is_btc)
    keep = np.flatnonzero(out.signal == 0)
    if len(keep) == n:
        return MeiNeutral(symbols, states, t, btc, out.kind.astype(np.int8))
    rows = keep.tolist()
    return MeiNeutral([symbols[i] for i in rows], [states[i] for i in rows], t[keep], btc[keep],
                      out.kind[keep].astype(np.int8))


Neutral = tuple[MeiNeutral, list[Sequence[Any]]]  # a group and each symbol's shadow rows


def with_shadows(groups: Sequence[MeiNeutral], ready: Mapping[str, tuple[Any, Sequence[Any]]],
                 ) -> tuple[list[Neutral], dict[str, Decision]]:
    """Each group with its symbols' shadow rows from the book's `ready` (none without SDK rows), and
    the NEUTRAL `Decision` of the symbols whose SDK rows the book did not decide (they go the
    per-symbol way, `ShardCore._decide`, which evaluates those rows one by one)."""
    out: list[Neutral] = []
    slow: dict[str, Decision] = {}
    for group in groups:
        variants: list[Sequence[Any]] = []
        keep: list[int] = []
        for i, (symbol, state) in enumerate(zip(group.symbols, group.states, strict=True)):
            book = ready.get(symbol) if state.sdk is not None else None
            if state.sdk is not None and book is None:
                slow[symbol] = group.decision(i)
                continue
            keep.append(i)
            variants.append(() if book is None else book[1])
        if len(keep) < len(group.symbols):
            at = np.array(keep, dtype=np.int64)
            group = MeiNeutral([group.symbols[i] for i in keep], [group.states[i] for i in keep], group.t[at],
                               group.btc[at], group.kind[at])
        if keep:
            out.append((group, variants))
    return out, slow
