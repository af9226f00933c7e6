"""`InProcessExecutor`: the `ShardExecutor` interface over `ShardCore`s living in this process.

For tests and replays that need the shard semantics (sharding, idempotency, checkpoints,
restarts, gap handling) but not Ray's start-up cost. Shards run one after another; there is no
deadline to miss, so the only faults are history gaps. `restart_shard` re-runs a shard's
construction from its store, which is what a Ray restart does.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping, Sequence

from cluster.decision_block import DecisionBlock, TickDecisions
from cluster.executor import AlertSink, FaultBook, ShardRouter
from cluster.metrics import PoolMetrics
from cluster.records import TickResult
from cluster.shard_core import ConfigSource, ShardCore, ShardSettings
from cluster.shard_store import ShardStore
from cluster.sharding import assign


class InProcessExecutor:
    """K shard cores in this process, routed by the same rendezvous hash as the Ray pool."""

    def __init__(
        self,
        n_shards: int,
        store_for: Callable[[int], ShardStore],
        settings: ShardSettings,
        configs: ConfigSource,
        *,
        symbols: Sequence[str] = (),
        alert: AlertSink | None = None,
    ) -> None:
        """`store_for(i)` returns shard i's store (a shared MemoryShardStore or a Redis store)."""
        if n_shards < 1:
            raise ValueError(f"n_shards must be >= 1, got {n_shards}")
        self.n_shards = n_shards
        self._router = ShardRouter(n_shards)
        self._store_for = store_for
        self._settings = settings
        self._configs = configs
        self._groups = assign(symbols, n_shards)
        self._faults = FaultBook(alert, PoolMetrics())
        self.cores = [self._build(i) for i in range(n_shards)]

    def _build(self, index: int) -> ShardCore:
        return ShardCore(index, self._store_for(index), self._settings, self._configs,
                         symbols=self._groups[index])

    def shard_of(self, symbol: str) -> int:
        return self._router.shard_of(symbol)

    def evaluate(
        self,
        batch: Mapping[str, int],
        *,
        want_snapshot: Collection[str] = (),
        deadline_ms: float | None = None,
    ) -> TickResult:
        """Evaluate every shard's part of the batch in turn (deadline unused: nothing can hang)."""
        started = time.perf_counter()
        wanted = set(want_snapshot)
        blocks: list[DecisionBlock] = []
        for shard, symbols in self._router.group(batch).items():
            block = self.cores[shard].evaluate_block({s: batch[s] for s in symbols}, wanted & set(symbols))
            self._faults.note_gap_symbols(shard, block.gap_symbols())
            blocks.append(block)
        elapsed = (time.perf_counter() - started) * 1000.0
        return TickResult(decisions=TickDecisions(batch, blocks), alerts=self._faults.take(),
                          elapsed_ms=elapsed)

    def restart_shard(self, index: int) -> ShardCore:
        """Throw shard `index` away and rebuild it from its store, as a Ray restart would."""
        self.cores[index] = self._build(index)
        return self.cores[index]

    def set_configs(self, configs: ConfigSource) -> None:
        """Hot-reload the strategy config into every shard (and into future restarts)."""
        self._configs = configs
        for core in self.cores:
            core.set_configs(configs)

    def retire(self, symbols: Sequence[str]) -> None:
        """Checkpoint, then forget symbols that left the watchlist."""
        for shard, syms in self._router.group(symbols).items():
            self.cores[shard].checkpoint(syms)
            self.cores[shard].drop(syms)

    def checkpoint_all(self) -> int:
        return sum(core.checkpoint() for core in self.cores)

    def close(self) -> None:
        self.checkpoint_all()
