"""`cluster.column_wire`: a shard reply's arrays pickle compactly and come back bit for bit.

Why it matters: the compact form keeps a 500-symbol x 8-variant reply under Ray's 100 KiB inline
return limit (no object-store round trip), and parity with the batch path is bit-exact, so the
round trip must keep every bit of every float (NaN payloads, -0.0) and fail closed on a reply it
cannot read.
"""

from __future__ import annotations

import pickle
from dataclasses import fields

import numpy as np
import pytest

from cluster import column_wire
from cluster.decision_block import DEC_DTYPE, DecisionBlock
from cluster.records import ROW_DTYPE, VariantColumns
from strategies.signals import SignalFeatures

RAY_INLINE_LIMIT = 100 * 1024  # ray's max_direct_call_object_size default


def _forms(rows: np.ndarray) -> dict[str, int]:
    return {name: form[0] for name, form in zip(rows.dtype.names, column_wire.pack(rows)[2], strict=True)}


def _variant_rows(symbols: int, variants: int, rng: np.random.Generator) -> np.ndarray:
    """Shaped like a shard's shadow rows: grouped by symbol, close/ATR per symbol, few codes."""
    n = symbols * variants
    rows = np.zeros(n, dtype=ROW_DTYPE)
    rows["symbol"] = np.repeat(np.arange(symbols), variants)
    rows["variant"] = np.tile(np.arange(variants), symbols)
    rows["fault"] = -1
    rows["detail"] = rng.integers(0, 3, n)
    rows["score"] = np.where(rng.random(n) < 0.9, 0.0, rng.random(n))
    rows["close"] = np.repeat(rng.random(symbols) * 1000, variants)
    rows["entry_atr"] = np.repeat(rng.random(symbols), variants)
    rows["signal"] = rng.integers(-1, 2, n)
    rows["confidence"] = rng.integers(0, 3, n)
    rows["exit_long"] = rng.random(n) < 0.1
    return rows


def test_round_trip_is_bit_exact_for_every_form() -> None:
    rng = np.random.default_rng(7)
    rows = _variant_rows(50, 8, rng)
    rows["score"][:3] = [np.nan, -0.0, np.inf]
    payload = np.uint64(0x7FF8_0000_0000_0ABC).tobytes()  # a NaN with a payload
    rows["entry_atr"][40:48] = np.frombuffer(payload * 8, dtype="<f8")
    rows["strategy"] = 0
    back = column_wire.unpack(column_wire.pack(rows), ROW_DTYPE)
    assert back.tobytes() == rows.tobytes()
    assert back.flags.writeable
    forms = _forms(rows)
    assert forms["strategy"] == column_wire._CONST and forms["fault"] == column_wire._CONST
    assert forms["close"] == column_wire._RUNS and forms["symbol"] == column_wire._RUNS
    assert forms["detail"] == column_wire._DICT
    noise = np.zeros(64, dtype=[("x", "<f8")])
    noise["x"] = rng.random(64)
    assert _forms(noise) == {"x": column_wire._RAW}
    assert column_wire.unpack(column_wire.pack(noise), noise.dtype).tobytes() == noise.tobytes()


def test_empty_and_single_row() -> None:
    for n in (0, 1):
        rows = np.ones(n, dtype=DEC_DTYPE)
        assert column_wire.unpack(column_wire.pack(rows), DEC_DTYPE).tobytes() == rows.tobytes()


def test_a_reply_it_cannot_read_fails_closed() -> None:
    rows = _variant_rows(4, 2, np.random.default_rng(1))
    descr, n, forms = column_wire.pack(rows)
    with pytest.raises(ValueError, match="expected"):
        column_wire.unpack((descr, n, forms), DEC_DTYPE)  # another dtype
    bad = list(forms)
    bad[ROW_DTYPE.names.index("close")] = (column_wire._RAW, b"\0" * 8)  # wrong length
    with pytest.raises(ValueError, match="length"):
        column_wire.unpack((descr, n, tuple(bad)), ROW_DTYPE)
    bad[ROW_DTYPE.names.index("close")] = (column_wire._DICT, np.zeros(2, "<u8").tobytes(),
                                           np.full(n, 5, np.uint8).tobytes())  # code past the table
    with pytest.raises(ValueError, match="range"):
        column_wire.unpack((descr, n, tuple(bad)), ROW_DTYPE)
    bad[ROW_DTYPE.names.index("close")] = (9, b"")
    with pytest.raises(ValueError, match="unknown"):
        column_wire.unpack((descr, n, tuple(bad)), ROW_DTYPE)


def test_a_shard_sized_block_pickles_under_rays_inline_limit_and_round_trips() -> None:
    """500 symbols x 8 variants: raw arrays alone are ~214 KB; the block must stay inline."""
    rng = np.random.default_rng(3)
    symbols = tuple(f"S{i:04d}" for i in range(500))
    names = tuple(f"v{i}" for i in range(8))
    variants = VariantColumns(symbols, names, ("dc",), ("", "x", "y"), _variant_rows(500, 8, rng))
    rows = np.zeros(500, dtype=DEC_DTYPE)
    rows["key"], rows["t"], rows["status"] = 123, 100, 0
    rows["vstart"], rows["vstop"] = np.arange(500) * 8, np.arange(1, 501) * 8
    rows["score"][::50] = rng.random(10)
    block = DecisionBlock(symbols, rows, variants, {3: (0.25,) * len(fields(SignalFeatures))}, {})
    assert rows.nbytes + variants.rows.nbytes > 2 * RAY_INLINE_LIMIT
    data = pickle.dumps(block, protocol=5)
    assert len(data) < RAY_INLINE_LIMIT / 2
    back = pickle.loads(data)
    back.validate()
    assert back.symbols == symbols and back.rows.tobytes() == rows.tobytes()
    assert back.variants.rows.tobytes() == variants.rows.tobytes()
    assert (back.variants.variants, back.variants.texts) == (variants.variants, variants.texts)
    assert back.record(3) == block.record(3) and back.records() == block.records()


def test_unpickling_a_malformed_variant_block_raises() -> None:
    """VariantColumns validates on unpickle: an index outside its table never reaches the driver."""
    rows = _variant_rows(4, 2, np.random.default_rng(2))
    cols = VariantColumns(tuple("ABCD"), ("a", "b"), ("s",), ("", "x", "y"), rows)
    short = VariantColumns(tuple("ABCD"), ("a", "b"), ("s",), ("", "x", "y"), rows[:0])
    data = pickle.dumps(cols)
    assert pickle.loads(data).rows.tobytes() == rows.tobytes()
    object.__setattr__(short, "rows", rows)
    object.__setattr__(short, "variants", ("a",))  # variant index 1 now outside the table
    with pytest.raises(ValueError, match="variant"):
        pickle.loads(pickle.dumps(short))
