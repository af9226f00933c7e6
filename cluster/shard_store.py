"""The I/O a shard needs, behind one small protocol: closed candles in, checkpoints in and out.

`ShardCore` (pure logic) talks only to a `ShardStore`, so the same core runs against Redis in
the Ray actor, against Redis in the in-process executor, and against `MemoryShardStore` in unit
tests and offline replays. Every method is one round trip for the whole batch.

Redis keys come from `cluster.redis_layout.RedisLayout` only (closed candles as written by the
sidecar, checkpoints under `{p}:ckpt:{iv}:{sym}`).

Checkpoint bytes are ``b"M1"`` + `marshal` of the plain dict (dicts, lists, floats, ints, str,
None only): ~10x faster to write than JSON, which matters because a shard writes hundreds per
tick. marshal cannot run code on load (unlike pickle); its format is tied to the Python
version, so a checkpoint that does not decode is treated as absent (the symbol is rebuilt from
Redis and, if history was trimmed, flagged as a gap).
"""

from __future__ import annotations

import json
import logging
import marshal
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Protocol

from cluster.redis_layout import LayoutError, RedisLayout, decode_candle
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


@dataclass(frozen=True, slots=True)
class CandleRead:
    """Closed candles after a resume point, and whether the resume candle itself is still stored.

    `resume_found` is the continuity proof: the candle at the resume open time (the last one
    applied to state) is still in the store, so nothing between it and `candles` was trimmed.
    Always True when there was no resume point.
    """

    resume_found: bool
    candles: list[Candle]


class ShardStore(Protocol):
    """Batch reads of closed candles and batch reads/writes of per-symbol checkpoints."""

    def read_since(self, resume: Mapping[str, int | None]) -> dict[str, CandleRead]:
        """Return {symbol: candles with open time > resume[symbol] (None: all), ascending}."""
        ...

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the checkpoint of each name that has one."""
        ...

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        """Write checkpoints (JSON-able dicts) for many names at once."""
        ...

    def read_forming(self, symbols: Sequence[str]) -> dict[str, Candle]:
        """Return the still-forming candle of each symbol that has one (open mode only)."""
        ...


# Reads every symbol's closed candles after its resume time in ONE server-side call, and says
# per symbol whether the resume candle itself is still stored (the continuity proof), so the
# resume candle is neither transferred nor parsed. Used for warm symbols only: their ranges are
# a candle or two, so the script never blocks Redis long. Single Redis instance (not Cluster).
#
# _READ_SINCE_LUA replies per key: [found (1/0), member, ...]. redis-py's pure-Python RESP
# parser costs ~3 calls per element, which at thousands of symbols was the largest part of the
# read, so the hot path uses _READ_SINCE_JSON_LUA: the same data as ONE bulk string, a JSON
# array of [found, candle, ...] per key (members are already JSON ``[t, T, o, h, l, c, v, n]``),
# parsed by one C-level json.loads. A reply that does not parse (a malformed member) is re-read
# through _READ_SINCE_LUA and decode_candle so the error names the bad payload as before.
_READ_SINCE_LUA = """
local out = {}
for i, key in ipairs(KEYS) do
  local resume = ARGV[i]
  local rows = redis.call('ZRANGEBYSCORE', key, '(' .. resume, '+inf')
  local found = redis.call('ZCOUNT', key, resume, resume)
  table.insert(rows, 1, found > 0 and 1 or 0)
  out[i] = rows
end
return out
"""

# The keys and resume times travel as ONE argument, "key\nresume\nkey\nresume...", because
# redis-py packs each argument in Python (~1 us each, 2 per symbol). Undeclared keys are fine
# on the single Redis instance this layout targets; a key containing a newline (never built by
# RedisLayout) makes the caller use _READ_SINCE_LUA instead.
_READ_SINCE_JSON_LUA = """
local out = {}
local i = 0
for key, resume in string.gmatch(ARGV[1], '([^\\n]+)\\n([^\\n]+)') do
  i = i + 1
  local rows = redis.call('ZRANGEBYSCORE', key, '(' .. resume, '+inf')
  local found = redis.call('ZCOUNT', key, resume, resume) > 0 and '1' or '0'
  if #rows > 0 then
    out[i] = '[' .. found .. ',' .. table.concat(rows, ',') .. ']'
  else
    out[i] = '[' .. found .. ']'
  end
