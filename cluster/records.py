"""What shards return to the driver and what the pool reports about shards. Small and picklable.

A `ShardDecision` is one symbol's result of one tick; it holds plain values and small frozen
records only (no frames, no dicts read back by key). Across the Ray boundary a shard's records
travel as one `cluster.decision_block.DecisionBlock` (columns), and the driver builds a
`ShardDecision` only for the rows it reads. The status says whether
the signal is a real decision for the expected candle or a fail-closed "no signal"; the pool
fills in the shard-level statuses.

Shadow variants are columnar (issue 12): a shard's tick returns ALL its (symbol, variant) rows as
one `VariantColumns` (one numpy structured array plus small string tables; pickled column by
column in compact form, `cluster.column_wire`), and each `ShardDecision.variants` is a
`VariantRows` view of its symbol's span there.
A `VariantDecision` object is built only when someone reads one row (`VariantRows[i]`, the rows
that open or close a shadow position); the shadow fleet filters the rest with array operations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields
from enum import StrEnum
from operator import attrgetter
from typing import Any

import numpy as np

from cluster import column_wire
from strategies.enums import Confidence, EntryKind, Signal
from strategies.sdk.strategy import CONFIDENCE_CODES, SIGNAL_CODES
from strategies.signals import SignalFeatures

__all__ = ["ROW_DTYPE", "ShardDecision", "ShardStatus", "TickResult", "VariantColumns", "VariantDecision",
           "VariantRows", "make_decision", "no_signal", "pack_variant", "unpack_variant"]


class ShardStatus(StrEnum):
    """Why a record carries (or does not carry) a real decision."""

    OK = "ok"  # decision on the candle the driver asked for
    MISSING_CANDLE = "missing_candle"  # the candle with that key is not in Redis (yet)
    KEY_BEHIND = "key_behind"  # the shard's state is already past the key: driver is stale
    NO_HISTORY = "no_history"  # no candle of the symbol in Redis at all
    STRATEGY_ERROR = "strategy_error"  # the strategy raised for this symbol (caught per symbol)
    STORE_UNAVAILABLE = "store_unavailable"  # Redis could not be read this tick (retried next tick)
    SHARD_LATE = "shard_late"  # the shard missed the tick deadline (set by the pool)
    SHARD_DEAD = "shard_dead"  # the shard's actor died during the call (set by the pool)
    SHARD_BUSY = "shard_busy"  # the shard is still on an earlier late call (set by the pool)


class ShardFault(StrEnum):
    """Alert and metric codes the pool raises about a shard."""

    LATE = "shard_late"
    DEAD = "shard_dead"
    BUSY = "shard_busy"
    KILLED_HUNG = "shard_killed_hung"  # a call outstanding past hung_after_secs: killed, Ray restarts it
    HISTORY_GAP = "shard_history_gap"  # a symbol's checkpoint was older than Redis retention


@dataclass(frozen=True, slots=True)
class VariantDecision:
    """One SDK strategy's decision on the closed candle of one symbol (a shadow variant or the SDK primary).

    Carries everything the driver needs to open, rank and exit without indicator rows: the
    decided bar's close, the entry ATR (`strategies.sdk.exits.entry_atr(rules, row)`, NaN when
    the row has none) and whether the strategy's indicator exit fires for a LONG / SHORT on this
    bar. `fault` is the `FaultKind` value when the strategy failed on this symbol/bar (then the
    signal is NEUTRAL and the exit flags False).
    """

    variant: str  # the shadow's name from the YAML (expanded grid names included); the ref for a primary
    strategy: str  # registry ref, e.g. "donchian_breakout" or "pkg.mod:Cls"
    signal: Signal  # NEUTRAL when faulted
    confidence: Confidence
    score: float
    close: float  # the decided bar's close
    entry_atr: float  # strategies.sdk.exits.entry_atr(rules, row) of the decided bar (NaN if none)
    exit_long: bool  # strategy.indicator_exit(LONG, rows) is not None on this bar
    exit_short: bool  # same for SHORT
    fault: str | None = None  # StrategyFault kind when the strategy failed on this symbol/bar
    detail: str = ""  # the fault's detail (or the decision's reason code), for the decision log


@dataclass(frozen=True, slots=True)
class ShardDecision:
    """One symbol's result for one tick.

    `t` is the open time of the newest candle applied to the symbol's state (None before any);
    `entry_kind` which entry path produced a BUY/SELL (the entry's reason code); `features` the
    typed indicator values exits and sizing need (only for BUY/SELL and requested symbols);
    `history_gap` is True when the state could not be restored exactly (checkpoint older than
    Redis retention) and was rebuilt from the candles still available: decisions may differ
    from an uninterrupted run until the operator accepts that history. `primary` is set when an
    SDK strategy (not mei_alpha_v1) trades the symbol: signal/confidence/score are then its
    decision (NEUTRAL when it faulted; the fault is on the record) and `features` is None;
    `variants` carries the symbol's shadow variants, evaluated on the same candle.
    """

    symbol: str
    candle_key: int
    status: ShardStatus
    signal: Signal = Signal.NEUTRAL
    confidence: Confidence = Confidence.LOW
    score: float = 0.0
    t: int | None = None
    btc_bullish: bool | None = None
    history_gap: bool = False
    shard: int = -1
    entry_kind: EntryKind = EntryKind.NONE
    features: SignalFeatures | None = None
    variants: Sequence[VariantDecision] = ()  # one per shadow variant (a VariantRows from a shard)
    primary: VariantDecision | None = None  # the SDK primary's record; None when mei_alpha_v1 decides

    @property
    def actionable(self) -> bool:
        """True when this is a real BUY/SELL decision on the requested candle."""
        return self.status is ShardStatus.OK and self.signal is not Signal.NEUTRAL


# ---------------------------------------------------------------------------------------------
# Columnar variant rows (issue 12): see the module docstring.

ROW_DTYPE = np.dtype([("symbol", "<i4"), ("variant", "<i4"), ("strategy", "<i4"), ("fault", "<i4"),
                      ("detail", "<i4"), ("score", "<f8"), ("close", "<f8"), ("entry_atr", "<f8"),
                      ("signal", "i1"), ("confidence", "i1"), ("exit_long", "?"), ("exit_short", "?")])
NO_FAULT = -1  # the `fault` index of a row that decided cleanly
_SIGNAL_OF_CODE = {code: signal for signal, code in SIGNAL_CODES.items()}
_CONFIDENCE_OF_CODE = {code: conf for conf, code in CONFIDENCE_CODES.items()}
_TABLES = ("symbols", "variants", "strategies", "texts")
_INDEX_OF = (("symbol", "symbols", 0), ("variant", "variants", 0), ("strategy", "strategies", 0),
             ("fault", "texts", NO_FAULT), ("detail", "texts", 0))


@dataclass(frozen=True, slots=True, eq=False)
class VariantColumns:
    """Many `VariantDecision`s (each with its symbol) as one structured array plus string tables.

    `rows` has dtype `ROW_DTYPE`: symbol / variant / strategy index into `symbols` / `variants` /
    `strategies`; signal code (+1 BUY, -1 SELL, 0 NEUTRAL) and confidence code (0 LOW, 1 MEDIUM,
    2 HIGH) as in `strategies.sdk.strategy`; score, close, entry_atr, exit_long, exit_short as in
    `VariantDecision`; fault (index into `texts`, NO_FAULT when clean) and detail (index into
    `texts`). Construction validates every code and index (`validate`), so a malformed block fails
    at the seam instead of trading the wrong variant. Treat `rows` as read-only: record views
    (`VariantRows`) share it.
    """

    symbols: tuple[str, ...]
    variants: tuple[str, ...]
    strategies: tuple[str, ...]
    texts: tuple[str, ...]
    rows: np.ndarray

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError unless `rows` is a 1-D ROW_DTYPE array whose codes and indices are in range."""
        rows = self.rows
        if not isinstance(rows, np.ndarray) or rows.dtype != ROW_DTYPE or rows.ndim != 1:
            raise ValueError(f"VariantColumns.rows must be a 1-D ROW_DTYPE array, got {rows!r:.80}")
        if not all(isinstance(getattr(self, t), tuple) for t in _TABLES):
            raise ValueError("VariantColumns string tables must be tuples")
        if not len(rows):
            return
        for column, table, low in _INDEX_OF:
            values = rows[column]
            if values.min() < low or values.max() >= len(getattr(self, table)):
                raise ValueError(f"VariantColumns: a {column} index is outside its table ({table})")
        for column, low, high in (("signal", -1, 1), ("confidence", 0, 2)):
            values = rows[column]
            if values.min() < low or values.max() > high:
                raise ValueError(f"VariantColumns: a {column} code is outside {low}..{high}")

    @classmethod
    def empty(cls) -> VariantColumns:
        return _columns((), (), (), ("",), np.empty(0, dtype=ROW_DTYPE))

    @classmethod
    def from_records(cls, items: Iterable[tuple[str, VariantDecision]]) -> VariantColumns:
        """Columns of (symbol, record) pairs, in order (the per-row path and tests; one loop per row)."""
        tables: tuple[dict[str, int], ...] = ({}, {}, {}, {"": 0})
        values = []
        for symbol, v in items:
            sym, var, ref, text = (t.setdefault(x, len(t)) for t, x in zip(
                tables, (symbol, v.variant, v.strategy, v.detail), strict=True))
            fault = NO_FAULT if v.fault is None else tables[3].setdefault(v.fault, len(tables[3]))
            values.append((sym, var, ref, fault, text, v.score, v.close, v.entry_atr, SIGNAL_CODES[v.signal],
                           CONFIDENCE_CODES[v.confidence], v.exit_long, v.exit_short))
        return cls(*(tuple(t) for t in tables), np.array(values, dtype=ROW_DTYPE))

    def __len__(self) -> int:
        return len(self.rows)

    def decision(self, i: int) -> VariantDecision:
        """Row i as a `VariantDecision` (one object: for the rows that act)."""
        _s, var, ref, fault, detail, score, close, atr, signal, conf, long_, short = self.rows[i].item()
        return VariantDecision(self.variants[var], self.strategies[ref], _SIGNAL_OF_CODE[signal],
                               _CONFIDENCE_OF_CODE[conf], score, close, atr, long_, short,
                               None if fault < 0 else self.texts[fault], self.texts[detail])

    def key(self, i: int) -> tuple[str, str]:
        """(variant name, symbol) of row i: the shadow book's key."""
        row = self.rows[i]
        return self.variants[row["variant"]], self.symbols[row["symbol"]]

    def index_of(self, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], int]:
        """{(variant, symbol): row} for those of `keys` that have a row (vectorised over the rows)."""
        var_id = {name: i for i, name in enumerate(self.variants)}
        sym_id = {name: i for i, name in enumerate(self.symbols)}
        width = len(self.variants)
        wanted = [sym_id[s] * width + var_id[v] for v, s in keys if v in var_id and s in sym_id]
        if not wanted:
            return {}
        codes = self.rows["symbol"].astype(np.int64) * width + self.rows["variant"]
        return {self.key(i): i for i in np.flatnonzero(np.isin(codes, wanted)).tolist()}

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle `rows` column by column in compact form (`cluster.column_wire`): a shard's reply
        stays under Ray's inline-return limit; unpickling validates again (a bad reply fails closed)."""
        return (_unpickle_columns, (self.symbols, self.variants, self.strategies, self.texts,
                                    column_wire.pack(self.rows)))

    def signal_symbols(self) -> set[str]:
        """The symbols with at least one BUY or SELL row."""
        rows = self.rows
        return {self.symbols[i] for i in np.unique(rows["symbol"][rows["signal"] != 0]).tolist()}

    def take(self, index: np.ndarray | slice) -> VariantColumns:
        """The rows at `index` (same tables)."""
        return _columns(self.symbols, self.variants, self.strategies, self.texts, self.rows[index])

    @staticmethod
    def concat(parts: Sequence[VariantColumns]) -> VariantColumns:
        """One block of `parts`' rows in order, tables merged (indices remapped, vectorised per part)."""
        if not parts:
            return VariantColumns.empty()
        if len(parts) == 1:
            return parts[0]
        merged: tuple[dict[str, int], ...] = ({}, {}, {}, {"": 0})
        remaps: dict[tuple[int, int], np.ndarray] = {}  # old index -> new index, per (table, merged table)

        def remap(table: tuple[str, ...], into: dict[str, int]) -> np.ndarray:
            got = remaps.get((id(table), id(into)))  # slices of one block share their tables: once each
            if got is None:
                new = [into.setdefault(x, len(into)) for x in table]
                got = remaps[(id(table), id(into))] = np.array([*new, NO_FAULT], dtype=np.int32)
            return got

        chunks = []
        for part in parts:
            rows = part.rows.copy()
            for (column, table, _low), into in zip(_INDEX_OF, (*merged, merged[3]), strict=True):
                rows[column] = remap(getattr(part, table), into)[rows[column]]  # -1 maps to the NO_FAULT tail
            chunks.append(rows)
        return _columns(*(tuple(t) for t in merged), np.concatenate(chunks))


