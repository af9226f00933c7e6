"""A shard's tick as columns, and the driver's lazy view of every shard's block (issue 12).

Why: a tick's reply used to be one `ShardDecision` per symbol, packed into tuples in the actor,
pickled, unpickled and rebuilt one by one on the driver (~6 µs a symbol on the two sides) though
the driver acts on a few of them (BUY/SELL, open positions). Here a shard returns ONE
`DecisionBlock`: a structured array (`DEC_DTYPE`, one row per requested symbol, in request order)
plus the symbol table, the few rows' typed extras (features of BUY/SELL and requested symbols,
an SDK primary's record) and one `VariantColumns` of every shadow row. Ray pickles a handful of
compact columns (`cluster.column_wire`) instead of 500 objects; `TickDecisions` (the
`TickResult.decisions` mapping) builds a `ShardDecision` only for the rows someone reads
(`block.record(i)`, equal field for field to the per-row record the shard made), and ranks,
counts statuses and finds history gaps on the arrays.

Codes: status = index in `STATUSES`; signal and confidence as `strategies.sdk.strategy`'s
SIGNAL_CODES / CONFIDENCE_CODES; entry kind as `strategies.signals_columns.KIND_CODES`; btc
+1 / 0 / -1 for True / False / None; `t` is valid only where `has_t`. Treat `rows` as read-only
(records read from it are cached). Pure (no I/O).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, ItemsView, Iterator, Mapping, Sequence, ValuesView
from dataclasses import dataclass, field, fields
from operator import attrgetter
from typing import TYPE_CHECKING, Any

import numpy as np

from cluster import column_wire
from cluster.records import (
    ShardDecision,
    ShardStatus,
    VariantColumns,
    VariantDecision,
    VariantRows,
    collect_rows,
    make_decision,
    no_signal,
    pack_variant,
    unpack_variant,
)
from strategies.sdk.strategy import CONFIDENCE_CODES, SIGNAL_CODES
from strategies.signals import SignalFeatures
from strategies.signals_columns import KIND_CODES

if TYPE_CHECKING:
    from cluster.mei_rows import Neutral

__all__ = ["DEC_DTYPE", "STATUSES", "DecisionBlock", "TickDecisions"]

DEC_DTYPE = np.dtype([("key", "<i8"), ("t", "<i8"), ("score", "<f8"), ("vstart", "<i4"), ("vstop", "<i4"),
                      ("shard", "<i4"), ("status", "i1"), ("signal", "i1"), ("confidence", "i1"),
                      ("kind", "i1"), ("btc", "i1"), ("has_t", "?"), ("gap", "?")])
STATUSES: tuple[ShardStatus, ...] = tuple(ShardStatus)
STATUS_CODES = {s: i for i, s in enumerate(STATUSES)}
OK_CODE = STATUS_CODES[ShardStatus.OK]
_SIGNAL_OF = {c: s for s, c in SIGNAL_CODES.items()}
_CONFIDENCE_OF = {c: s for s, c in CONFIDENCE_CODES.items()}
_KIND_OF = {c: k for k, c in KIND_CODES.items()}
_BTC_OF = {1: True, 0: False, -1: None}
_BTC_CODE = {True: 1, False: 0, None: -1}
_RANGES = (("status", 0, len(STATUSES) - 1), ("signal", -1, 1), ("confidence", 0, 2),
           ("kind", min(KIND_CODES.values()), max(KIND_CODES.values())), ("btc", -1, 1))
_FEATURE_COUNT = len(fields(SignalFeatures))
_GAP = attrgetter("history_gap")
_FEATURE_VALUES = attrgetter(*(f.name for f in fields(SignalFeatures)))  # features -> tuple, field order


def row_of(d: ShardDecision, span: tuple[int, int]) -> tuple[Any, ...]:
    """`d` as one DEC_DTYPE row (its variants at `span` of the block's VariantColumns)."""
    return (d.candle_key, 0 if d.t is None else d.t, d.score, span[0], span[1], d.shard,
            STATUS_CODES[d.status],
            SIGNAL_CODES[d.signal], CONFIDENCE_CODES[d.confidence], KIND_CODES[d.entry_kind],
            _BTC_CODE[d.btc_bullish], d.t is not None, d.history_gap)


@dataclass(frozen=True, slots=True, eq=False)
class DecisionBlock:
    """One shard's records of one tick, columnar (see the module docstring).

    `features` / `primaries`: {row: packed SignalFeatures values / packed VariantDecision} for the
    rows that carry one. `validate()` runs at the seam (the driver), so a malformed block fails
    there instead of trading a wrong record.
    """

    symbols: tuple[str, ...]
    rows: np.ndarray
    variants: VariantColumns = field(default_factory=VariantColumns.empty)
    features: Mapping[int, tuple[float | bool, ...]] = field(default_factory=dict)
    primaries: Mapping[int, tuple[object, ...]] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.symbols)

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickle `rows` column by column in compact form (`cluster.column_wire`; `variants` does
        the same): a 500-symbol x 8-variant reply shrinks from ~224 KB to well under Ray's 100 KiB
        inline-return limit, so it skips the object store."""
        return (_unpickle_block, (self.symbols, column_wire.pack(self.rows), self.variants,
                                  dict(self.features), dict(self.primaries)))

    @classmethod
    def from_records(cls, records: Sequence[ShardDecision]) -> DecisionBlock:
        """The block of per-symbol records, in order (the reference the shard's columns must equal)."""
        variants, spans = collect_rows([r.variants for r in records], [r.symbol for r in records])
        rows = np.array([row_of(r, s) for r, s in zip(records, spans, strict=True)], dtype=DEC_DTYPE)
        return cls(tuple(r.symbol for r in records), rows.reshape(len(records)), variants,
                   {i: pack_features(r.features) for i, r in enumerate(records) if r.features is not None},
                   {i: pack_variant(r.primary) for i, r in enumerate(records) if r.primary is not None})

    @classmethod
    def failed(cls, batch: Mapping[str, int], status: ShardStatus, shard: int) -> DecisionBlock:
        """The fail-closed block: every symbol of `batch` a `no_signal` with `status`."""
        return cls.from_records([no_signal(s, k, status, shard) for s, k in batch.items()])

    def validate(self) -> None:
        """Raise ValueError unless rows, codes, spans and extras are consistent."""
        rows, n = self.rows, len(self.symbols)
        if not isinstance(rows, np.ndarray) or rows.dtype != DEC_DTYPE or rows.shape != (n,):
            raise ValueError(f"DecisionBlock.rows must be {n} DEC_DTYPE rows, got {rows!r:.80}")
        if not isinstance(self.variants, VariantColumns):
            raise ValueError(f"DecisionBlock.variants: a {type(self.variants).__name__}, not VariantColumns")
        self.variants.validate()
        if n:
            for column, low, high in _RANGES:
                values = rows[column]
                if values.min() < low or values.max() > high:
                    raise ValueError(f"DecisionBlock: a {column} code is outside {low}..{high}")
            start, stop = rows["vstart"], rows["vstop"]
            if start.min() < 0 or (stop < start).any() or stop.max() > len(self.variants):
                raise ValueError("DecisionBlock: a variant span is outside the variant block")
        for name, extras in (("features", self.features), ("primaries", self.primaries)):
            if any(not 0 <= i < n for i in extras):
                raise ValueError(f"DecisionBlock: a {name} row is outside the block")
        if any(len(v) != _FEATURE_COUNT for v in self.features.values()):
            raise ValueError("DecisionBlock: a features tuple does not match SignalFeatures")

    def record(self, i: int, values: tuple[Any, ...] | None = None) -> ShardDecision:
        """Row i as the `ShardDecision` the shard's per-row path makes (`values`: row i as a tuple,
        when the caller already converted the rows, e.g. `rows.tolist()` once for many reads)."""
        (key, t, score, start, stop, shard, status, signal, conf, kind, btc, has_t, gap) = (
            self.rows[i].item() if values is None else values)
        features = self.features.get(i)
        primary = self.primaries.get(i)
        return make_decision(self.symbols[i], key, STATUSES[status], _SIGNAL_OF[signal], _CONFIDENCE_OF[conf],
                             score, t if has_t else None, _BTC_OF[btc], gap, shard, _KIND_OF[kind],
                             None if features is None else SignalFeatures(*features),
                             VariantRows(self.variants, start, stop) if stop > start else (),
                             None if primary is None else unpack_variant(primary))

    def records(self) -> list[ShardDecision]:
        return [self.record(i, v) for i, v in enumerate(self.rows.tolist())]

    def actionable_rows(self) -> np.ndarray:
        """Rows that are a real BUY/SELL on the requested candle (`ShardDecision.actionable`)."""
        rows = self.rows
        return np.flatnonzero((rows["status"] == OK_CODE) & (rows["signal"] != 0))

    def gap_symbols(self) -> list[str]:
        return [self.symbols[i] for i in np.flatnonzero(self.rows["gap"]).tolist()]

    def status_counts(self) -> Counter[ShardStatus]:
        counts = np.bincount(self.rows["status"].astype(np.int64), minlength=len(STATUSES)).tolist()
        return Counter({STATUSES[i]: c for i, c in enumerate(counts) if c})


def _unpickle_block(symbols: tuple[str, ...], packed: tuple[Any, ...], variants: VariantColumns,
                    features: dict[int, tuple[float | bool, ...]], primaries: dict[int, tuple[object, ...]],
                    ) -> DecisionBlock:
    return DecisionBlock(symbols, column_wire.unpack(packed, DEC_DTYPE), variants, features, primaries)


def pack_features(features: SignalFeatures | None) -> tuple[float | bool, ...] | None:
    return None if features is None else _FEATURE_VALUES(features)


class TickDecisions(Mapping[str, ShardDecision]):
    """Every requested symbol's record, in request order, read from the shards' blocks on access.

    `loose` holds records made on the driver (a late, dead or busy shard's fail-closed ones); a
    symbol in neither fails closed (STRATEGY_ERROR), as `cluster.executor.complete` did. A record
    is built once and then kept, so repeated reads give the same object.
    """

    def __init__(self, batch: Mapping[str, int], blocks: Sequence[DecisionBlock] = (),
                 loose: Mapping[str, ShardDecision] | None = None) -> None:
        self._batch = batch
        self._blocks = tuple(blocks)
        self._loose = dict(loose or {})
        self._where: dict[str, tuple[DecisionBlock, int]] | None = None
        self._values: dict[int, list[tuple[Any, ...]]] = {}  # id(block) -> its rows as tuples, on first read
        self._all: dict[str, ShardDecision] | None = None  # every record, once someone iterates them all
        self._made: dict[str, ShardDecision] = {}

    def _index(self) -> dict[str, tuple[DecisionBlock, int]]:
        if self._where is None:
            where: dict[str, tuple[DecisionBlock, int]] = {}
            for block in self._blocks:
                where.update(zip(block.symbols, ((block, i) for i in range(len(block))), strict=True))
            self._where = where
        return self._where

    @property
    def blocks(self) -> tuple[DecisionBlock, ...]:
        """The shards' replies this mapping reads (the benchmark sizes them)."""
        return self._blocks

    def __getitem__(self, symbol: str) -> ShardDecision:
        made = self._made.get(symbol)
        if made is not None:
            return made
        key = self._batch[symbol]  # KeyError for a symbol that was not asked
        record = self._loose.get(symbol)
        if record is None:
            at = self._index().get(symbol)
            record = no_signal(symbol, key, ShardStatus.STRATEGY_ERROR) if at is None else self._read(*at)
        self._made[symbol] = record
        return record

    def _read(self, block: DecisionBlock, i: int) -> ShardDecision:
        values = self._values.get(id(block))
        if values is None:  # one C-level conversion per block, not one numpy scalar per field
            values = self._values[id(block)] = block.rows.tolist()
        return block.record(i, values[i])

    def _every(self) -> dict[str, ShardDecision]:
        """Every record in request order (each block converted once; the engine reads them all)."""
        if self._all is None:
            made, batch, loose = self._made, self._batch, self._loose
            for block in self._blocks:
                values = self._values.get(id(block)) or block.rows.tolist()
                for i, (symbol, row) in enumerate(zip(block.symbols, values, strict=True)):
                    if symbol not in made and symbol in batch and symbol not in loose:
                        made[symbol] = block.record(i, row)
            self._all = {s: made.get(s) or self[s] for s in batch}
        return self._all

    def items(self) -> ItemsView[str, ShardDecision]:
        return self._every().items()

    def values(self) -> ValuesView[ShardDecision]:
        return self._every().values()

    def __iter__(self) -> Iterator[str]:
        return iter(self._batch)

    def __len__(self) -> int:
        return len(self._batch)

    def __contains__(self, symbol: object) -> bool:
        return symbol in self._batch

    def ranked(self) -> list[ShardDecision]:
        """The actionable records, best score first, ties by symbol (`records.rank_decisions`)."""
        picked: list[ShardDecision] = [d for d in self._loose.values() if d.actionable]
        for block in self._blocks:
            for i in block.actionable_rows().tolist():
                symbol = block.symbols[i]
                if symbol in self._batch and symbol not in self._loose:
                    made = self._made.get(symbol)
                    if made is None:
                        made = self._made[symbol] = block.record(i)
                    picked.append(made)
        return sorted(picked, key=lambda d: (-d.score, d.symbol))

    def status_counts(self) -> Counter[ShardStatus]:
        """Records per status, on the arrays (what `Counter(d.status for d in values())` gives)."""
        counts: Counter[ShardStatus] = Counter(d.status for d in self._loose.values())
        covered = len(self._loose)
        for block in self._blocks:
            counts.update(block.status_counts())
            covered += len(block)
        if covered != len(self._batch):  # a block/batch mismatch: count record by record
            return Counter(d.status for d in self.values())
        return counts

    def gap_symbols(self) -> list[str]:
        out = [s for s, d in self._loose.items() if d.history_gap]
        for block in self._blocks:
            out.extend(s for s in block.gap_symbols() if s in self._batch and s not in self._loose)
        return out

    def __repr__(self) -> str:
        return f"TickDecisions({len(self)} symbols, {len(self._blocks)} blocks)"


def assemble(batch: Mapping[str, int], neutral: Sequence[Neutral],
             record: Callable[[str, int], ShardDecision], shard: int) -> DecisionBlock:
    """A shard's block in batch order: each `neutral` group (mei_alpha_v1 NEUTRALs decided in the
    columns, with each symbol's shadow rows) written as arrays, every other symbol's `record(symbol,
    key)` (the per-symbol path) row by row.

    A neutral row holds what `ShardCore._decide` puts in that record: status OK, signal NEUTRAL,
    confidence LOW, score 0.0, no features, no primary; t, anchor trend, entry kind from the group.
    """
    symbols = tuple(batch)
    n = len(symbols)
    rows = np.zeros(n, dtype=DEC_DTYPE)
    seqs: list[Sequence[VariantDecision]] = [()] * n
    shadows = False  # any shadow row at all (else no per-symbol span pass)
    if neutral:
        pos = dict(zip(symbols, range(n), strict=True))
        covered = np.zeros(n, dtype=bool)
        for group, variants in neutral:
            names = group.symbols
            at = np.fromiter(map(pos.__getitem__, names), dtype=np.int64, count=len(names))
            part = rows[at]
            part["key"] = np.fromiter(map(batch.__getitem__, names), dtype=np.int64, count=len(names))
            part["t"], part["has_t"], part["btc"], part["kind"] = group.t, True, group.btc, group.kind
            part["gap"] = np.fromiter(map(_GAP, group.states), dtype=bool, count=len(names))
            part["status"], part["shard"] = OK_CODE, shard
            rows[at] = part
            covered[at] = True
            if any(variants):
                shadows = True
                for i, v in zip(at.tolist(), variants, strict=True):
                    seqs[i] = v
        keys = list(batch.values())
        slow = {i: record(symbols[i], keys[i]) for i in np.flatnonzero(~covered).tolist()}
    else:
        slow = {i: record(s, k) for i, (s, k) in enumerate(batch.items())}
    if slow:
        rows[list(slow)] = np.array([row_of(r, (0, 0)) for r in slow.values()], dtype=DEC_DTYPE)
        for i, r in slow.items():
            if r.variants:
                seqs[i], shadows = r.variants, True
    variants, spans = collect_rows(seqs, symbols) if shadows else (VariantColumns.empty(), [])
    if len(variants):
        bounds = np.array(spans, dtype=np.int32).reshape(n, 2)
        rows["vstart"], rows["vstop"] = bounds[:, 0], bounds[:, 1]
    features = {i: pack_features(r.features) for i, r in slow.items() if r.features is not None}
    primaries = {i: pack_variant(r.primary) for i, r in slow.items() if r.primary is not None}
    return DecisionBlock(symbols, rows, variants, features, primaries)
