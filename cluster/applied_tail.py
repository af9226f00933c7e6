"""The last closed candles a shard applied to a symbol's state, to spot ones the store rewrote.

The sidecar rewrites a closed candle it already published when the venue's REST answer differs
(its final WS update came after the close, e.g. on a loaded host); its cross-check covers the
last TAIL_BARS (4) published candles (engine.sidecar.candles). A shard that applied the stale
bar must rebuild, or its indicators differ from a replay over the stored candles forever.

The candles are kept as the layout's 64-byte records (`cluster.candle_codec`), concatenated:
the steady-state fast path (`cluster.shard_fast`) compares a read's re-read records with them
byte for byte and stores the read's records as the new tail (the journal path,
`cluster.shard_journal`, shifts the journal's one new record in), with no `Candle` objects at all;
the general path still sees `Candle`s (`candles()`, `rewritten`).
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

import numpy as np

from cluster.candle_codec import CANDLE_DTYPE, RECORD_BYTES, bars_to_candles
from strategies.candle import Candle

RECHECK_BARS = 4  # applied candles re-read and compared on every read (= the sidecar's TAIL_BARS)
TAIL_BARS = RECHECK_BARS + 1  # kept: a read starts at the oldest of them
TAIL_BYTES = TAIL_BARS * RECORD_BYTES
_RECORD = struct.Struct("<qqdddddq")  # CANDLE_DTYPE, field for field
if _RECORD.size != RECORD_BYTES or CANDLE_DTYPE.names != ("t", "close_ms", "o", "h", "l", "c", "v", "n"):
    raise RuntimeError("applied_tail is out of date with the candle record format")
_T = struct.Struct("<q")


def encode_record(candle: Candle) -> bytes:
    """The candle's 64-byte record (what the store holds for it)."""
    return _RECORD.pack(candle.t, candle.close_ms, candle.o, candle.h, candle.l, candle.c, candle.v, candle.n)


class AppliedTail:
    """The newest TAIL_BARS applied candles as records (a read starts at the oldest of them)."""

    __slots__ = ("raw",)

    def __init__(self, candles: Iterable[Candle] = ()) -> None:
        self.raw = b""  # whole records, oldest first, at most TAIL_BYTES
        self.extend(candles)

    def append(self, candle: Candle) -> None:
        self.raw = (self.raw + encode_record(candle))[-TAIL_BYTES:]

    def extend(self, candles: Iterable[Candle]) -> None:
        """Append candles (ascending); only the newest TAIL_BARS are kept."""
        added = b"".join(encode_record(c) for c in candles)
        if added:
            self.raw = (self.raw + added)[-TAIL_BYTES:]

    def __len__(self) -> int:
        return len(self.raw) // RECORD_BYTES

    def copy(self) -> AppliedTail:
        twin = AppliedTail()
        twin.raw = self.raw  # bytes are immutable: sharing is a copy
        return twin

    def candles(self) -> list[Candle]:
        """The kept candles, oldest first."""
        return bars_to_candles(np.frombuffer(self.raw, dtype=CANDLE_DTYPE)) if self.raw else []

    def read_from(self, last_t: int | None) -> int | None:
        """Where the next read starts: RECHECK_BARS applied candles before `last_t` when known."""
        return _T.unpack_from(self.raw)[0] if len(self.raw) > RECORD_BYTES else last_t

    def rewritten(self, candles: Iterable[Candle], last_t: int | None) -> Candle | None:
        """The first candle of a read (ascending) at or before `last_t` that differs from the one applied."""
        applied = {c.t: c for c in self.candles()}
        for candle in candles:
            if last_t is None or candle.t > last_t:
                break
            if applied.get(candle.t, candle) != candle:
                return candle
        return None