def _unpickle_columns(symbols: tuple[str, ...], variants: tuple[str, ...], strategies: tuple[str, ...],
                      texts: tuple[str, ...], packed: tuple[Any, ...]) -> VariantColumns:
    return VariantColumns(symbols, variants, strategies, texts, column_wire.unpack(packed, ROW_DTYPE))


def _columns(symbols: tuple[str, ...], variants: tuple[str, ...], strategies: tuple[str, ...],
             texts: tuple[str, ...], rows: np.ndarray) -> VariantColumns:
    """A VariantColumns derived from validated ones (take, concat): no second validation pass."""
    obj = object.__new__(VariantColumns)
    for name, value in zip((*_TABLES, "rows"), (symbols, variants, strategies, texts, rows), strict=True):
        object.__setattr__(obj, name, value)
    return obj


@dataclass(frozen=True, slots=True, eq=False)
class VariantRows(Sequence[VariantDecision]):
    """One symbol's shadow variants: rows [start, stop) of a tick's `VariantColumns`.

    A Sequence of `VariantDecision` built on access, so code that iterates keeps working; the
    shadow fleet reads the block's arrays instead. Equal to any sequence of the same records.
    """

    block: VariantColumns
    start: int
    stop: int

    def __len__(self) -> int:
        return self.stop - self.start

    def __getitem__(self, i: int | slice) -> Any:
        if isinstance(i, slice):
            return tuple(self[j] for j in range(*i.indices(len(self))))
        n = self.stop - self.start
        if not -n <= i < n:
            raise IndexError(f"variant row {i} out of range ({n} rows)")
        return self.block.decision(self.start + (i if i >= 0 else n + i))

    def __iter__(self) -> Iterator[VariantDecision]:
        return map(self.block.decision, range(self.start, self.stop))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence) and not isinstance(other, str):
            return tuple(self) == tuple(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self))

    def __repr__(self) -> str:
        return repr(tuple(self))


