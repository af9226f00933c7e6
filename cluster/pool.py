"""`ShardPool`: K named `SignalShard` Ray actors, one batched call per shard per tick, a deadline.

Follows Ray's pattern guide (STYLE §4.14): a fixed set of actors created concurrently and
awaited once; symbols routed by rendezvous hash to an explicit shard (no ActorPool: shards are
stateful); one `evaluate` per shard per tick; `ray.wait` with a deadline; small records back.

Fail-closed rules, so the driver loop never stalls:
- a shard that misses the deadline yields SHARD_LATE "no signal" records for its symbols, an
  alert and a metric; its call is remembered, and while it is still running the shard gets no
  new call (SHARD_BUSY), so calls never pile up behind a hung actor;
- a call still outstanding after `hung_after_secs` means a hung actor: it is killed with
  `no_restart=False`, so Ray restarts it and its constructor rehydrates from Redis. Age, not a
  count of late ticks, decides: a shard that is merely slow (catching up after a restart or a
  cold start, which can take many ticks at 10,000 symbols) must not be killed in a loop;
- a shard whose actor died during the call (RayActorError) yields SHARD_DEAD records; Ray
  restarts it (`max_restarts=-1`) and the next tick replays what it missed from Redis.
Ray must already be initialised (`engine.runtime.ray_runtime.connect_ray`); actors live in
`PoolSettings.namespace`, named `aiq-shard-<i>`.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cluster.decision_block import DecisionBlock, TickDecisions
from cluster.executor import AlertSink, FaultBook, ShardRouter
from cluster.metrics import PoolMetrics, pool_metrics
from cluster.records import ShardDecision, ShardFault, ShardStatus, TickResult, no_signal
from cluster.shard_actor import SignalShard
from cluster.shard_core import ConfigSource, ShardSettings
from cluster.sharding import assign

log = logging.getLogger(__name__)

ACTOR_NAME_FORMAT = "aiq-shard-{index}"


@dataclass(frozen=True, slots=True, kw_only=True)
class PoolSettings:
    """Shape of the pool. Defaults suit one 2-core box."""

    n_shards: int = 2
    namespace: str = "aiq"
    deadline_ms: float = 2_000.0  # per tick, from submit to the last result
    actor_num_cpus: float = 0.1  # small, so several shards and the driver fit on 2 cores
    start_timeout_secs: float = 180.0
    call_timeout_secs: float = 60.0  # for control calls (checkpoint, stats), not ticks
    hung_after_secs: float = 300.0  # an evaluate outstanding this long = hung actor, kill it
    # Placement on a cluster: custom resources each shard needs (ray_cluster.yaml gives workers
    # `aiq_shard`, so shards land on workers and the head keeps the driver, sidecar and Redis),
    # and an optional Ray scheduling strategy such as "SPREAD".
    resources: tuple[tuple[str, float], ...] = ()
    scheduling_strategy: str | None = None

    def __post_init__(self) -> None:
        for name, amount in self.resources:
            if not name or amount <= 0:
                raise ValueError(f"shard resource {name!r} needs a positive amount, got {amount}")
        if self.n_shards < 1:
            raise ValueError(f"n_shards must be >= 1, got {self.n_shards}")
        if self.deadline_ms <= 0:
            raise ValueError(f"deadline_ms must be > 0, got {self.deadline_ms}")


def placement_options(pool: PoolSettings) -> dict[str, Any]:
    """The Ray actor options that place a shard (empty on a single box)."""
    options: dict[str, Any] = {}
    if pool.resources:
        options["resources"] = dict(pool.resources)
    if pool.scheduling_strategy:
        options["scheduling_strategy"] = pool.scheduling_strategy
    return options


def _create_actor(remote_cls: Any, index: int, pool: PoolSettings, args: tuple[Any, ...]) -> Any:
    """Create shard `index` (non-blocking). If its name is still held, e.g. by the dying actor
    of a driver that just crashed, retry until start_timeout_secs; a live pool of another driver
    under the same names makes this raise ActorAlreadyExistsError (two engines, one namespace)."""
    import ray

    deadline = time.monotonic() + pool.start_timeout_secs
    while True:
        try:
            return remote_cls.options(
                name=ACTOR_NAME_FORMAT.format(index=index),
                namespace=pool.namespace,
                max_restarts=-1,
                # evaluate is idempotent (a key never advances state twice), so a call caught by a
                # restart is safely re-run on the restarted actor, still within the tick deadline.
                max_task_retries=2,
                num_cpus=pool.actor_num_cpus,
                **placement_options(pool),
            ).remote(*args)
        except ray.exceptions.ActorAlreadyExistsError:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.2)


def check_reply(block: object, symbols: Sequence[str]) -> None:
    """Raise ValueError unless `block` is a valid `DecisionBlock` of exactly `symbols`, in order."""
    if not isinstance(block, DecisionBlock):
        raise ValueError(f"shard reply is a {type(block).__name__}, not a DecisionBlock")
    block.validate()  # codes, spans and extras: a malformed block fails here, never trades
    if block.symbols != (symbols if isinstance(symbols, tuple) else tuple(symbols)):
        raise ValueError("shard reply's symbols differ from the ones it was asked about")


class ShardPool:
    """The Ray `ShardExecutor`: see the module docstring for the tick and fault rules."""

    def __init__(
        self,
        *,
        redis_url: str,
        redis_prefix: str,
        settings: ShardSettings,
        configs: ConfigSource,
        pool: PoolSettings,
        symbols: Sequence[str] = (),
        alert: AlertSink | None = None,
        metrics: PoolMetrics | None = None,
    ) -> None:
        """Create every actor concurrently, then wait once until all restored their state.

        Raises ray.exceptions.GetTimeoutError if they are not up within start_timeout_secs.
        """
        import ray

        self.n_shards = pool.n_shards
        self._router = ShardRouter(pool.n_shards)
        self._pool = pool
        self._metrics = metrics or pool_metrics()
        self._faults = FaultBook(alert, self._metrics)
        self._configs = configs
        self._config_version = 0  # bumped by set_configs; 0 = the constructor's configs
        self._pending: dict[int, tuple[Any, float]] = {}  # shard -> (late call's ref, monotonic sent)
        groups = assign(symbols, pool.n_shards)
        remote_cls = ray.remote(SignalShard)
        self.handles: list[Any] = []
        self.started: list[dict[str, Any]] = []  # each actor's `SignalShard.started` record
        try:
            for i in range(pool.n_shards):
                args = (i, redis_url, redis_prefix, settings, configs, groups[i])
                self.handles.append(_create_actor(remote_cls, i, pool, args))
            refs = [h.started.remote() for h in self.handles]
            self.started = ray.get(refs, timeout=pool.start_timeout_secs)
        except BaseException:  # never leave half-started named actors behind
            for handle in self.handles:
                ray.kill(handle, no_restart=True)
            raise

    def startup_phases(self) -> dict[str, float]:
        """The slowest shard's start: `shard_boot` (worker process → strategy stack imported) and
        `shard_restore` (its constructor: checkpoints restored), seconds, for the start-up log."""
        boots = [s["boot_secs"] for s in self.started if s.get("boot_secs") is not None]
        restores = [s["restore_secs"] for s in self.started]
        out = {"shard_restore": max(restores, default=0.0)}
        if boots:
            out["shard_boot"] = max(boots)
        return out

    def shard_of(self, symbol: str) -> int:
        return self._router.shard_of(symbol)

    # ------------------------------------------------------------------ the tick
    def evaluate(
        self,
        batch: Mapping[str, int],
        *,
        want_snapshot: Collection[str] = (),
        deadline_ms: float | None = None,
    ) -> TickResult:
        """Send one call per shard that owns a symbol of `batch`; wait at most the deadline.

        Every symbol of `batch` gets a record: the shard's decision, or a SHARD_* no-signal.
        """
        import ray

        started = time.perf_counter()
        deadline_secs = (deadline_ms if deadline_ms is not None else self._pool.deadline_ms) / 1000.0
        wanted = set(want_snapshot)
        decisions: dict[str, ShardDecision] = {}  # the driver's fail-closed records
        blocks: list[DecisionBlock] = []  # the shards' replies
        refs: dict[Any, tuple[int, Sequence[str]]] = {}
        configs = (self._config_version, self._configs) if self._config_version else None
        for shard, sub in self._router.split(batch).items():
            symbols = tuple(sub)
            if self._still_busy(shard):
                self._fail(shard, symbols, batch, decisions, ShardFault.BUSY, ShardStatus.SHARD_BUSY)
                continue
            snap = wanted.intersection(symbols) if wanted else ()
            ref = self.handles[shard].evaluate.remote(sub, snap, configs)
            refs[ref] = (shard, symbols)
        sent = time.monotonic()
        ready, late = ray.wait(list(refs), num_returns=len(refs), timeout=deadline_secs) if refs else ([], [])
        for ref in ready:  # each is already complete: these gets do not block
            self._collect(ref, refs[ref], batch, decisions, blocks)
        for ref in late:
            shard, symbols = refs[ref]
            self._pending[shard] = (ref, sent)
            self._fail(shard, symbols, batch, decisions, ShardFault.LATE, ShardStatus.SHARD_LATE)
        elapsed = (time.perf_counter() - started) * 1000.0
        self._metrics.round_ms(elapsed)
        return TickResult(decisions=TickDecisions(batch, blocks, decisions), alerts=self._faults.take(),
                          elapsed_ms=elapsed)

    def _collect(self, ref: Any, owner: tuple[int, Sequence[str]], batch: Mapping[str, int],
                 decisions: dict[str, ShardDecision], blocks: list[DecisionBlock]) -> None:
        """Take one shard's reply; a failed call or a malformed block fails its symbols closed."""
        import ray

        shard, symbols = owner
        try:
            block = ray.get(ref)
            check_reply(block, symbols)
        except (ray.exceptions.RayError, ValueError) as exc:  # actor died, evaluate raised, or a bad reply
            log.warning("shard %d failed this tick (%d symbols): %s", shard, len(symbols), type(exc).__name__)
            self._fail(shard, symbols, batch, decisions, ShardFault.DEAD, ShardStatus.SHARD_DEAD,
                       type(exc).__name__)
            return
        self._faults.note_gap_symbols(shard, block.gap_symbols())
        blocks.append(block)

    def _still_busy(self, shard: int) -> bool:
        """True while the shard's late call runs; kills the actor once that call is hung."""
        import ray

        pending = self._pending.get(shard)
        if pending is None:
            return False
        ref, sent = pending
        done, _ = ray.wait([ref], timeout=0)
        if done:
            del self._pending[shard]
            return False
        age = time.monotonic() - sent
        if age >= self._pool.hung_after_secs:
            self.restart_shard(shard)
            self._faults.raise_fault(shard, ShardFault.KILLED_HUNG, 0, f"call outstanding {age:.1f} s")
        return True

    def _fail(self, shard: int, symbols: Sequence[str], batch: Mapping[str, int],
              decisions: dict[str, ShardDecision], fault: ShardFault, status: ShardStatus,
              detail: str = "") -> None:
        for symbol in symbols:
            decisions[symbol] = no_signal(symbol, batch[symbol], status, shard)
        self._faults.raise_fault(shard, fault, len(symbols), detail)

    # ------------------------------------------------------------------ control
    def set_configs(self, configs: ConfigSource) -> None:
        """Hot-reload the strategy config: every shard applies it before its next evaluate."""
        self._configs = configs
        self._config_version += 1

    def retire(self, symbols: Sequence[str]) -> None:
        """Checkpoint, then forget symbols that left the watchlist (frees shard memory)."""
        import ray

        groups = self._router.group(symbols)
        refs = [self.handles[shard].drop.remote(syms) for shard, syms in groups.items()]
        ray.get(refs, timeout=self._pool.call_timeout_secs)

    def restart_shard(self, shard: int) -> None:
        """Kill shard `shard` so Ray restarts it (its constructor rehydrates from Redis)."""
        import ray

        self._pending.pop(shard, None)
        ray.kill(self.handles[shard], no_restart=False)

    def wait_ready(self, timeout_secs: float | None = None) -> None:
        """Block until every shard answers a ping (e.g. after a restart); raises GetTimeoutError."""
        import ray

        timeout = self._pool.start_timeout_secs if timeout_secs is None else timeout_secs
        ray.get([h.ping.remote() for h in self.handles], timeout=timeout)

    def stats(self) -> list[dict[str, Any]]:
        """Return every shard's counters, pid and RSS (one wait for all)."""
        import ray

        return ray.get([h.stats.remote() for h in self.handles], timeout=self._pool.call_timeout_secs)

    def checkpoint_all(self) -> int:
        import ray

        refs = [h.checkpoint.remote() for h in self.handles]
        return sum(ray.get(refs, timeout=self._pool.call_timeout_secs))

    def close(self) -> None:
        """Checkpoint every shard (best effort), then kill the actors for good."""
        import ray

        try:
            self.checkpoint_all()
        except ray.exceptions.RayError as exc:
            log.warning("final shard checkpoint failed: %s", exc)
        for handle in self.handles:
            ray.kill(handle, no_restart=True)
        self.handles = []
