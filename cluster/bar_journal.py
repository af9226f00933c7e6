"""The closed-bar journal's entry format: what `cluster.redis_layout` appends per candle write, and
what a shard makes of the entries written since its cursor.

Why: a shard's steady tick used to prove, per symbol, that none of its recently applied candles
was rewritten by re-reading them (a per-key script call: most of Redis' CPU per tick). Every write
of closed candles also appends ONE entry to a per-interval stream (`RedisLayout.journal_key`) in
the same pipeline, after the candles and before the close key and notification. A reader holding
the id of the last entry it consumed reads everything since in one `XRANGE cursor +`: a symbol
with exactly one new record there gained exactly that candle and nothing else changed; one with
any other count was touched otherwise (a rewrite, several candles, a trim) and must be re-read.

Entry fields (the layout owns the key; this module owns the fields):
``s`` JSON array of the symbols written; ``n`` little-endian int32 per symbol, its record count;
``r`` the records concatenated in symbol order (`cluster.candle_codec`, 64 bytes each). A count of
0 means "touched, records not journaled": trims, symbols written with several candles at once
(gap fills) and writes too large to copy; readers must re-read those symbols. Pure: no I/O.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cluster.candle_codec import EMPTY_BARS, RECORD_BYTES, LayoutError, decode_bars

MAX_JOURNAL_RECORDS = 20_000  # records per entry copied into the journal; larger writes journal counts 0
_COUNTS = np.dtype("<i4")


def encode_entry(symbols: Sequence[str], counts: Sequence[int], records: bytes) -> dict[str, bytes]:
    """The stream fields of one write: `records` are the symbols' records in order, `counts` each one's.

    Only a symbol's single record is journaled: one written with several (a gap fill) gets count 0
    (readers re-read it either way), and writes of more than MAX_JOURNAL_RECORDS records keep only
    the symbols, so a backfill does not copy megabytes into the journal."""
    total = int(sum(counts))
    if len(symbols) != len(counts) or len(records) != total * RECORD_BYTES:
        raise ValueError(f"journal entry: {len(symbols)} symbols, {len(counts)} counts, "
                         f"{len(records)} record bytes for {total} records")
    if total > MAX_JOURNAL_RECORDS:
        counts, records = [0] * len(symbols), b""
    elif total != len(counts) or any(c != 1 for c in counts):  # only a symbol's one record is of use
        starts = np.cumsum([0, *counts[:-1]]).tolist()
        records = b"".join(records[at * RECORD_BYTES: (at + 1) * RECORD_BYTES]
                           for at, count in zip(starts, counts, strict=True) if count == 1)
        counts = [1 if c == 1 else 0 for c in counts]
    return {"s": json.dumps(list(symbols), separators=(",", ":")).encode(),
            "n": np.asarray(counts, dtype=_COUNTS).tobytes(), "r": records}


def entry_id(raw: Any) -> str:
    return raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)


@dataclass(slots=True)
class JournalRead:
    """What the journal says since a cursor, for the shard's steady tick.

    `last_id` is the newest entry seen (the next cursor; None: the journal is empty or absent).
    `intact` is the proof that nothing was trimmed since the cursor (its entry was still there);
    without it (a trim, or an entry that does not parse: `problem`) `one`/`other` are empty and
    every symbol must be re-read, and the cursor moves on to `last_id`. `one` maps each symbol
    written exactly once, with exactly one record, to its row in `bars`; `other` holds every
    other symbol written (several records, several writes, or counts 0).
    """

    last_id: str | None
    intact: bool
    problem: str | None = None  # why an entry since the cursor could not be used (then not intact)
    one: dict[str, int] = field(default_factory=dict)
    other: set[str] = field(default_factory=set)
    bars: np.ndarray = field(default_factory=lambda: EMPTY_BARS)


def _fields(fields: Mapping[Any, Any], where: str) -> tuple[list[str], np.ndarray, bytes]:
    got = {entry_id(k): v for k, v in fields.items()}
    try:
        symbols = json.loads(got["s"])
        counts = np.frombuffer(got["n"], dtype=_COUNTS)
        raw = bytes(got["r"])
    except (KeyError, ValueError, TypeError) as exc:
        raise LayoutError(f"{where}: malformed journal entry ({exc})") from exc
    if (not isinstance(symbols, list) or not set(map(type, symbols)) <= {str}
            or len(symbols) != len(counts) or (counts < 0).any()
            or len(raw) != int(counts.sum()) * RECORD_BYTES):
        raise LayoutError(f"{where}: journal entry's symbols, counts and records disagree")
    return symbols, counts, raw


def _entry_rows(symbols: list[str], counts: np.ndarray, base: int) -> tuple[dict[str, int], set[str]]:
    """({symbol: row} of the entry's one-record symbols, its other symbols); rows start at `base`."""
    if len(set(symbols)) != len(symbols):  # one symbol twice in one write: re-read them all
        return {}, set(symbols)
    if bool((counts == 1).all()):  # the steady write: C-speed
        return dict(zip(symbols, range(base, base + len(symbols)), strict=True)), set()
    last = (np.cumsum(counts) - 1 + base).tolist()
    one: dict[str, int] = {}
    other: set[str] = set()
    for symbol, count, row in zip(symbols, counts.tolist(), last, strict=True):
        if count == 1:
            one[symbol] = row
        else:
            other.add(symbol)
    return one, other


def parse_since(entries: Sequence[tuple[Any, Mapping[Any, Any]]], cursor: str, where: str) -> JournalRead:
    """The `JournalRead` of an ``XRANGE key cursor +`` reply (the cursor entry included, first).

    An entry that does not have the format makes the whole read unusable (not intact, `problem`
    names `where` and the entry): every symbol is re-read and the cursor still moves past it."""
    if not entries:
        return JournalRead(None, False)
    last_id = entry_id(entries[-1][0])
    if entry_id(entries[0][0]) != cursor:  # trimmed (or the stream was recreated) past the cursor
        return JournalRead(last_id, False)
    try:
        return _parse(entries[1:], last_id, where)
    except LayoutError as exc:
        return JournalRead(last_id, False, str(exc))


def _parse(entries: Sequence[tuple[Any, Mapping[Any, Any]]], last_id: str, where: str) -> JournalRead:
    one: dict[str, int] = {}
    other: set[str] = set()
    blobs: list[bytes] = []
    base = 0
    for raw_id, fields in entries:
        symbols, counts, raw = _fields(fields, f"{where} entry {entry_id(raw_id)}")
        got, touched = _entry_rows(symbols, counts, base)
        other |= touched
        other |= got.keys() & one.keys()  # written again since: not one record any more
        one.update(got)
        blobs.append(raw)
        base += len(raw) // RECORD_BYTES
    for symbol in other:
        one.pop(symbol, None)
    bars = decode_bars(b"".join(blobs), where) if base else EMPTY_BARS
    return JournalRead(last_id, True, None, one, other, bars)