def collect_rows(seqs: Iterable[Sequence[VariantDecision]], symbols: Iterable[str],
                 ) -> tuple[VariantColumns, list[tuple[int, int]]]:
    """One block with every sequence's rows in order, and each sequence's (start, stop) in it.

    Contiguous `VariantRows` of one block (what a shard produces) are kept as they are, without a
    copy; other sequences are turned into columns (one loop per row: the per-row paths only).
    """
    parts: list[VariantColumns] = []
    spans: list[tuple[int, int]] = []
    run: list[Any] = []  # [block, start, stop] of the current contiguous run
    pos = 0

    def close_run() -> None:
        if run:
            block, start, stop = run
            parts.append(block if (start, stop) == (0, len(block)) else block.take(slice(start, stop)))
            run.clear()

    for seq, symbol in zip(seqs, symbols, strict=True):
        n = len(seq)
        spans.append((pos, pos + n))
        pos += n
        if not n:
            continue
        if isinstance(seq, VariantRows):
            if run and run[0] is seq.block and run[2] == seq.start:
                run[2] = seq.stop
                continue
            close_run()
            run.extend((seq.block, seq.start, seq.stop))
        else:
            close_run()
            parts.append(VariantColumns.from_records((symbol, v) for v in seq))
    close_run()
    return VariantColumns.concat(parts), spans


