"""Columnar variant records (`cluster.records.VariantColumns` / `VariantRows`): what a shard's tick
returns for its (symbol, variant) rows must come back as the same `VariantDecision`s, field for field,
through the shard's `DecisionBlock` and pickle protocol 5 with out-of-band buffers (what Ray does); a
malformed block fails at the seam; tables of different shards merge without mixing names up."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

from cluster.decision_block import DecisionBlock
from cluster.records import (
    NO_FAULT,
    ROW_DTYPE,
    ShardDecision,
    ShardStatus,
    VariantColumns,
    VariantDecision,
    VariantRows,
    gather_rows,
)
from strategies.enums import Confidence, Signal


def _v(name: str, signal: Signal = Signal.NEUTRAL, *, score: float = 0.0, atr: float = 1.5,
       fault: str | None = None, detail: str = "", exit_long: bool = False) -> VariantDecision:  # fmt: skip
    conf = Confidence.LOW if signal is Signal.NEUTRAL else Confidence.HIGH
    return VariantDecision(name, "donchian_breakout", signal, conf, score, 101.25, atr, exit_long, False,
                           fault, detail)


ETH = (_v("a"), _v("b", Signal.BUY, score=2.5, detail="breakout_up"), _v("c", exit_long=True))
SOL = (_v("a", Signal.SELL, score=0.75, detail="breakout_down"), _v("b", fault="exception", detail="boom"),
       _v("c", atr=math.nan))


def _records() -> list[ShardDecision]:
    return [ShardDecision("ETH", 7, ShardStatus.OK, variants=ETH),
            ShardDecision("BTC", 7, ShardStatus.MISSING_CANDLE),
            ShardDecision("SOL", 7, ShardStatus.OK, variants=SOL)]


def _unpack(block: DecisionBlock) -> list[ShardDecision]:
    """What the driver does with a shard's reply: check it at the seam, then read its records."""
    block.validate()
    return block.records()


def _same(got: tuple[VariantDecision, ...], want: tuple[VariantDecision, ...]) -> bool:
    """Equal field for field, NaN equal to NaN (an ATR may be missing)."""
    def norm(v: VariantDecision) -> tuple[object, ...]:
        return tuple("nan" if isinstance(x, float) and math.isnan(x) else x for x in (
            v.variant, v.strategy, v.signal, v.confidence, v.score, v.close, v.entry_atr, v.exit_long,
            v.exit_short, v.fault, v.detail))
    return [norm(v) for v in got] == [norm(v) for v in want]


def test_pack_unpack_through_pickle_gives_the_same_records_as_views() -> None:
    buffers: list[pickle.PickleBuffer] = []
    blob = pickle.dumps(DecisionBlock.from_records(_records()), protocol=5, buffer_callback=buffers.append)
    # the rows travel as compact column forms inside the stream (cluster.column_wire), not as
    # out-of-band arrays: a shard's reply then stays small enough for Ray to return it inline
    assert buffers == []
    back = _unpack(pickle.loads(blob, buffers=[b.raw() for b in buffers]))
    assert [r.symbol for r in back] == ["ETH", "BTC", "SOL"]
    eth, btc, sol = back
    assert isinstance(eth.variants, VariantRows) and eth.variants.block is sol.variants.block
    assert btc.variants == ()
    assert _same(tuple(eth.variants), ETH) and _same(tuple(sol.variants), SOL)
    assert eth.variants[1].signal is Signal.BUY and eth.variants[-1].exit_long is True
    assert sol.variants[1].fault == "exception" and sol.variants[1].detail == "boom"
    assert eth.variants == ETH and eth == _records()[0]  # a view equals the tuple it came from


def test_a_malformed_block_fails_at_the_seam() -> None:
    reply = DecisionBlock.from_records(_records())
    block = reply.variants
    rows = block.rows.copy()
    rows["variant"][0] = len(block.variants)  # names a variant the table does not have
    bad = object.__new__(VariantColumns)
    for name in ("symbols", "variants", "strategies", "texts"):
        object.__setattr__(bad, name, getattr(block, name))
    object.__setattr__(bad, "rows", rows)
    with pytest.raises(ValueError, match="variant index"):
        _unpack(DecisionBlock(reply.symbols, reply.rows, bad))
    codes = block.rows.copy()
    codes["signal"][0] = 3
    with pytest.raises(ValueError, match="signal code"):
        VariantColumns(block.symbols, block.variants, block.strategies, block.texts, codes)
    spans = reply.rows.copy()
    spans["vstop"][0] = len(block) + 1
    with pytest.raises(ValueError, match="variant span"):
        _unpack(DecisionBlock(reply.symbols, spans, block))


def test_concat_and_gather_merge_tables_of_different_shards() -> None:
    one = VariantColumns.from_records(("ETH", v) for v in ETH)
    two = VariantColumns.from_records([("SOL", v) for v in SOL[::-1]])  # other table order
    assert one.variants != two.variants
    both = VariantColumns.concat([one, two])
    assert [both.key(i) for i in range(len(both))] == [
        ("a", "ETH"), ("b", "ETH"), ("c", "ETH"), ("c", "SOL"), ("b", "SOL"), ("a", "SOL")]
    assert _same(tuple(both.decision(i) for i in range(6)), ETH + SOL[::-1])
    # gather: views of two blocks plus a plain tuple, only the rows of the decisions given
    decisions = [ShardDecision("ETH", 1, ShardStatus.OK, variants=VariantRows(one, 1, 3)),
                 ShardDecision("SOL", 1, ShardStatus.OK, variants=VariantRows(two, 0, 3)),
                 ShardDecision("XRP", 1, ShardStatus.OK, variants=(_v("z", Signal.BUY),))]
    got = gather_rows(decisions)
    keys = {got.key(i): got.decision(i) for i in range(len(got))}
    assert set(keys) == {("b", "ETH"), ("c", "ETH"), ("a", "SOL"), ("b", "SOL"), ("c", "SOL"), ("z", "XRP")}
    assert keys[("b", "SOL")].fault == "exception" and keys[("z", "XRP")].signal is Signal.BUY
    assert got.signal_symbols() == {"ETH", "SOL", "XRP"}
    assert got.index_of([("a", "SOL"), ("a", "ETH"), ("q", "SOL")]) == {("a", "SOL"): got.index_of(
        [("a", "SOL")])[("a", "SOL")]}


def test_rows_are_one_structured_array_no_object_per_row() -> None:
    block = VariantColumns.from_records(("ETH", v) for v in ETH)
    assert block.rows.dtype == ROW_DTYPE and block.rows.dtype.hasobject is False
    assert block.rows["fault"].tolist() == [NO_FAULT] * 3
    assert np.asarray(block.rows["signal"]).tolist() == [0, 1, 0]
    assert len(VariantColumns.empty()) == 0 and _unpack(DecisionBlock.from_records([])) == []
