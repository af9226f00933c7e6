"""The Redis layout: every market-data key, channel, stream and payload format, in one module.

The sidecar is the only writer of market-data keys; the driver (MarketDataHub) and the shard
actors only read. Everybody goes through `RedisLayout`, so a key name or a payload format is
written down exactly once. It lives in `cluster/` because shard actors read it and `cluster/`
may not import `engine/`.

Every key starts with the prefix (default ``aiq``), so two engines can share one Redis.
``{iv}`` is a Hyperliquid interval name (``1m``, ``1h``...), ``{sym}`` the venue's coin name as
sent by the venue (case kept: ``kPEPE`` is not ``KPEPE``). Times are UTC epoch milliseconds.

Keys
----
``{p}:candles.v2:{iv}:{sym}`` sorted set, closed candles of one symbol, score = open time ``t``,
                             member = candle payload (below). At most one member per ``t``
                             (a rewrite removes the old member in the same MULTI/EXEC), bounded
                             to the newest ``keep_bars`` members.
``{p}:forming.v2:{iv}``      hash, field ``sym`` -> candle payload of the newest, still-forming
                             candle (its values change until it closes).
``{p}:layout:{iv}``          string, the layout version of this interval's candle keys (``2``),
                             set by `migrate_legacy` once version-1 keys are converted.
``{p}:journal:{iv}``         stream, the closed-bar journal: one entry per write of closed candles
                             (symbols, record counts, records; `cluster.bar_journal`), capped at
                             about ``journal_len`` entries. Shards read it since a cursor instead
                             of re-reading each symbol's recent candles. Every writer of a
                             candle set goes through this class, so every change is journaled.
``{p}:ckey:close:{iv}``      hash, field ``sym`` -> close time ``T`` of the last *closed* candle
                             (decimal). The key of ``AI_QUANT_SIGNAL_ON_CANDLE_CLOSE=1``.
``{p}:ckey:open:{iv}``       hash, field ``sym`` -> open time ``t`` of the newest candle, forming
                             or closed (decimal). The key of ``AI_QUANT_SIGNAL_ON_CANDLE_CLOSE=0``.
``{p}:mids``                 hash, field ``sym`` -> ``[px, venue_ms, wall_ms]``.
``{p}:bbo``                  hash, field ``sym`` -> ``[bid_px, bid_sz, ask_px, ask_sz, venue_ms,
                             wall_ms]``.
``{p}:hb:sidecar``           string, heartbeat JSON object (see `Heartbeat`): wall time of the
                             write, the venue clock (latest venue event time seen), connection
                             state and counters; ``{p}:hb:sidecar:{id}`` the same, per sidecar
                             (`cluster.sidecar_heartbeat` owns both).
``{p}:ckpt:{iv}:{sym}``      string, opaque checkpoint bytes written by the shard owning ``sym``.
``{p}:acct:{user}``          stream of account events (``user`` = lower-cased address); fields
                             ``k`` (AccountEventKind), ``s`` (``1`` if part of a snapshot),
                             ``w`` (wall ms when received), ``d`` (the venue's ``data`` as JSON).
                             The driver reads it with a consumer group and acknowledges; pending
                             entries are re-read after a crash, so nothing is lost. Never trimmed
                             by the writer (the reader deletes what it acknowledged).

Channel
-------
``{p}:closed:{iv}``          pub/sub; message = JSON ``[[sym, T], ...]`` of the candles closed by
                             one write. A wake-up only: readers then read the candle keys, so a
                             missed message costs latency, never data.

Candle payload (version 2)
--------------------------
One 64-byte little-endian record ``t, T`` int64, ``o, h, l, c, v`` float64, ``n`` int64
(`cluster.candle_codec`, re-exported here). Readers fetch many members as one concatenated blob
and decode it with one `numpy.frombuffer`, checked in bulk against the `Candle` invariants.

Version 1 stored a JSON array ``[t, T, o, h, l, c, v, n]`` per candle under
``{p}:candles:{iv}:{sym}`` and ``{p}:forming:{iv}``. The sidecar calls `migrate_legacy` at start:
it converts those keys into version-2 keys (a member that does not parse is dropped and counted:
the sidecar's SQLite reconcile and REST backfill restore it), deletes them and sets the version
key. Nothing reads the version-1 keys otherwise.

API (writers queue on a pipeline; readers make one round trip)
--------------------------------------------------------------
Writers (sidecar only): write_closed_candles / write_closed_many (publish=False for corrections),
queue_candles / trim_closed (journaled, no key),
write_forming, write_mids, write_bbo, write_heartbeat, append_account_event (the sidecar's
start-up conversion of old keys: `cluster.layout_migration.migrate_legacy`);
shards: write_checkpoint. Readers: read_candle_keys, read_candles, read_candles_many,
read_bars_since / read_bars_batch / read_candles_since (one round trip for any number of symbols, with the
continuity proof), read_journal, read_forming, read_mids, read_bbo, read_heartbeat, read_checkpoints,
parse_closed_notification; driver: ensure_account_group, read_account_events,
ack_account_events.

Write order
-----------
`write_closed_candles` queues candle(s), then their journal entry, then the close key, then the
notification on one pipeline; callers create it with ``client.pipeline(transaction=True)`` so
the rewrite of a candle is atomic and a reader that sees a key always finds its candle and its
journal entry.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from cluster.account_stream import AccountEvent, AccountEventKind, decode_event, event_fields
from cluster.bar_journal import JournalRead, encode_entry, parse_since
from cluster.candle_codec import (
    CANDLE_DTYPE,
    EMPTY_BARS,
    LAYOUT_VERSION,
    RECORD_BYTES,
    BarsBatch,
    LayoutError,
    bars_batch_from_reply,
    bars_to_candles,
    decode_bars,
    decode_candle,
    encode_candle,
    encode_candles,
    members_to_bars,
)
from cluster.redis_scripts import READ_BARS_LUA, READ_PICKED_LUA, READ_PICKED_SHA
from cluster.sidecar_heartbeat import (
    Heartbeat,
    parse_heartbeat,
    queue_heartbeat,
    read_sidecar_heartbeats,
    shared_key,
    sidecar_key,
)
from strategies.candle import Candle

__all__ = [
    "CANDLE_DTYPE", "EMPTY_BARS", "LAYOUT_VERSION", "RECORD_BYTES", "AccountEvent", "AccountEventKind",
    "BarsBatch", "Bbo",
    "CandleKeys", "Heartbeat", "LayoutError", "Mid", "RedisLayout", "bars_to_candles", "decode_bars",
    "decode_candle", "encode_candle", "encode_candles",
]

DEFAULT_PREFIX = "aiq"
DEFAULT_KEEP_BARS = 1000
DEFAULT_JOURNAL_LEN = 256  # journal entries kept (about: MAXLEN ~); a reader further behind re-reads all



@dataclass(frozen=True, slots=True)
class CandleKeys:
    """The two candle keys of one symbol; either is None when nothing was written yet."""

    closed_close_ms: int | None
    latest_open_ms: int | None

    def pick(self, signal_on_close: bool) -> int | None:
        """Return the key the engine polls: close time of the last closed candle, or open time."""
        return self.closed_close_ms if signal_on_close else self.latest_open_ms


@dataclass(frozen=True, slots=True)
class Mid:
    price: float
    venue_ms: int
    wall_ms: int


@dataclass(frozen=True, slots=True)
class Bbo:
    bid_px: float
    bid_sz: float
    ask_px: float
    ask_sz: float
    venue_ms: int
    wall_ms: int

    @property
    def mid(self) -> float:
        return (self.bid_px + self.ask_px) / 2.0


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes | bytearray) else str(value)


def _finite(value: Any, what: str) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise LayoutError(f"{what}: non-finite number {value!r}")
    return number


class RedisLayout:
    """Key builders and readers/writers of the market-data cache under one prefix.

    Writers take a pipeline (they only queue commands); readers take a client and make exactly
    one round trip. `keep_bars` bounds each closed-candle set (the sidecar sets it from its
    lookback); readers do not depend on it.
    """

    def __init__(self, prefix: str = DEFAULT_PREFIX, *, keep_bars: int = DEFAULT_KEEP_BARS,
                 journal_len: int = DEFAULT_JOURNAL_LEN) -> None:
        if not prefix or any(ch in prefix for ch in " \t\r\n"):
            raise ValueError(f"invalid Redis key prefix {prefix!r}")
        if keep_bars < 1 or journal_len < 2:
            raise ValueError(f"keep_bars must be >= 1 and journal_len >= 2, got {keep_bars}, {journal_len}")
        self.prefix = prefix
        self.keep_bars = keep_bars
        self.journal_len = journal_len

    # ----------------------------------------------------------------- key builders
    def candles_key(self, symbol: str, interval: str) -> str:
        return f"{self.prefix}:candles.v2:{interval}:{symbol}"

    def forming_key(self, interval: str) -> str:
        return f"{self.prefix}:forming.v2:{interval}"

    def layout_version_key(self, interval: str) -> str:
        return f"{self.prefix}:layout:{interval}"

    def legacy_candles_key(self, symbol: str, interval: str) -> str:
        """Version-1 (JSON) closed-candle key; only `migrate_legacy` and its tests use it."""
        return f"{self.prefix}:candles:{interval}:{symbol}"

    def legacy_forming_key(self, interval: str) -> str:
        return f"{self.prefix}:forming:{interval}"

    def close_key_hash(self, interval: str) -> str:
        return f"{self.prefix}:ckey:close:{interval}"

    def open_key_hash(self, interval: str) -> str:
        return f"{self.prefix}:ckey:open:{interval}"

    def mids_key(self) -> str:
        return f"{self.prefix}:mids"

    def bbo_key(self) -> str:
        return f"{self.prefix}:bbo"

    def heartbeat_key(self) -> str:
        return shared_key(self.prefix)

    def sidecar_heartbeat_key(self, sidecar: str) -> str:
        return sidecar_key(self.prefix, sidecar)

    def journal_key(self, interval: str) -> str:
        return f"{self.prefix}:journal:{interval}"

    def closed_channel(self, interval: str) -> str:
        return f"{self.prefix}:closed:{interval}"

    def checkpoint_key(self, symbol: str, interval: str) -> str:
        return f"{self.prefix}:ckpt:{interval}:{symbol}"

    def account_stream_key(self, user: str) -> str:
        return f"{self.prefix}:acct:{user.lower()}"

    # ----------------------------------------------------------------- candle writers
    def queue_candles(self, pipe: Any, symbol: str, interval: str, candles: Sequence[Candle]) -> None:
        """Queue closed candles (ascending, one member per open time), the keep_bars trim and their
        journal entry (no close key, no notification)."""
        raw = encode_candles(candles)
        self._queue_zset(pipe, symbol, interval, candles, raw)
        self._queue_journal(pipe, interval, [symbol], [len(candles)], raw)

    def _queue_zset(self, pipe: Any, symbol: str, interval: str, candles: Sequence[Candle], raw: bytes,
                    ) -> None:
        key = self.candles_key(symbol, interval)
        for i, candle in enumerate(candles):
            pipe.zremrangebyscore(key, candle.t, candle.t)
            pipe.zadd(key, {raw[i * RECORD_BYTES: (i + 1) * RECORD_BYTES]: candle.t})
        pipe.zremrangebyrank(key, 0, -(self.keep_bars + 1))

    def _queue_journal(self, pipe: Any, interval: str, symbols: Sequence[str], counts: Sequence[int],
                       records: bytes) -> None:
        """Queue the write's journal entry (`cluster.bar_journal`): after its candles, before its keys."""
        if symbols:
            pipe.xadd(self.journal_key(interval), encode_entry(symbols, counts, records),
                      maxlen=self.journal_len, approximate=True)

    def trim_closed(self, pipe: Any, symbol: str, interval: str, keep: int) -> None:
        """Queue a trim of the symbol's closed candles to the newest `keep` (journaled: re-read it)."""
        if keep < 0:
            raise ValueError(f"keep must be >= 0, got {keep}")
        pipe.zremrangebyrank(self.candles_key(symbol, interval), 0, -(keep + 1))
        self._queue_journal(pipe, interval, [symbol], [0], b"")

    def write_closed_candles(
        self, pipe: Any, symbol: str, interval: str, candles: Sequence[Candle], *, publish: bool = True
    ) -> None:
        """Queue closed candles (ascending by t), then the close key, then the notification.

        With publish=False only the candles are (re)written: for corrections of candles older
        than the current key, which must not move the key backwards.
        """
        self.write_closed_many(pipe, interval, {symbol: candles}, publish=publish)

    def write_closed_many(
        self, pipe: Any, interval: str, batch: Mapping[str, Sequence[Candle]], *, publish: bool = True
    ) -> None:
        """Queue closed candles of many symbols, their ONE journal entry, their close keys, ONE notification.

        Each symbol's candles must be ascending by t; its key becomes the last candle's close time.
        """
        closed: list[list[Any]] = []
        counts: list[int] = []
        blobs: list[bytes] = []
        for symbol, candles in batch.items():
            if candles:
                blobs.append(raw := encode_candles(candles))
                self._queue_zset(pipe, symbol, interval, candles, raw)
                closed.append([symbol, candles[-1].close_ms])
                counts.append(len(candles))
        self._queue_journal(pipe, interval, [sym for sym, _ in closed], counts, b"".join(blobs))
        if not publish or not closed:
            return
        pipe.hset(self.close_key_hash(interval), mapping={sym: str(close) for sym, close in closed})
        pipe.publish(self.closed_channel(interval), json.dumps(closed, separators=(",", ":")))

    def write_forming(self, pipe: Any, interval: str, forming: Mapping[str, Candle]) -> None:
        """Queue the forming candles and move each symbol's open key to its open time."""
        if not forming:
            return
        pipe.hset(self.forming_key(interval), mapping={s: encode_candle(c) for s, c in forming.items()})
        pipe.hset(self.open_key_hash(interval), mapping={s: str(c.t) for s, c in forming.items()})

    # ----------------------------------------------------------------- candle readers
    def read_candle_keys(self, client: Any, symbols: Sequence[str], interval: str) -> dict[str, CandleKeys]:
        """Return both candle keys of every symbol, in one round trip."""
        if not symbols:
            return {}
        pipe = client.pipeline(transaction=False)
        pipe.hmget(self.close_key_hash(interval), list(symbols))
        pipe.hmget(self.open_key_hash(interval), list(symbols))
        closes, opens = pipe.execute()
        return {
            sym: CandleKeys(
                None if close is None else int(_text(close)), None if opened is None else int(_text(opened))
            )
            for sym, close, opened in zip(symbols, closes, opens, strict=True)
        }

    def read_picked_keys(
        self, client: Any, symbols: Sequence[str], interval: str, signal_on_close: bool
    ) -> dict[str, int | None]:
        """The key the engine polls of every symbol (`CandleKeys.pick`): ONE hash read, not both.

        Why: the driver reads it for every symbol every tick. One script call (`READ_PICKED_LUA`)
        returns every value as one joined bulk string, so redis-py packs two arguments and parses
        two replies instead of 1,000 of each (an HMGET of 1,000 fields cost ~3-4 ms of client CPU
        with redis-py's Python parser, the script ~0.7 ms). Same result as HMGET + int() field by
        field: None for a missing field, int() of anything else (ValueError for garbage, an empty
        value included). Raises redis.RedisError as the client does."""
        if not symbols:
            return {}
        key = self.close_key_hash(interval) if signal_on_close else self.open_key_hash(interval)
        joined = "\n".join(symbols)
        if joined.count("\n") != len(symbols) - 1 or "" in symbols:  # a field the script cannot carry
            return self._hmget_ints(client, key, symbols)
        from redis.exceptions import NoScriptError  # local: this module imports without redis-py

        try:
            raw, empty = client.evalsha(READ_PICKED_SHA, 1, key, joined)
        except NoScriptError:  # first call on this server (or after SCRIPT FLUSH)
            client.script_load(READ_PICKED_LUA)
            raw, empty = client.evalsha(READ_PICKED_SHA, 1, key, joined)
        if empty:  # present but empty: int() refuses it on the plain read too
            raise ValueError(f"{key}: field {symbols[int(empty[0])]!r} holds an empty value, not a key")
        parts = (raw if isinstance(raw, bytes) else raw.encode()).split(b"\n")
        if len(parts) != len(symbols):  # a value holding "\n": decide it exactly as the plain read
            return self._hmget_ints(client, key, symbols)
        return {sym: int(v) if v else None for sym, v in zip(symbols, parts, strict=True)}

    @staticmethod
    def _hmget_ints(client: Any, key: str, symbols: Sequence[str]) -> dict[str, int | None]:
        """`read_picked_keys` as a plain HMGET (fields or values the script cannot carry)."""
        values = client.hmget(key, list(symbols))
        return {sym: None if v is None else int(v) for sym, v in zip(symbols, values, strict=True)}

    def _queue_read(
        self, pipe: Any, symbol: str, interval: str, after_t: int | None, limit: int | None
    ) -> None:
        low = "-inf" if after_t is None else f"({after_t}"
        key = self.candles_key(symbol, interval)
        if limit is None:
            pipe.zrangebyscore(key, low, "+inf")
        else:
            pipe.zrevrangebyscore(key, "+inf", low, start=0, num=limit)

    def read_candles(
        self, client: Any, symbol: str, interval: str, after_t: int | None = None, limit: int | None = None
    ) -> list[Candle]:
        """Return closed candles with open time > after_t, ascending; with limit, the newest `limit`."""
        return self.read_candles_many(client, {symbol: after_t}, interval, limit)[symbol]

    def read_candles_many(
        self, client: Any, after: Mapping[str, int | None], interval: str, limit: int | None = None
    ) -> dict[str, list[Candle]]:
        """Like read_candles for many symbols ({symbol: after_t}), in one pipelined round trip."""
        if not after:
            return {}
        pipe = client.pipeline(transaction=False)
        for symbol, after_t in after.items():
            self._queue_read(pipe, symbol, interval, after_t, limit)
        out: dict[str, list[Candle]] = {}
        for symbol, raws in zip(after, pipe.execute(), strict=True):
            where = self.candles_key(symbol, interval)
            out[symbol] = bars_to_candles(members_to_bars(raws[::-1] if limit is not None else raws, where))
        return out

    def bars_script(self, client: Any) -> Any:
        """Return the registered read script for `read_bars_since` (build once per client, reuse)."""
        return client.register_script(READ_BARS_LUA)

    def read_bars_since(
        self, client: Any, resume: Mapping[str, int | None], interval: str, *, script: Any = None
    ) -> dict[str, tuple[bool, np.ndarray]]:
        """For each symbol: (is the resume candle still stored, records with t > resume ascending).

        ONE script call for all symbols, whatever their count. `resume[symbol]` None reads every
        stored candle (and says True). The proof is what a reader needs to trust an incremental
        state; False means history was trimmed or lost past it: rebuild. Arrays are read-only
        CANDLE_DTYPE views, validated like `Candle`; raises LayoutError naming the key of a
        malformed or invalid member.
        """
        return self.read_bars_batch(client, resume, interval, script=script).as_dict()

    def read_bars_batch(
        self, client: Any, resume: Mapping[str, int | None], interval: str, *, script: Any = None,
        keys: Sequence[str] | None = None,
    ) -> BarsBatch:
        """`read_bars_since` as one `BarsBatch` (all records in one array; the shards' bulk form).

        `keys` (optional) are the candle keys of `resume`'s symbols in order, for callers that
        cache them. A read of warm symbols only comes back as one joined blob, a read with cold
        ones as one blob per key (see `cluster.redis_scripts`).
        """
        if not resume:
            return BarsBatch([], EMPTY_BARS, *(np.zeros(0, dtype=np.int64) for _ in range(2)),
                             np.zeros(0, dtype=bool))
        keys = [self.candles_key(s, interval) for s in resume] if keys is None else list(keys)
        resumes = list(resume.values())
        joined = None not in resumes
        args = ["-" if t is None else str(int(t)) for t in resumes]
        flag = "1" if joined else "0"
        run = script if script is not None else self.bars_script(client)
        if any("\n" in key for key in keys):
            reply = run(keys=keys, args=[*args, flag], client=client)
        else:
            reply = run(keys=[], args=["\n".join(f"{k}\n{a}" for k, a in zip(keys, args, strict=True)), flag],
                        client=client)
        return bars_batch_from_reply(list(resume), keys, reply, resumes, joined=joined)

    def read_candles_since(
        self, client: Any, resume: Mapping[str, int | None], interval: str
    ) -> dict[str, tuple[bool, list[Candle]]]:
        """`read_bars_since` with `Candle` lists instead of arrays."""
        return {sym: (found, bars_to_candles(bars))
                for sym, (found, bars) in self.read_bars_since(client, resume, interval).items()}

    def read_journal(self, client: Any, interval: str, cursor: str | None, *, limit: int = 64) -> JournalRead:
        """The closed-bar journal since `cursor` (`cluster.bar_journal`), one round trip (two when
        more than `limit` entries follow it: then only the newest id, and not intact). Without a
        cursor: the newest entry's id (not intact). A malformed entry: not intact, `problem` says why."""
        key = self.journal_key(interval)
        if cursor is not None:
            entries = client.xrange(key, cursor, "+", count=limit + 2)  # the cursor's, limit, one more
            if len(entries) <= limit + 1:
                return parse_since(entries, cursor, key)
        newest = client.xrevrange(key, "+", "-", count=1)
        return JournalRead(_text(newest[0][0]) if newest else None, False)

    def read_forming(self, client: Any, symbols: Sequence[str], interval: str) -> dict[str, Candle]:
        """Return the forming candle of each symbol that has one."""
        if not symbols:
            return {}
        raws = client.hmget(self.forming_key(interval), list(symbols))
        where = self.forming_key(interval)
        return {s: decode_candle(r, f"{where}[{s}]")
                for s, r in zip(symbols, raws, strict=True) if r is not None}

    # ----------------------------------------------------------------- mids, BBO, heartbeat
    def write_mids(self, pipe: Any, mids: Mapping[str, float], venue_ms: int, wall_ms: int) -> None:
        if mids:
            pipe.hset(
                self.mids_key(),
                mapping={
                    s: json.dumps([px, venue_ms, wall_ms], separators=(",", ":")) for s, px in mids.items()
                },
            )

    def read_mids(self, client: Any, symbols: Sequence[str]) -> dict[str, Mid]:
        """Return the mid of each symbol that has one."""
        if not symbols:
            return {}
        out: dict[str, Mid] = {}
        for sym, raw in zip(symbols, client.hmget(self.mids_key(), list(symbols)), strict=True):
            if raw is None:
                continue
            try:
                px, venue_ms, wall_ms = json.loads(_text(raw))
                out[sym] = Mid(_finite(px, f"mid {sym}"), int(venue_ms), int(wall_ms))
            except (ValueError, TypeError) as exc:
                raise LayoutError(f"{self.mids_key()}[{sym}]: malformed mid {raw!r}") from exc
        return out

    def write_bbo(self, pipe: Any, bbos: Mapping[str, Bbo]) -> None:
        if bbos:
            pipe.hset(
                self.bbo_key(),
                mapping={
                    s: json.dumps(
                        [b.bid_px, b.bid_sz, b.ask_px, b.ask_sz, b.venue_ms, b.wall_ms], separators=(",", ":")
                    )
                    for s, b in bbos.items()
                },
            )

    def read_bbo(self, client: Any, symbols: Sequence[str]) -> dict[str, Bbo]:
        """Return the BBO of each symbol that has one."""
        if not symbols:
            return {}
        out: dict[str, Bbo] = {}
        for sym, raw in zip(symbols, client.hmget(self.bbo_key(), list(symbols)), strict=True):
            if raw is None:
                continue
            try:
                bid, bid_sz, ask, ask_sz, venue_ms, wall_ms = json.loads(_text(raw))
                out[sym] = Bbo(
                    _finite(bid, f"bbo {sym}"),
                    _finite(bid_sz, f"bbo {sym}"),
                    _finite(ask, f"bbo {sym}"),
                    _finite(ask_sz, f"bbo {sym}"),
                    int(venue_ms),
                    int(wall_ms),
                )
            except (ValueError, TypeError) as exc:
                raise LayoutError(f"{self.bbo_key()}[{sym}]: malformed bbo {raw!r}") from exc
        return out

    def write_heartbeat(self, pipe: Any, heartbeat: Heartbeat) -> None:
        """Queue the shared heartbeat and the writer's own (`cluster.sidecar_heartbeat`)."""
        queue_heartbeat(pipe, self.prefix, heartbeat)

    def read_heartbeat(self, client: Any) -> Heartbeat | None:
        """Return the newest heartbeat of any sidecar, or None if none was ever written."""
        raw = client.get(self.heartbeat_key())
        return None if raw is None else parse_heartbeat(self.heartbeat_key(), raw)

    def read_sidecar_heartbeats(self, client: Any, sidecars: Iterable[str]) -> dict[str, Heartbeat | None]:
        """Each named sidecar's own heartbeat (None when it never wrote one), one round trip."""
        return read_sidecar_heartbeats(client, self.prefix, sidecars)

    # ----------------------------------------------------------------- notifications
    @staticmethod
    def parse_closed_notification(data: Any) -> list[tuple[str, int]]:
        """Parse a message of the closed channel into [(symbol, close_ms)]."""
        try:
            return [(str(sym), int(close)) for sym, close in json.loads(_text(data))]
        except (ValueError, TypeError) as exc:
            raise LayoutError(f"malformed candle-close notification {data!r}") from exc

    # ----------------------------------------------------------------- shard checkpoints
    def write_checkpoint(self, pipe: Any, symbol: str, interval: str, data: bytes) -> None:
        pipe.set(self.checkpoint_key(symbol, interval), data)

    def read_checkpoints(self, client: Any, symbols: Sequence[str], interval: str) -> dict[str, bytes]:
        """Return the checkpoint bytes of each symbol that has one, in one round trip."""
        if not symbols:
            return {}
        raws = client.mget([self.checkpoint_key(s, interval) for s in symbols])
        return {
            s: (raw if isinstance(raw, bytes) else str(raw).encode())
            for s, raw in zip(symbols, raws, strict=True)
            if raw is not None
        }

    # ----------------------------------------------------------------- account events
    def append_account_event(self, pipe: Any, user: str, event: AccountEvent) -> None:
        pipe.xadd(self.account_stream_key(user), event_fields(event))

    def ensure_account_group(self, client: Any, user: str, group: str) -> None:
        """Create the consumer group (from the stream's start) if it does not exist yet."""
        try:
            client.xgroup_create(self.account_stream_key(user), group, id="0", mkstream=True)
        except Exception as exc:  # redis.ResponseError; redis is not imported here on purpose
            if "BUSYGROUP" not in str(exc):
                raise

    def read_account_events(
        self,
        client: Any,
        user: str,
        group: str,
        consumer: str,
        *,
        count: int = 100,
        block_ms: int | None = None,
    ) -> list[tuple[str, AccountEvent]]:
        """Return [(entry_id, event)]: this consumer's unacknowledged entries first, then new ones.

        Entries stay pending until `ack_account_events`; after a crash the same consumer name
        gets them again, so an event is never lost (it may be seen twice: dedupe downstream).
        """
        key = self.account_stream_key(user)
        pending = client.xreadgroup(group, consumer, {key: "0"}, count=count)
        entries = pending[0][1] if pending else []
        if not entries:
            fresh = client.xreadgroup(group, consumer, {key: ">"}, count=count, block=block_ms)
            entries = fresh[0][1] if fresh else []
        vanished = [_text(entry_id) for entry_id, fields in entries if not fields]
        if vanished:  # deleted while pending (acknowledged elsewhere): nothing left to hand out
            client.xack(key, group, *vanished)
        return [
            (_text(entry_id), decode_event(key, entry_id, fields))
            for entry_id, fields in entries
            if fields
        ]

    def ack_account_events(self, client: Any, user: str, group: str, entry_ids: Sequence[str]) -> None:
        """Acknowledge and delete handled entries (one round trip)."""
        if not entry_ids:
            return
        key = self.account_stream_key(user)
        pipe = client.pipeline(transaction=True)
        pipe.xack(key, group, *entry_ids)
        pipe.xdel(key, *entry_ids)
        pipe.execute()
