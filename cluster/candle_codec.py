"""The candle byte format of the Redis layout (version 2): fixed-width little-endian records.

This is the codec half of `cluster.redis_layout`, which owns the contract and re-exports these
names; import them from there. It is a module of its own only to keep the layout file short.

One candle is 64 bytes, `CANDLE_DTYPE`: ``t`` int64, ``T`` (close_ms) int64, ``o h l c v``
float64, ``n`` int64, all little-endian. Many candles are the plain concatenation of records, so
a whole read decodes with one `numpy.frombuffer` (no per-candle parsing) and is validated with a
few vectorised comparisons: the same invariants as `strategies.candle.Candle` (finite prices and
volume, volume >= 0, high >= low, close >= open time), and a failing row is reported with the
exact message the `Candle` constructor gives.

Version 1 (before this module) stored each candle as a JSON array ``[t, T, o, h, l, c, v, n]``;
`decode_legacy_candle` parses it for the one-time migration only.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from strategies.candle import Candle

LAYOUT_VERSION = 2

CANDLE_DTYPE = np.dtype([
    ("t", "<i8"), ("close_ms", "<i8"), ("o", "<f8"), ("h", "<f8"), ("l", "<f8"), ("c", "<f8"),
    ("v", "<f8"), ("n", "<i8"),
])
RECORD_BYTES = CANDLE_DTYPE.itemsize  # 64
EMPTY_BARS = np.zeros(0, dtype=CANDLE_DTYPE)


class LayoutError(ValueError):
    """A payload read from Redis does not have the documented format (names the key)."""


def encode_candle(candle: Candle) -> bytes:
    """Return the 64-byte record of one candle."""
    return encode_candles([candle])


def encode_candles(candles: Any) -> bytes:
    """Return the concatenated records of candles (any iterable of `Candle`)."""
    rows = [(c.t, c.close_ms, c.o, c.h, c.l, c.c, c.v, c.n) for c in candles]
    return np.array(rows, dtype=CANDLE_DTYPE).tobytes() if rows else b""


def _as_bytes(raw: Any) -> bytes:
    if isinstance(raw, bytes | bytearray | memoryview):
        return bytes(raw)
    if isinstance(raw, str):
        return raw.encode("latin-1", errors="strict")
    raise TypeError(f"expected bytes, got {type(raw).__name__}")


def first_invalid_row(bars: np.ndarray) -> int | None:
    """Index of the first record that breaks a Candle invariant, or None when all hold."""
    if not len(bars):
        return None
    ok = (np.isfinite(bars["o"]) & np.isfinite(bars["h"]) & np.isfinite(bars["l"])
          & np.isfinite(bars["c"]) & np.isfinite(bars["v"]) & (bars["v"] >= 0)
          & (bars["h"] >= bars["l"]) & (bars["close_ms"] >= bars["t"]))
    if bool(ok.all()):
        return None
    return int(np.argmin(ok))


def candle_error(row: np.void) -> str:
    """Return the message `Candle` raises for this record (validation only happens there)."""
    try:
        Candle(*row.tolist())
    except ValueError as exc:
        return str(exc)
    return "invalid candle record"


def decode_bars(raw: Any, where: str = "candles") -> np.ndarray:
    """Return the records in `raw` as a read-only structured array (CANDLE_DTYPE).

    Raises LayoutError naming `where` when the length is not a whole number of records or a
    record breaks a Candle invariant.
    """
    try:
        data = _as_bytes(raw)
    except (TypeError, UnicodeEncodeError) as exc:
        raise LayoutError(f"{where}: candle payload is not bytes: {exc}") from exc
    if len(data) % RECORD_BYTES:
        raise LayoutError(f"{where}: candle payload of {len(data)} bytes is not a whole number of "
                          f"{RECORD_BYTES}-byte records")
    bars = np.frombuffer(data, dtype=CANDLE_DTYPE)
    check_bars(bars, where)
    return bars


def check_bars(bars: np.ndarray, where: str) -> None:
    """Raise LayoutError naming `where` if any record breaks a Candle invariant."""
    bad = first_invalid_row(bars)
    if bad is not None:
        raise LayoutError(f"{where}: invalid candle record: {candle_error(bars[bad])}")


# Candle's slot setters: its frozen __init__ + __post_init__ cost ~2 us a candle, paid per
# symbol per tick; records reaching bars_to_candles were validated in bulk already.
_FIELDS = ("t", "close_ms", "o", "h", "l", "c", "v", "n")
_SETTERS = tuple(getattr(Candle, name).__set__ for name in _FIELDS)
if tuple(f for f in Candle.__slots__) != _FIELDS:  # type: ignore[attr-defined]
    raise RuntimeError(f"candle_codec is out of date with Candle's fields {Candle.__slots__}")


def bars_to_candles(bars: np.ndarray) -> list[Candle]:
    """Return `Candle` objects of already-validated records (skips re-validation: it is costly)."""
    new = object.__new__
    set_t, set_close, set_o, set_h, set_l, set_c, set_v, set_n = _SETTERS
    out: list[Candle] = []
    for t, close_ms, o, h, low, c, v, n in bars.tolist():
        candle = new(Candle)
        set_t(candle, t)
        set_close(candle, close_ms)
        set_o(candle, o)
        set_h(candle, h)
        set_l(candle, low)
        set_c(candle, c)
        set_v(candle, v)
        set_n(candle, n)
        out.append(candle)
    return out


def decode_candle(raw: Any, where: str = "candle") -> Candle:
    """Parse one 64-byte record; raise LayoutError naming `where` when it is malformed."""
    bars = decode_bars(raw, where)
    if len(bars) != 1:
        raise LayoutError(f"{where}: expected one candle record, got {len(bars)}")
    return bars_to_candles(bars)[0]


def decode_legacy_candle(raw: Any, where: str = "candle") -> Candle:
    """Parse a version-1 JSON payload ``[t, T, o, h, l, c, v, n]`` (migration only)."""
    try:
        text = raw.decode() if isinstance(raw, bytes | bytearray) else str(raw)
        t, close_ms, o, h, low, c, v, n = json.loads(text)
        return Candle(int(t), int(close_ms), float(o), float(h), float(low), float(c), float(v), int(n))
    except (ValueError, TypeError) as exc:
        raise LayoutError(f"{where}: malformed version-1 candle payload {raw!r}: {exc}") from exc


def members_to_bars(raws: Sequence[Any], where: str) -> np.ndarray:
    """Decode sorted-set members (one record each) into one validated array."""
    if any(len(raw) != RECORD_BYTES for raw in raws):
        raise LayoutError(f"{where}: a member is not one {RECORD_BYTES}-byte candle record")
    return decode_bars(b"".join(raws), where) if raws else EMPTY_BARS


FOUND_BY_FIRST = 2  # meta "found" code: the read included the resume candle; its first record proves it


class BarsBatch:
    """One read of many symbols: every record in one read-only `CANDLE_DTYPE` array, each symbol's
    slice of it (`starts`/`ends`) and continuity proof (`found`), all as arrays.

    Why arrays and not a dict of slices: a shard's steady-state tick checks and applies hundreds of
    symbols' new candles with a few vectorised operations over `bars`; per-symbol objects (slices,
    tuples, `Candle`s) were most of its cost. `get(i)`/`as_dict()` give the per-symbol form.
    """

    __slots__ = ("bars", "ends", "found", "index", "starts", "symbols")

    def __init__(self, symbols: Sequence[str], bars: np.ndarray, starts: np.ndarray, ends: np.ndarray,
                 found: np.ndarray) -> None:
        if not len(symbols) == len(starts) == len(ends) == len(found):
            raise ValueError("BarsBatch: symbols, starts, ends and found differ in length")
        self.symbols = list(symbols)
        self.index = {s: i for i, s in enumerate(self.symbols)}
        self.bars, self.starts, self.ends, self.found = bars, starts, ends, found

    def __len__(self) -> int:
        return len(self.symbols)

    def get(self, i: int) -> tuple[bool, np.ndarray]:
        """(continuity proof, records) of the i-th symbol."""
        return bool(self.found[i]), self.bars[int(self.starts[i]): int(self.ends[i])]

    def as_dict(self) -> dict[str, tuple[bool, np.ndarray]]:
        """{symbol: (found, records)}, records a read-only view of `bars`."""
        bars = self.bars
        return {sym: (found, bars[start:end]) for sym, found, start, end in
                zip(self.symbols, self.found.tolist(), self.starts.tolist(), self.ends.tolist(), strict=True)}

    @classmethod
    def from_arrays(cls, per_symbol: Mapping[str, tuple[bool, np.ndarray]]) -> BarsBatch:
        """Concatenate per-symbol (found, records) into one batch (stores without a bulk read)."""
        counts = np.fromiter((len(b) for _, b in per_symbol.values()), dtype=np.int64, count=len(per_symbol))
        ends = np.cumsum(counts, dtype=np.int64)
        arrays = [b for _, b in per_symbol.values() if len(b)]
        bars = np.concatenate(arrays) if arrays else EMPTY_BARS
        bars.flags.writeable = False
        found = np.fromiter((bool(f) for f, _ in per_symbol.values()), dtype=bool, count=len(per_symbol))
        return cls(list(per_symbol), bars, ends - counts, ends, found)


def split_bars_reply(symbols: list[str], keys: list[str], reply: Any) -> dict[str, tuple[bool, np.ndarray]]:
    """`bars_batch_from_reply` as {symbol: (found, records)} (per-key blobs, explicit proofs)."""
    return bars_batch_from_reply(symbols, keys, reply).as_dict()


def bars_batch_from_reply(symbols: list[str], keys: list[str], reply: Any,
                          resumes: Sequence[int | None] | None = None, *, joined: bool = False) -> BarsBatch:
    """Cut the layout's read-script reply into a `BarsBatch`; raise LayoutError naming the bad key.

    The reply is a meta string (per key a little-endian int32 triple found/members/malformed),
    then one blob of records per key, or (`joined`) one blob for all keys. All records end up in
    one buffer, validated at once. A found code of FOUND_BY_FIRST means the read included the
    resume candle (`resumes[i]`): the key is continuous iff its first record opens at the resume
    time, and that record is then left out (the caller asked for the candles after it).
    """
    meta_raw, *blobs = reply
    if len(blobs) != (1 if joined else len(keys)):
        raise LayoutError(f"candle read answered {len(blobs)} blobs for {len(keys)} keys (joined={joined})")
    blob = blobs[0] if joined else b"".join(blobs)
    meta = np.frombuffer(meta_raw, dtype="<i4").reshape(-1, 3)
    if len(meta) != len(keys):
        raise LayoutError(f"candle read answered {len(meta)} keys for {len(keys)} requested")
    bad = np.flatnonzero(meta[:, 2])
    if len(bad):
        raise LayoutError(f"{keys[bad[0]]}: {int(meta[bad[0], 2])} member(s) not one {RECORD_BYTES}-byte "
                          "candle record")
    counts = meta[:, 1].astype(np.int64)
    ends = np.cumsum(counts, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    if len(blob) != RECORD_BYTES * total:
        raise LayoutError(f"candle read returned {len(blob)} bytes for {total} records")
    bars = np.frombuffer(_as_bytes(blob), dtype=CANDLE_DTYPE)
    invalid = first_invalid_row(bars)
    if invalid is not None:
        check_bars(bars[invalid: invalid + 1], keys[int(np.searchsorted(ends, invalid, side="right"))])
    starts = ends - counts
    code = meta[:, 0]
    found = code == 1
    by_first = code == FOUND_BY_FIRST
    if by_first.any():
        if resumes is None or len(resumes) != len(keys):
            raise LayoutError("candle read proves continuity by the first record, but no resume times given")
        want = np.fromiter((-1 if r is None else r for r in resumes), dtype=np.int64, count=len(keys))
        first_t = bars["t"][np.minimum(starts, max(total - 1, 0))] if total else np.zeros(len(keys), np.int64)
        hit = by_first & (counts > 0) & (first_t == want)
        found |= hit
        starts = starts + hit
    return BarsBatch(symbols, bars, starts, ends, found)