def gather_rows(decisions: Iterable[ShardDecision]) -> VariantColumns:
    """Every decision's variant rows in one block, grouped by the block they came in (order not kept).

    The shadow fleet's tick-wide view: one boolean mask per shard block, no per-row objects.
    """
    masks: dict[int, tuple[VariantColumns, np.ndarray]] = {}
    loose: list[ShardDecision] = []
    for d in decisions:
        v = d.variants
        if isinstance(v, VariantRows):
            entry = masks.get(id(v.block))
            if entry is None:
                entry = masks[id(v.block)] = (v.block, np.zeros(len(v.block), dtype=bool))
            entry[1][v.start:v.stop] = True
        elif v:
            loose.append(d)
    parts = [block if mask.all() else block.take(mask) for block, mask in masks.values()]
    if loose:
        parts.append(VariantColumns.from_records((d.symbol, v) for d in loose for v in d.variants))
    return VariantColumns.concat(parts)


_SIGNAL = {m.value: m for m in Signal}
_CONFIDENCE = {m.value: m for m in Confidence}
_SIGNAL_VALUE = {m: m.value for m in Signal}
_CONFIDENCE_VALUE = {m: m.value for m in Confidence}
_VARIANT_VALUES = attrgetter(*(f.name for f in fields(VariantDecision)))


