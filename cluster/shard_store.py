"""The I/O a shard needs, behind one small protocol: closed candles in, checkpoints in and out.

`ShardCore` (pure logic) talks only to a `ShardStore`, so the same core runs against Redis in
the Ray actor, against Redis in the in-process executor, and against `MemoryShardStore` in unit
tests and offline replays. Every method is one round trip for the whole batch.

Redis keys come from `cluster.redis_layout.RedisLayout` only (closed candles as written by the
sidecar, checkpoints under `{p}:ckpt:{iv}:{sym}`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from cluster.redis_layout import RedisLayout
from strategies.candle import Candle


class ShardStore(Protocol):
    """Batch reads of closed candles and batch reads/writes of per-symbol checkpoints."""

    def read_candles(self, after: Mapping[str, int | None]) -> dict[str, list[Candle]]:
        """Return {symbol: closed candles with open time > after[symbol], ascending}."""
        ...

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        """Return the checkpoint of each name that has one."""
        ...

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        """Write checkpoints (JSON-able dicts) for many names at once."""
        ...


class RedisShardStore:
    """`ShardStore` over the Redis market-data cache; checkpoints are compact JSON."""

    def __init__(self, client: Any, layout: RedisLayout, interval: str) -> None:
        self._client = client
        self._layout = layout
        self._interval = interval

    def read_candles(self, after: Mapping[str, int | None]) -> dict[str, list[Candle]]:
        return self._layout.read_candles_many(self._client, after, self._interval)

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        raws = self._layout.read_checkpoints(self._client, list(names), self._interval)
        return {name: json.loads(raw) for name, raw in raws.items()}

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        if not states:
            return
        pipe = self._client.pipeline(transaction=False)
        for name, state in states.items():
            data = json.dumps(state, separators=(",", ":"), allow_nan=True).encode()
            self._layout.write_checkpoint(pipe, name, self._interval, data)
        pipe.execute()


class MemoryShardStore:
    """In-process `ShardStore` for unit tests and offline replays (no Redis).

    `keep_bars` mimics the sidecar's retention so tests can provoke a rehydrate gap;
    checkpoints round-trip through JSON exactly like the Redis store, so a state that is not
    JSON-able fails here too.
    """

    def __init__(self, keep_bars: int | None = None) -> None:
        self.keep_bars = keep_bars
        self._candles: dict[str, dict[int, Candle]] = {}
        self._checkpoints: dict[str, str] = {}
        self.reads = 0

    def add_closed(self, symbol: str, candles: Sequence[Candle]) -> None:
        """Write closed candles (idempotent on open time), then trim to keep_bars."""
        book = self._candles.setdefault(symbol, {})
        for candle in candles:
            book[candle.t] = candle
        if self.keep_bars is not None and len(book) > self.keep_bars:
            for t in sorted(book)[: len(book) - self.keep_bars]:
                del book[t]

    def read_candles(self, after: Mapping[str, int | None]) -> dict[str, list[Candle]]:
        self.reads += 1
        out: dict[str, list[Candle]] = {}
        for symbol, after_t in after.items():
            book = self._candles.get(symbol, {})
            low = -1 if after_t is None else after_t
            out[symbol] = [book[t] for t in sorted(book) if t > low]
        return out

    def load_checkpoints(self, names: Sequence[str]) -> dict[str, dict[str, Any]]:
        return {n: json.loads(self._checkpoints[n]) for n in names if n in self._checkpoints}

    def save_checkpoints(self, states: Mapping[str, dict[str, Any]]) -> None:
        for name, state in states.items():
            self._checkpoints[name] = json.dumps(state, separators=(",", ":"), allow_nan=True)

    def checkpoint_names(self) -> list[str]:
        return sorted(self._checkpoints)