end
return '[' .. table.concat(out, ',') .. ']'
"""


# Candle's slot setters: its frozen __init__ + __post_init__ cost ~2 us a candle, which the shard
# pays per symbol per tick. _candle checks the same invariants first and lets the real
# constructor raise its own ValueError for a candle that fails them.
_CANDLE_FIELDS = tuple(f.name for f in fields(Candle))
if _CANDLE_FIELDS != ("t", "close_ms", "o", "h", "l", "c", "v", "n"):
    raise RuntimeError(f"_candle is out of date with Candle's fields {_CANDLE_FIELDS}")
_CANDLE_SETTERS = tuple(getattr(Candle, name).__set__ for name in _CANDLE_FIELDS)


def _candle(t: int, close_ms: int, o: float, h: float, low: float, c: float, v: float, n: int) -> Candle:
    """Return `Candle(t, close_ms, o, h, low, c, v, n)` (same validation, same errors), cheaper."""
    isfinite = math.isfinite
    if not (isfinite(o) and isfinite(h) and isfinite(low) and isfinite(c) and isfinite(v)
            and v >= 0 and h >= low and close_ms >= t):
        return Candle(t, close_ms, o, h, low, c, v, n)  # raises exactly what Candle raises
    obj = object.__new__(Candle)
    set_t, set_close, set_o, set_h, set_l, set_c, set_v, set_n = _CANDLE_SETTERS
    set_t(obj, t)
    set_close(obj, close_ms)
    set_o(obj, o)
    set_h(obj, h)
    set_l(obj, low)
    set_c(obj, c)
    set_v(obj, v)
    set_n(obj, n)
    return obj


def _candles_from_json(reply: list[Any], where: str) -> list[Candle]:
    """Build candles from parsed ``[t, T, o, h, l, c, v, n]`` lists exactly like decode_candle."""
    try:
        return [_candle(int(t), int(close_ms), float(o), float(h), float(low), float(c), float(v), int(n))
                for t, close_ms, o, h, low, c, v, n in reply]
    except (ValueError, TypeError) as exc:
        raise LayoutError(f"{where}: malformed candle payload in {reply!r}: {exc}") from exc


class RedisShardStore:
    """`ShardStore` over the Redis market-data cache (keys and payloads from RedisLayout)."""

    def __init__(self, client: Any, layout: RedisLayout, interval: str) -> None:
        self._client = client
        self._layout = layout
        self._interval = interval
        self._read_since_script = client.register_script(_READ_SINCE_LUA)
        self._read_since_json = client.register_script(_READ_SINCE_JSON_LUA)

    def read_since(self, resume: Mapping[str, int | None]) -> dict[str, CandleRead]:
        """Warm symbols: one script call; cold ones (no resume): one pipelined full read.

        Goes through RedisLayout's key builder and `decode_candle` rather than
        `read_candles_many`, which has no resume-inclusive form to prove continuity with.
        """
        out: dict[str, CandleRead] = {}
        warm = [(s, t) for s, t in resume.items() if t is not None]
        cold = [s for s, t in resume.items() if t is None]
        if warm:
            keys = [self._layout.candles_key(s, self._interval) for s, _ in warm]
            args = [str(t) for _, t in warm]
            replies = None
            if not any("\n" in key for key in keys):
                joined = "\n".join(f"{key}\n{arg}" for key, arg in zip(keys, args, strict=True))
                try:
                    replies = json.loads(self._read_since_json(keys=[], args=[joined]))
                except ValueError:  # a member is not JSON: the per-member path names it (LayoutError)
                    replies = None
            if replies is None or len(replies) != len(keys):
                for (symbol, _), key, reply in zip(warm, keys, self._read_since_script(keys=keys, args=args),
                                                   strict=True):
                    out[symbol] = CandleRead(int(reply[0]) == 1, [decode_candle(m, key) for m in reply[1:]])
            else:
                for (symbol, _), key, reply in zip(warm, keys, replies, strict=True):
                    out[symbol] = CandleRead(reply[0] == 1, _candles_from_json(reply[1:], key))
        if cold:
            pipe = self._client.pipeline(transaction=False)
            keys = [self._layout.candles_key(s, self._interval) for s in cold]
            for key in keys:
                pipe.zrangebyscore(key, "-inf", "+inf")
            for symbol, key, rows in zip(cold, keys, pipe.execute(), strict=True):
                out[symbol] = CandleRead(True, [decode_candle(m, key) for m in rows])
        return out

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

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        return _decode_all({n: self._checkpoints[n] for n in names if n in self._checkpoints})

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        for name, state in states.items():
            self._checkpoints[name] = encode_checkpoint(state)

    def checkpoint_names(self) -> list[str]:
        return sorted(self._checkpoints)


def _decode_all(raws: Mapping[str, bytes]) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for name, raw in raws.items():
        state = decode_checkpoint(raw)
        if state is None:
            log.warning("checkpoint %s is unreadable (other format or Python version); ignoring it", name)
            continue
        out[name] = state
    return out
