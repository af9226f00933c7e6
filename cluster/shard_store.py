"""The I/O a shard needs, behind one small protocol: closed candles in, checkpoints in and out.

`ShardCore` (pure logic) talks only to a `ShardStore`, so the same core runs against Redis in
the Ray actor, against Redis in the in-process executor, and against `MemoryShardStore` in unit
tests and offline replays. Every method is one round trip for the whole batch.

Redis keys come from `cluster.redis_layout.RedisLayout` only (closed candles as written by the
sidecar, checkpoints under `{p}:ckpt:{iv}:{sym}`). Candles arrive as fixed-width binary records,
every symbol of a read in one script call (`RedisLayout.read_bars_since`); `CandleRead.bars` is
the columnar view of them and `CandleRead.candles` the object view.

Checkpoint bytes are ``b"M1"`` + `marshal` of the plain dict (dicts, lists, floats, ints, str,
None only): ~10x faster to write than JSON, which matters because a shard writes hundreds per
tick. marshal cannot run code on load (unlike pickle); its format is tied to the Python
version, so a checkpoint that does not decode is treated as absent (the symbol is rebuilt from
Redis and, if history was trimmed, flagged as a gap).
"""

from __future__ import annotations

import logging
import marshal
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import numpy as np

from cluster.bar_journal import JournalRead
from cluster.redis_layout import (
    CANDLE_DTYPE,
    EMPTY_BARS,
    BarsBatch,
    RedisLayout,
    bars_to_candles,
    encode_candles,
)
from strategies.candle import Candle

log = logging.getLogger(__name__)

_CODEC_TAG = b"M1"


def encode_checkpoint(state: Mapping[str, Any]) -> bytes:
    """Return the checkpoint bytes of a plain-typed state dict; raises ValueError on other types."""
    return _CODEC_TAG + marshal.dumps(dict(state), 4)


def decode_checkpoint(data: bytes) -> dict[str, Any] | None:
    """Return the state dict, or None when the bytes are not a checkpoint this code can read."""
    if not data.startswith(_CODEC_TAG):
        return None
    try:
        state = marshal.loads(data[len(_CODEC_TAG):])
    except (ValueError, EOFError, TypeError):
        return None
    return state if isinstance(state, dict) else None


class CandleRead:
    """Closed candles after a resume point, and whether the resume candle itself is still stored.

    `resume_found` is the continuity proof: the candle at the resume open time (the last one
    applied to state) is still in the store, so nothing between it and the candles was trimmed.
    Always True when there was no resume point.

    The candles are held as `bars`, a read-only `CANDLE_DTYPE` array (t, close_ms, o, h, l, c,
    v, n columns) for columnar consumers; `candles` builds `Candle` objects from it on first
    use. Either form can be given; equality compares the candles and the proof.
    """

    __slots__ = ("_bars", "_candles", "resume_found")

    def __init__(self, resume_found: bool, candles: Sequence[Candle] | None = None, *,
                 bars: np.ndarray | None = None) -> None:
        if candles is not None and bars is not None:
            raise ValueError("CandleRead takes candles or bars, not both")
        self.resume_found = resume_found
        self._candles = None if candles is None else list(candles)
        self._bars = bars if bars is not None else (EMPTY_BARS if candles is None else None)

    @property
    def candles(self) -> list[Candle]:
        """The candles as `Candle` objects (built from `bars` once, on first use)."""
        if self._candles is None:
            self._candles = bars_to_candles(self._bars)
        return self._candles

    @property
    def bars(self) -> np.ndarray:
        """The candles as a `CANDLE_DTYPE` array (read-only when it came from Redis)."""
        if self._bars is None:
            self._bars = np.array([(c.t, c.close_ms, c.o, c.h, c.l, c.c, c.v, c.n) for c in self.candles],
                                  dtype=CANDLE_DTYPE)
        return self._bars

    def __len__(self) -> int:
        return len(self._bars) if self._bars is not None else len(self.candles)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, CandleRead):
            return NotImplemented
        return self.resume_found == other.resume_found and self.candles == other.candles

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"CandleRead(resume_found={self.resume_found}, candles={len(self)})"


