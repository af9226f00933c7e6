"""The closed-bar journal's entry format (cluster.bar_journal): what a shard may trust from it.

A symbol is in `one` only when the entries since the cursor hold exactly one record of it; every
other write (several records, several writes, a trim, a duplicate) lands in `other`, and a
trimmed cursor or a malformed entry makes the whole read unusable.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from cluster import bar_journal
from cluster.bar_journal import encode_entry, parse_since
from cluster.candle_codec import CANDLE_DTYPE, encode_candles
from strategies.candle import Candle

IV = 60_000


def _candle(i: int, close: float = 100.0) -> Candle:
    return Candle(i * IV, i * IV + IV - 1, close, close + 1, close - 1, close, 5.0, 3)


def _entry(batch: dict[str, list[Candle]]) -> dict[str, bytes]:
    return encode_entry(list(batch), [len(c) for c in batch.values()],
                        b"".join(encode_candles(c) for c in batch.values()))


def _stream(*entries: dict[str, Any]) -> list[tuple[bytes, dict[bytes, Any]]]:
    """Entries as redis-py returns an XRANGE reply (bytes ids and field names), ids 1-0, 2-0, ..."""
    return [(f"{i + 1}-0".encode(), {k.encode(): v for k, v in e.items()}) for i, e in enumerate(entries)]


def _negative_volume() -> bytes:
    record = np.frombuffer(encode_candles([_candle(1)]), dtype=CANDLE_DTYPE).copy()
    record["v"] = -1.0
    return record.tobytes()


CURSOR = {"s": b"[]", "n": b"", "r": b""}  # the entry the reader consumed last (first of the reply)


def test_steady_write_maps_each_symbol_to_its_one_record() -> None:
    batch = {"BTC": [_candle(7, 50.0)], "kPEPE": [_candle(7, 0.01)], "xyz:TSLA": [_candle(7, 300.0)]}
    got = parse_since(_stream(CURSOR, _entry(batch)), "1-0", "j")
    assert got.intact and got.last_id == "2-0" and got.problem is None and not got.other
    assert set(got.one) == set(batch)
    for symbol, candles in batch.items():
        row = got.bars[got.one[symbol]]
        assert row.tobytes() == encode_candles(candles)


def test_rows_follow_records_across_entries_and_counts() -> None:
    first = {"A": [_candle(1), _candle(2)], "B": [_candle(2, 7.0)]}  # A gap-filled: two records
    second = {"C": [_candle(3, 9.0)], "D": [_candle(3, 11.0)]}
    fields = _entry(first)
    assert np.frombuffer(fields["n"], dtype="<i4").tolist() == [0, 1]  # a gap fill's records are of no use
    assert fields["r"] == encode_candles([_candle(2, 7.0)])
    got = parse_since(_stream(CURSOR, fields, _entry(second)), "1-0", "j")
    assert got.other == {"A"} and set(got.one) == {"B", "C", "D"}
    assert float(got.bars[got.one["B"]]["c"]) == 7.0  # after A's two records
    assert float(got.bars[got.one["C"]]["c"]) == 9.0 and float(got.bars[got.one["D"]]["c"]) == 11.0


@pytest.mark.parametrize("second", [
    {"A": [_candle(1, 99.0)]},  # written again (a correction of the same bar): two writes
    {"A": [_candle(2)]},  # the next bar in a later write: two records since the cursor
], ids=["rewrite", "two_writes"])
def test_a_symbol_written_twice_since_the_cursor_is_never_one(second: dict[str, list[Candle]]) -> None:
    first = _entry({"A": [_candle(1)], "B": [_candle(1)]})
    got = parse_since(_stream(CURSOR, first, _entry(second)), "1-0", "j")
    assert got.intact and "A" in got.other and "A" not in got.one and "B" in got.one


def test_a_trim_or_an_oversized_write_journals_the_symbol_without_records() -> None:
    trim = encode_entry(["A"], [0], b"")
    assert parse_since(_stream(CURSOR, trim), "1-0", "j").other == {"A"}
    many = {"B": [_candle(i) for i in range(bar_journal.MAX_JOURNAL_RECORDS + 1)]}
    fields = _entry(many)
    assert fields["r"] == b"" and np.frombuffer(fields["n"], dtype="<i4").tolist() == [0]
    got = parse_since(_stream(CURSOR, fields), "1-0", "j")
    assert got.intact and got.other == {"B"} and not got.one and not len(got.bars)


def test_one_symbol_twice_in_one_entry_is_other() -> None:
    fields = encode_entry(["A", "A"], [1, 1], encode_candles([_candle(1), _candle(2)]))
    assert parse_since(_stream(CURSOR, fields), "1-0", "j").other == {"A"}


def test_a_trimmed_cursor_or_an_empty_stream_is_not_intact() -> None:
    entries = _stream(CURSOR, _entry({"A": [_candle(1)]}))
    gone = parse_since(entries, "0-5", "j")  # the cursor entry is not the first any more: trimmed
    assert (gone.intact, gone.last_id, gone.one, gone.other) == (False, "2-0", {}, set())
    empty = parse_since([], "1-0", "j")
    assert (empty.intact, empty.last_id) == (False, None)


@pytest.mark.parametrize("fields, why", [
    ({"s": b'["A"]', "n": np.asarray([2], "<i4").tobytes(), "r": encode_candles([_candle(1)])}, "disagree"),
    ({"s": b'["A","B"]', "n": np.asarray([1], "<i4").tobytes(), "r": encode_candles([_candle(1)])},
     "disagree"),
    ({"s": b'["A"]', "n": np.asarray([-1], "<i4").tobytes(), "r": b""}, "disagree"),
    ({"s": b"not json", "n": b"", "r": b""}, "malformed"),
    ({"s": b'["A"]', "n": b"\x01\x00\x00", "r": b""}, "malformed"),
    ({"s": b'["A"]', "r": b""}, "malformed"),
    ({"s": b'["A"]', "n": np.asarray([1], "<i4").tobytes(), "r": _negative_volume()}, "invalid candle"),
], ids=["count", "symbols", "negative", "json", "counts_bytes", "missing", "negative_volume"])
def test_a_malformed_entry_makes_the_read_unusable_and_names_it(fields: dict[str, bytes], why: str) -> None:
    good = _entry({"B": [_candle(1)]})
    got = parse_since(_stream(CURSOR, good, fields), "1-0", "aiq:journal:1m")
    assert not got.intact and not got.one and not got.other and got.last_id == "3-0"
    assert got.problem is not None and "aiq:journal:1m" in got.problem and why in got.problem


def test_encode_refuses_counts_that_do_not_match() -> None:
    with pytest.raises(ValueError, match="journal entry"):
        encode_entry(["A"], [2], encode_candles([_candle(1)]))
    with pytest.raises(ValueError, match="journal entry"):
        encode_entry(["A", "B"], [1], encode_candles([_candle(1)]))
