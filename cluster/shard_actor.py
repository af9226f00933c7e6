"""`SignalShard`: the thin Ray actor around `ShardCore` (all logic lives in shard_core).

The class is plain Python; `cluster.pool` wraps it with `ray.remote` and the options that make
it a named, restartable actor. Ray re-runs `__init__` on a restart, which is exactly the
recovery: a fresh Redis client, the checkpoints restored from Redis, and the missed candles
replayed on the next `evaluate`. Nothing here holds keys or sends orders.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from cluster.decision_block import DecisionBlock
from cluster.metrics import shard_metrics
from cluster.redis_layout import RedisLayout
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import RedisShardStore

# When this module's imports (the strategy stack: the largest part of a worker's boot) finished.
_IMPORTED_WALL = time.time()


class SignalShard:
    """One shard actor: owns the state of the symbols the pool routes to it."""

    def __init__(
        self,
        shard_index: int,
        redis_url: str,
        redis_prefix: str,
        settings: ShardSettings,
        configs: ConfigSource,
        symbols: Sequence[str] = (),
    ) -> None:
        """Connect to Redis (clients are not picklable, so never passed in) and restore state."""
        import redis  # local: the module stays importable where redis-py is absent

        began = time.time()
        self._client = redis.Redis.from_url(redis_url)
        store = RedisShardStore(self._client, RedisLayout(redis_prefix), settings.interval)
        self._config_version = 0
        self._core = ShardCore(
            shard_index, store, settings, configs, symbols=symbols, metrics=shard_metrics()
        )
        self._started = _startup_record(shard_index, began, time.time(), self._core.rehydrated)

    def ping(self) -> int:
        """Return the shard index once the constructor (the restore) has finished."""
        return self._core.index

    def started(self) -> dict[str, Any]:
        """Like `ping` (answers once restored), with where this actor's start went (wall clock,
        seconds): `boot_secs` process start → strategy stack imported, `restore_secs` the
        constructor (Redis connect and checkpoint restore); `ready_wall` when it finished."""
        return dict(self._started)

    def evaluate(
        self,
        batch: Mapping[str, int],
        want_snapshot: Collection[str] = (),
        configs: tuple[int, ConfigSource] | None = None,
    ) -> DecisionBlock:
        """Delegate to `ShardCore.evaluate_block`: {symbol: candle key} -> the records as one columnar block
        (a few arrays to pickle; the driver builds a record only where it reads one).

        `configs` = (version, configs) of the driver's current strategy config. It rides along
        with every call because a Ray restart re-runs __init__ with the ORIGINAL arguments: the
        version check re-applies a hot-reloaded config to a restarted shard before it decides.
        """
        if configs is not None and configs[0] != self._config_version:
            self._core.set_configs(configs[1])
            self._config_version = configs[0]
        return self._core.evaluate_block(batch, want_snapshot)

    def checkpoint(self) -> int:
        """Write every symbol's checkpoint now (before a planned stop or a re-shard)."""
        return self._core.checkpoint()

    def drop(self, symbols: Sequence[str]) -> None:
        """Checkpoint then forget symbols that moved to another shard."""
        self._core.checkpoint(symbols)
        self._core.drop(symbols)

    def progress(self, symbols: Sequence[str]) -> dict[str, tuple[int | None, int]]:
        """Delegate to `ShardCore.progress` (tests and health checks)."""
        return self._core.progress(symbols)

    def stats(self) -> dict[str, Any]:
        """Return counters plus this process's pid and resident memory (for the benchmark)."""
        out = self._core.stats()
        out["pid"] = os.getpid()
        out["rss_bytes"] = _rss_bytes()
        return out


def _process_started_wall() -> float | None:
    """Wall time this process was created (/proc), or None where that cannot be read."""
    try:
        with open("/proc/self/stat") as fh:
            ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime") as fh:
            uptime = float(fh.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None
    return time.time() - (uptime - ticks / os.sysconf("SC_CLK_TCK"))


def _startup_record(index: int, began: float, ready: float, rehydrated: Mapping[str, int]) -> dict[str, Any]:
    spawned = _process_started_wall()
    return {
        "shard": index, "pid": os.getpid(), "spawned_wall": spawned, "ready_wall": ready,
        "boot_secs": None if spawned is None else max(0.0, _IMPORTED_WALL - spawned),
        "restore_secs": ready - began, "checkpoints": rehydrated.get("checkpoint", 0),
    }


def _rss_bytes() -> int:
    try:
        with open("/proc/self/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return -1
