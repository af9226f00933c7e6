"""The columnar book's decisions: enrolled strategy rows, grouped by array form, decided in arrays.

A symbol whose every SDK strategy row sits in the shard's `ColumnBook` enrols those rows once
(`BookDecisions.enrol`, at attach): each goes into the group of its (array form, `ColumnarSet`),
where `column_key()` names the array form (rows with equal keys decide together). A group keeps
its members as index arrays (symbol id, position in the symbol, set row, variant id, strategy
id), so a tick's `decide` is, per group: select the live members with one mask, read the window,
run `evaluate_columns` and the array exits once, and write the results into `ROW_DTYPE` rows.
Python runs per row only where the per-row path is the reference: a strategy without an array
form (or whose array form fails or gives bad codes) is evaluated per row through the fenced
`run_row` (`cluster.shard_sdk`), and BUY/SELL rows of an array form without reason codes are
re-evaluated per row for their reason, so the rows equal the per-row records field for field.

`split_by_symbol` turns one decide's rows into each symbol's (primary record, shadow
`VariantRows`) in the caller's symbol order: one sort, no per-row objects. Pure (no I/O).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cluster.records import NO_FAULT, ROW_DTYPE, VariantColumns, VariantDecision, VariantRows
from strategies.enums import PositionSide
from strategies.sdk.columnar import ColumnarSet
from strategies.sdk.strategy import (
    CONFIDENCE_CODES,
    SIGNAL_CODES,
    ColumnWindow,
    DecisionContext,
    Row,
    Strategy,
    evaluate_columns,
)

Slot = tuple[ColumnarSet, int]
RunRow = Callable[[Any, Sequence[Row], DecisionContext], VariantDecision]
Handle = tuple[tuple[Any, ...], int]  # (group key, member token): what `unenrol` takes back
PRIMARY = -1  # the position of a symbol's primary row (shadows are 0.. in configured order)
_NO_ROWS = np.empty(0, dtype=np.int64)
_SIDES = (PositionSide.LONG, PositionSide.SHORT)
_ALL = np.empty(0, dtype=np.int64)  # marker: every member of the group per row


class _Group:
    """The members of one (array form, set): a dict for enrol/unenrol, arrays rebuilt when changed."""

    __slots__ = ("arrays", "cset", "members", "strategy")

    def __init__(self, cset: ColumnarSet, strategy: Strategy[Any] | None) -> None:
        self.cset, self.strategy = cset, strategy  # strategy None: no array form, every member per row
        # token -> (symbol id, position, set row, variant id, strategy id, strategy row)
        self.members: dict[int, tuple[int, int, int, int, int, Any]] = {}
        self.arrays: tuple[Any, ...] | None = None

    def columns(self) -> tuple[Any, ...]:
        if self.arrays is None:
            values = list(self.members.values())
            ints = [np.array([m[i] for m in values], dtype=np.int64) for i in range(5)]
            self.arrays = (*ints, [m[5] for m in values])
        return self.arrays


@dataclass(frozen=True, slots=True)
class Decided:
    """One `decide` call: ROW_DTYPE rows (symbol/variant/strategy are the book's ids, fault/detail index
    `texts`) and each row's position in its symbol (PRIMARY, or the shadow's index)."""

    rows: np.ndarray
    pos: np.ndarray
    texts: tuple[str, ...]


class _Table:
    """An append-only string table (ids stay valid for the book's life)."""

    __slots__ = ("ids", "names")

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self.names: list[str] = []

    def id(self, name: str) -> int:
        got = self.ids.get(name)
        if got is None:
            got = self.ids[name] = len(self.names)
            self.names.append(name)
        return got


class BookDecisions:
    """See the module docstring."""

    def __init__(self) -> None:
        self.symbols, self.variants, self.strategies = _Table(), _Table(), _Table()
        self._groups: dict[tuple[Any, ...], _Group] = {}
        self._keys: dict[Any, int] = {}  # column_key() -> small int
        self._memo: dict[int, tuple[Strategy[Any], int | None]] = {}  # id(strategy) -> its array form
        self._tokens = itertools.count()

    def __bool__(self) -> bool:
        """Whether any strategy row is enrolled (else a tick need not look for enrolled symbols)."""
        return bool(self._groups)

    def enrol(self, symbol: str, rows: Sequence[tuple[int, Any, Slot]]) -> list[Handle]:
        """Enrol (position, strategy row, slot) of one symbol; return the handles to unenrol them."""
        sym = self.symbols.id(symbol)
        handles = []
        for pos, row, (cset, r) in rows:
            form = self._form_of(row.strategy)
            key = (form, id(cset))
            group = self._groups.get(key)
            if group is None:
                group = self._groups[key] = _Group(cset, None if form is None else row.strategy)
            token = next(self._tokens)
            group.members[token] = (sym, pos, r, self.variants.id(row.name), self.strategies.id(row.ref), row)
            group.arrays = None
            handles.append((key, token))
        return handles

    def unenrol(self, handles: Sequence[Handle]) -> None:
        for key, token in handles:
            group = self._groups.get(key)
            if group is not None and group.members.pop(token, None) is not None:
                group.arrays = None
                if not group.members:
                    del self._groups[key]

    def _form_of(self, strategy: Strategy[Any]) -> int | None:
        """A small int per distinct `column_key()` (None: no array form or an unhashable key: per row)."""
        known = self._memo.get(id(strategy))
        if known is not None and known[0] is strategy:
            return known[1]
        form = None
        if type(strategy).decide_columns is not Strategy.decide_columns:
            try:
                form = self._keys.setdefault(strategy.column_key(), len(self._keys))
            except Exception:  # an unhashable or failing key: no grouping for this strategy
                form = None
        self._memo[id(strategy)] = (strategy, form)
        return form

    def decide(self, btc: Mapping[str, bool | None], run_row: RunRow) -> Decided:
        """Decide every enrolled row of the symbols in `btc` (symbol -> its BTC gate for the per-row path)."""
        live = np.zeros(len(self.symbols.names), dtype=bool)
        ids = self.symbols.ids
        live[[ids[s] for s in btc if s in ids]] = True
        chosen = []
        for group in self._groups.values():
            columns = group.columns()
            sel = np.flatnonzero(live[columns[0]])
            if len(sel):
                chosen.append((group, columns, sel))
        rows = np.zeros(sum(len(sel) for _g, _c, sel in chosen), dtype=ROW_DTYPE)
        positions = np.empty(len(rows), dtype=np.int64)
        texts: dict[str, int] = {"": 0}
        windows: dict[tuple[int, bytes], ColumnWindow] = {}  # groups over the same rows of a set share one
        at = 0
        for group, (sym, pos, slot, name, ref, objs), sel in chosen:
            out = rows[at: at + len(sel)]  # a view: the writes below land in `rows`
            positions[at: at + len(sel)] = pos[sel]
            at += len(sel)
            out["symbol"], out["variant"], out["strategy"] = sym[sel], name[sel], ref[sel]
            out["fault"] = NO_FAULT
            slots = slot[sel]
            window = None if group.strategy is None else _window(windows, group.cset, slots)
            per_row = _ALL if window is None else _fill(group, window, out, texts)
            for k in (range(len(sel)) if per_row is _ALL else per_row.tolist()):
                symbol = self.symbols.names[int(sym[sel[k]])]
                record = _run(run_row, objs[sel[k]], group.cset, int(slots[k]), symbol, btc[symbol])
                _put(out, k, record, texts)
        return Decided(rows, positions, tuple(texts))


class _Gathered(Mapping[str, np.ndarray]):
    """A set's kept columns for rows `idx`, gathered on first read (read-only: groups share them)."""

    __slots__ = ("_cache", "_idx", "_kept")

    def __init__(self, kept: Mapping[str, np.ndarray], idx: np.ndarray) -> None:
        self._kept, self._idx = kept, idx
        self._cache: dict[str, np.ndarray] = {}

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._cache.get(name)
        if got is None:
            got = self._cache[name] = self._kept[name][self._idx]
            got.flags.writeable = False
        return got

    def __iter__(self) -> Iterator[str]:
        return iter(self._kept)

    def __len__(self) -> int:
        return len(self._kept)


def _window(cache: dict[tuple[int, bytes], ColumnWindow], cset: ColumnarSet, idx: np.ndarray) -> ColumnWindow:
    key = (id(cset), idx.tobytes())
    window = cache.get(key)
    if window is None:
        bars = cset.bars[idx]
        bars.flags.writeable = False
        window = cache[key] = ColumnWindow(_Gathered(cset.kept, idx), bars)
    return window


def _run(run_row: RunRow, row: Any, cset: ColumnarSet, r: int, symbol: str,
         btc: bool | None) -> VariantDecision:
    ctx = DecisionContext(symbol=symbol, bars=int(cset.bars[r]), btc_bullish=btc)
    return run_row(row, cset.rows(r), ctx)


def _put(out: np.ndarray, k: int, rec: VariantDecision, texts: dict[str, int]) -> None:
    """Write one per-row record into row k (its symbol/variant/strategy ids are already there)."""
    fault = NO_FAULT if rec.fault is None else texts.setdefault(rec.fault, len(texts))
    row = out[k]
    out[k] = (row["symbol"], row["variant"], row["strategy"], fault, texts.setdefault(rec.detail, len(texts)),
              rec.score, rec.close, rec.entry_atr, SIGNAL_CODES[rec.signal], CONFIDENCE_CODES[rec.confidence],
              rec.exit_long, rec.exit_short)


def _codes_ok(values: Any, low: int, high: int) -> bool:
    values = np.asarray(values)
    return not len(values) or (values.min() >= low and values.max() <= high)


def _fill(group: _Group, window: ColumnWindow, out: np.ndarray, texts: dict[str, int]) -> np.ndarray:
    """The array form over `window` into `out`; return the positions to decide per row instead."""
    strategy = group.strategy
    assert strategy is not None
    n = len(out)
    try:
        dec = evaluate_columns(strategy, window)
        warm = window.bars >= strategy.warmup
        exits = [strategy.indicator_exit_columns(side, window) for side in _SIDES]
        if dec is None or any(e is None or np.shape(e) != (n,) for e in exits):
            raise ValueError("no complete array form")
        if not (_codes_ok(dec.signal, -1, 1) and _codes_ok(dec.confidence, 0, 2)):
            raise ValueError("signal or confidence code out of range")
    except Exception:  # the fence: the per-row path isolates (and records) whatever failed
        return np.arange(n)
    out["signal"], out["confidence"], out["score"] = dec.signal, dec.confidence, dec.score
    out["close"] = window.col("Close")
    atr = window.col(strategy.rules.atr_column)
    with np.errstate(invalid="ignore"):
        out["entry_atr"] = np.where(np.isfinite(atr) & (atr > 0), atr, math.nan)
    out["exit_long"] = warm & np.asarray(exits[0], dtype=bool)
    out["exit_short"] = warm & np.asarray(exits[1], dtype=bool)
    if dec.reason is None:  # NEUTRAL rows keep detail ""; the others ask the per-row path for the reason
        return np.flatnonzero(out["signal"] != 0)
    table = np.array([texts.setdefault(t, len(texts)) for t in ("warmup", "", *dec.reasons)], dtype=np.int32)
    out["detail"] = table[np.asarray(dec.reason, dtype=np.int64) + 2]  # -2 warmup, -1 "", i reasons[i]
    return _NO_ROWS


def split_by_symbol(decided: Decided, book: BookDecisions, order: Sequence[str],
                    ) -> dict[str, tuple[VariantDecision | None, Sequence[VariantDecision]]]:
    """Each decided symbol's (primary record or None, its shadows as VariantRows), shadows of one
    block laid out in `order` (the symbols of the decide call), each symbol's in configured order."""
    rows, pos = decided.rows, decided.pos
    if not len(rows):
        return {}
    rank = np.full(len(book.symbols.names), -1, dtype=np.int64)
    rank[[book.symbols.ids[s] for s in order]] = np.arange(len(order))
    row_rank = rank[rows["symbol"]]
    tables = (tuple(order), tuple(book.variants.names), tuple(book.strategies.names), decided.texts)
    shadow = np.flatnonzero(pos != PRIMARY)
    shadow = shadow[np.lexsort((pos[shadow], row_rank[shadow]))]
    shadows = rows[shadow]
    shadows["symbol"] = row_rank[shadow]
    block = VariantColumns(*tables, shadows)
    counts = np.bincount(shadows["symbol"], minlength=len(order)).tolist()
    out: dict[str, tuple[VariantDecision | None, Sequence[VariantDecision]]] = {}
    start = 0
    for symbol, n in zip(order, counts, strict=True):
        out[symbol] = (None, VariantRows(block, start, start + n) if n else ())
        start += n
    primary = np.flatnonzero(pos == PRIMARY)
    if len(primary):
        prim = rows[primary]
        prim["symbol"] = row_rank[primary]
        prim_block = VariantColumns(*tables, prim)
        for k, r in enumerate(prim["symbol"].tolist()):
            out[order[r]] = (prim_block.decision(k), out[order[r]][1])
    return out


def enrolled_at_key(states: Mapping[str, Any], symbols: Iterable[str], batch: Mapping[str, int],
                    anchor: Any) -> dict[str, bool | None]:
    """{symbol: anchor trend at its newest bar} of the symbols whose SDK rows are enrolled in the book
    and whose state sits exactly on its key (the others: `ShardCore._decide` names the reason)."""
    btc: dict[str, bool | None] = {}
    for symbol in symbols:
        state = states.get(symbol)
        if state is None or state.sdk is None or not state.sdk.enrolled or state.last_t is None:
            continue
        key = batch[symbol]
        if state.last_close_ms is None or state.last_close_ms < key or state.last_t > key:
            continue
        btc[symbol] = anchor.bullish_at(state.last_t)
    return btc
