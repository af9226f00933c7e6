"""Which candles a shard reads for its symbols (and its anchor), and which of a read it has not
applied yet. Pure, except `read_store`, the one store call of a chunk."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from cluster.anchor import AnchorTrend
from cluster.candle_codec import BarsBatch
from cluster.shard_store import CandleRead
from strategies.candle import Candle


def resume_view(read: CandleRead, requested: int | None, own: int | None) -> tuple[list[Candle], bool]:
    """Return (candles after `own`, continuity lost) from a read made from `requested` <= `own`.

    `requested` differs from `own` only when the anchor is also a traded symbol of the shard and
    one wider read served both. Lost continuity means the store trimmed candles the state never
    saw; an empty read is not a loss (nothing to rebuild from yet).
    """
    if own is None:
        return list(read.candles), False
    if requested == own:
        return list(read.candles), bool(read.candles) and not read.resume_found
    for index, candle in enumerate(read.candles):
        if candle.t == own:
            return list(read.candles[index + 1:]), False
        if candle.t > own:
            break
    fresh = [c for c in read.candles if c.t > own]
    return fresh, bool(fresh)


def chunk_reads(reads: Mapping[str, int | None], cold_chunk: int) -> list[dict[str, int | None]]:
    """Split reads: every warm symbol in the first chunk, cold ones (no state) cold_chunk at a time."""
    warm = {s: r for s, r in reads.items() if r is not None}
    cold = [s for s, r in reads.items() if r is None]
    chunks = [warm]
    chunks += [dict.fromkeys(cold[i: i + cold_chunk]) for i in range(0, len(cold), cold_chunk)]
    return chunks


class BatchReads(Mapping[str, CandleRead]):
    """A `BarsBatch` seen as {symbol: CandleRead} (built on access: the fast path never asks)."""

    __slots__ = ("batch",)

    def __init__(self, batch: BarsBatch) -> None:
        self.batch = batch

    def __getitem__(self, symbol: str) -> CandleRead:
        found, bars = self.batch.get(self.batch.index[symbol])
        return CandleRead(found, bars=bars)

    def __iter__(self) -> Iterator[str]:
        return iter(self.batch.symbols)

    def __len__(self) -> int:
        return len(self.batch)


def read_store(store: Any, request: Mapping[str, int | None]) -> Mapping[str, CandleRead]:
    """One store read of `request`; a `BatchReads` (all records in one array) when the store can."""
    if not request:
        return {}
    bulk = getattr(store, "read_batch", None)
    return BatchReads(bulk(request)) if bulk is not None else store.read_since(request)


def add_anchor(anchor: AnchorTrend, symbol: str, request: dict[str, int | None], newest: int) -> bool:
    """Add the anchor's read to `request` when it is behind `newest` (the newest open time the tick
    applies); whether it was. A traded anchor gets the wider of the two reads."""
    if anchor.last_close_ms is not None and anchor.last_close_ms >= newest:
        return False
    resume = anchor.last_t
    if symbol in request:
        other = request[symbol]
        resume = None if resume is None or other is None else min(resume, other)
    request[symbol] = resume
    return True


def advance_anchor(anchor: AnchorTrend, view: tuple[list[Any], bool], key: int) -> AnchorTrend:
    """The trend after the view's candles up to open time `key`; rebuilt, flagged, on a history gap."""
    fresh, gap = view
    if gap:
        anchor = AnchorTrend()
        anchor.history_gap = True
    for candle in fresh:
        if candle.t > key:
            break
        anchor.update(candle.t, candle.close_ms, candle.c)
    return anchor