def pack_variant(v: VariantDecision | None) -> tuple[object, ...] | None:
    """A VariantDecision as plain values (an SDK primary's record inside a `DecisionBlock`)."""
    if v is None:
        return None
    values = _VARIANT_VALUES(v)
    return (*values[:2], _SIGNAL_VALUE[v.signal], _CONFIDENCE_VALUE[v.confidence], *values[4:])


def unpack_variant(values: tuple[object, ...] | None) -> VariantDecision | None:
    """Inverse of pack_variant; raises KeyError on an unknown signal/confidence value."""
    if values is None:
        return None
    name, ref, signal, confidence, *rest = values
    return VariantDecision(name, ref, _SIGNAL[signal], _CONFIDENCE[confidence], *rest)  # type: ignore[arg-type]


# ShardDecision's field setters in declaration order. A frozen dataclass's __init__ assigns each
# field through object.__setattr__ (~1.9 us for 11 fields); calling the slot descriptors directly
# does the same assignments in ~0.65 us, which matters at 10,000 records per tick on each side.
_FIELDS = tuple(f.name for f in fields(ShardDecision))
(_SET_SYMBOL, _SET_KEY, _SET_STATUS, _SET_SIGNAL, _SET_CONFIDENCE, _SET_SCORE, _SET_T, _SET_BTC, _SET_GAP,
 _SET_SHARD, _SET_KIND, _SET_FEATURES, _SET_VARIANTS, _SET_PRIMARY) = (
    getattr(ShardDecision, name).__set__ for name in _FIELDS)
if _FIELDS != ("symbol", "candle_key", "status", "signal", "confidence", "score", "t", "btc_bullish",
               "history_gap", "shard", "entry_kind", "features", "variants", "primary"):
    raise RuntimeError(f"make_decision is out of date with ShardDecision's fields {_FIELDS}")
_new = object.__new__


def make_decision(
    symbol: str,
    candle_key: int,
    status: ShardStatus,
    signal: Signal,
    confidence: Confidence,
    score: float,
    t: int | None,
    btc_bullish: bool | None,
    history_gap: bool,
    shard: int,
    entry_kind: EntryKind,
    features: SignalFeatures | None,
    variants: Sequence[VariantDecision] = (),
    primary: VariantDecision | None = None,
) -> ShardDecision:
    """Return `ShardDecision(...)` with every field given, ~3x cheaper than its frozen __init__."""
    obj = _new(ShardDecision)
    _SET_SYMBOL(obj, symbol)
    _SET_KEY(obj, candle_key)
    _SET_STATUS(obj, status)
    _SET_SIGNAL(obj, signal)
    _SET_CONFIDENCE(obj, confidence)
    _SET_SCORE(obj, score)
    _SET_T(obj, t)
    _SET_BTC(obj, btc_bullish)
    _SET_GAP(obj, history_gap)
    _SET_SHARD(obj, shard)
    _SET_KIND(obj, entry_kind)
    _SET_FEATURES(obj, features)
    _SET_VARIANTS(obj, variants)
    _SET_PRIMARY(obj, primary)
    return obj


def no_signal(symbol: str, candle_key: int, status: ShardStatus, shard: int = -1) -> ShardDecision:
    """Return the fail-closed record for a symbol whose shard gave no decision."""
    return ShardDecision(symbol=symbol, candle_key=candle_key, status=status, shard=shard)


@dataclass(frozen=True, slots=True)
class ShardAlert:
    """A fault of one shard in one tick, for the driver's alerting and metrics."""

    shard: int
    fault: ShardFault
    symbols: int
    detail: str = ""


@dataclass(frozen=True, slots=True)
class TickResult:
    """Every requested symbol's record (real or fail-closed), plus the faults of the tick."""

    decisions: Mapping[str, ShardDecision]
    alerts: tuple[ShardAlert, ...]
    elapsed_ms: float

    def ranked(self) -> list[ShardDecision]:
        """Return the actionable decisions, best score first (ties by symbol for determinism).

        The executors' `cluster.decision_block.TickDecisions` ranks on its arrays (building only the
        actionable records); any other mapping is ranked record by record."""
        ranked = getattr(self.decisions, "ranked", None)
        return ranked() if callable(ranked) else rank_decisions(self.decisions.values())


def rank_decisions(decisions: Iterable[ShardDecision]) -> list[ShardDecision]:
    """Return actionable decisions sorted by score descending, then symbol."""
    ok, neutral = ShardStatus.OK, Signal.NEUTRAL  # `actionable` inlined: 10,000 property calls a tick
    return sorted((d for d in decisions if d.status is ok and d.signal is not neutral),
                  key=lambda d: (-d.score, d.symbol))