class ShardStore(Protocol):
    """Batch reads of closed candles and batch reads/writes of per-symbol checkpoints."""

    def read_since(self, resume: Mapping[str, int | None]) -> dict[str, CandleRead]:
        """Return {symbol: candles with open time > resume[symbol] (None: all), ascending}."""
        ...

    # Optional: `read_batch(resume) -> BarsBatch`, the same read as one array (`ShardCore` uses
    # it for its steady-state fast path when the store has it, `read_since` otherwise), and
    # `read_journal(cursor) -> JournalRead`, the closed-bar journal since a cursor
    # (`cluster.shard_journal`; without it every symbol is read).

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the checkpoint of each name that has one."""
        ...

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        """Write checkpoints (JSON-able dicts) for many names at once."""
        ...

    def read_forming(self, symbols: Sequence[str]) -> dict[str, Candle]:
        """Return the still-forming candle of each symbol that has one (open mode only)."""
        ...


class RedisShardStore:
    """`ShardStore` over the Redis market-data cache (keys and payloads from RedisLayout)."""

    def __init__(self, client: Any, layout: RedisLayout, interval: str) -> None:
        self._client = client
        self._layout = layout
        self._interval = interval
        self._read_script = layout.bars_script(client)
        self._keys: dict[str, str] = {}  # symbol -> candle key (formatting them was ~1 us a symbol a tick)

    def read_since(self, resume: Mapping[str, int | None]) -> dict[str, CandleRead]:
        """Every symbol, warm (resume time) or cold (None), in ONE round trip; no per-candle parsing.

        The layout's read script returns all records concatenated; each symbol's `CandleRead`
        holds a read-only slice of that one buffer (`bars`) and builds `Candle` objects only if
        asked. Raises LayoutError naming the key of a malformed or invalid member.
        """
        got = self.read_batch(resume).as_dict()
        return {symbol: CandleRead(found, bars=bars) for symbol, (found, bars) in got.items()}

    def read_batch(self, resume: Mapping[str, int | None]) -> BarsBatch:
        """`read_since` as one `BarsBatch` (one array for all symbols); raises like `read_since`."""
        keys = self._keys
        if len(keys) > 100_000:  # bounded: symbols come and go over a long run
            keys.clear()
        layout, interval = self._layout, self._interval
        names = [keys.get(s) or keys.setdefault(s, layout.candles_key(s, interval)) for s in resume]
        return layout.read_bars_batch(self._client, resume, interval, script=self._read_script, keys=names)

    def read_journal(self, cursor: str | None) -> JournalRead:
        """The closed-bar journal since `cursor` (`RedisLayout.read_journal`; the shard's journal path)."""
        return self._layout.read_journal(self._client, self._interval, cursor)

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        raws = self._layout.read_checkpoints(self._client, list(names), self._interval)
        return _decode_all(raws)

    def read_forming(self, symbols: Sequence[str]) -> dict[str, Candle]:
        return self._layout.read_forming(self._client, symbols, self._interval)

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        if not states:
            return
        # One MSET (= a SET per key, no options, like RedisLayout.write_checkpoint) instead of a
        # pipeline of SETs: redis-py's per-command packing was the larger part of this write.
        layout, interval = self._layout, self._interval
        self._client.mset({layout.checkpoint_key(name, interval): encode_checkpoint(state)
                           for name, state in states.items()})


class MemoryShardStore:
    """In-process `ShardStore` for unit tests and offline replays (no Redis).

    `keep_bars` mimics the sidecar's retention so tests can provoke a rehydrate gap;
    checkpoints round-trip through the same bytes codec as the Redis store, so a state that
    does not encode fails here too.
    """

    def __init__(self, keep_bars: int | None = None) -> None:
        self.keep_bars = keep_bars
        self._candles: dict[str, dict[int, Candle]] = {}
        self._checkpoints: dict[str, bytes] = {}
        self._forming: dict[str, Candle] = {}
        self.reads = 0

    def set_forming(self, symbol: str, candle: Candle) -> None:
        """Write the symbol's forming candle (what the sidecar's forming hash holds)."""
        self._forming[symbol] = candle

    def read_forming(self, symbols: Sequence[str]) -> dict[str, Candle]:
        return {s: self._forming[s] for s in symbols if s in self._forming}

    def add_closed(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Write closed candles (idempotent on open time), then trim to keep_bars."""
        book = self._candles.setdefault(symbol, {})
        for candle in candles:
            book[candle.t] = candle
        if self.keep_bars is not None and len(book) > self.keep_bars:
            for t in sorted(book)[: len(book) - self.keep_bars]:
                del book[t]

    def read_since(self, resume: Mapping[str, int | None]) -> dict[str, CandleRead]:
        self.reads += 1
        out: dict[str, CandleRead] = {}
        for symbol, last_t in resume.items():
            book = self._candles.get(symbol, {})
            low = -1 if last_t is None else last_t
            found = last_t is None or last_t in book
            out[symbol] = CandleRead(found, [book[t] for t in sorted(book) if t > low])
        return out

    def read_batch(self, resume: Mapping[str, int | None]) -> BarsBatch:
        """`read_since` as one `BarsBatch`, like `RedisShardStore.read_batch` (records encoded and
        decoded through the layout's codec, so the fast path sees what Redis would give)."""
        got = self.read_since(resume)
        return BarsBatch.from_arrays({s: (r.resume_found, _records(r.candles)) for s, r in got.items()})

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        return _decode_all({n: self._checkpoints[n] for n in names if n in self._checkpoints})

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        for name, state in states.items():
            self._checkpoints[name] = encode_checkpoint(state)

    def checkpoint_names(self) -> list[str]:
        return sorted(self._checkpoints)


def _records(candles: Sequence[Candle]) -> np.ndarray:
    return np.frombuffer(encode_candles(candles), dtype=CANDLE_DTYPE) if candles else EMPTY_BARS


def _decode_all(raws: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in raws.items():
        state = decode_checkpoint(raw)
        if state is None:
            log.warning("checkpoint %s is unreadable (other format or Python version); ignoring it", name)
            continue
        out[name] = state
    return out
