"""Real Ray + real Redis: ShardPool decisions equal the batch strategy, through kills and re-shards.

Candles are written exactly as the sidecar writes them (RedisLayout.write_closed_many on one
MULTI/EXEC pipeline: candles, close keys, notification); the driver side reads the close keys
in one round trip and sends the symbols whose key changed, like the daemon's tick.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from bench.universe import INTERVAL, series, symbol_names
from cluster.pool import PoolSettings, ShardPool
from cluster.records import ShardAlert, ShardFault, ShardStatus, TickResult
from cluster.redis_layout import RedisLayout
from cluster.shard_core import ConfigSource, ShardSettings
from cluster.sharding import moved_symbols
from engine.runtime.redis_server import EmbeddedRedis
from tests.unit.test_shard_core import assert_matches, oracle

N_SYMBOLS = 60
WARM = 250
TICKS = 105
PREFIX = "t-shards"
SETTINGS = ShardSettings(interval=INTERVAL, checkpoint_every=4)


class Feed:
    """Plays the sidecar (writes) and the driver's key scan (reads) for the synthetic universe."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.layout = RedisLayout(PREFIX)
        self.symbols = symbol_names(N_SYMBOLS)
        self.hist = {s: series(i, WARM + TICKS) for i, s in enumerate(self.symbols)}
        self.hist["BTC"] = series(0, WARM + TICKS, anchor=True)
        self.seen: dict[str, int] = {}

    def write(self, start: int, stop: int) -> None:
        pipe = self.client.pipeline(transaction=True)
        self.layout.write_closed_many(pipe, INTERVAL, {s: c[start:stop] for s, c in self.hist.items()})
        pipe.execute()

    def changed_keys(self) -> dict[str, int]:
        keys = self.layout.read_candle_keys(self.client, self.symbols, INTERVAL)
        changed = {s: k.closed_close_ms for s, k in keys.items()
                   if k.closed_close_ms is not None and k.closed_close_ms != self.seen.get(s)}
        self.seen.update(changed)
        return changed


def wait_until(condition: Callable[[], bool], timeout_secs: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_secs
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached before the deadline")
        time.sleep(0.05)


def make_pool(redis_server: EmbeddedRedis, namespace: str, n_shards: int, symbols: list[str],
              alerts: list[ShardAlert] | None = None, **pool_kw: Any) -> ShardPool:
    return ShardPool(
        redis_url=redis_server.url, redis_prefix=PREFIX, settings=SETTINGS, configs=ConfigSource(),
        pool=PoolSettings(n_shards=n_shards, namespace=namespace, deadline_ms=60_000, **pool_kw),
        symbols=symbols, alert=None if alerts is None else alerts.append,
    )


def pid_of(pool: ShardPool, shard: int) -> int | None:
    import ray

    try:
        return ray.get(pool.handles[shard].stats.remote(), timeout=30)["pid"]
    except ray.exceptions.RayError:
        return None


@pytest.mark.usefixtures("ray_session")
def test_pool_decisions_equal_batch_through_a_kill_and_a_reshard(
    redis_server: EmbeddedRedis, redis_client: Any
) -> None:
    import ray

    feed = Feed(redis_client)
    feed.write(0, WARM)
    expected = {s: oracle(s, feed.hist[s], feed.hist["BTC"]) for s in feed.symbols}
    alerts: list[ShardAlert] = []
    pool = make_pool(redis_server, "aiq-t-shards-a", 3, feed.symbols, alerts)
    names = {a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
             if a["namespace"] == "aiq-t-shards-a"}
    assert names == {"aiq-shard-0", "aiq-shard-1", "aiq-shard-2"}
    assert [r["shard"] for r in pool.started] == [0, 1, 2]  # each actor's start record, in shard order
    assert set(pool.startup_phases()) == {"shard_boot", "shard_restore"}
    results: list[TickResult] = []
    kill_at, reshard_at = 40, 80
    victim = pool.shard_of(feed.symbols[0])
    old_pid = pid_of(pool, victim)
    try:
        for bar in range(WARM, WARM + TICKS):
            feed.write(bar, bar + 1)
            batch = feed.changed_keys()
            assert len(batch) == N_SYMBOLS
            if bar == WARM + kill_at:
                ray.kill(pool.handles[victim], no_restart=False)  # Ray restarts it; next call rehydrates
            if bar == WARM + reshard_at:
                pool.close()  # final checkpoints, then K=3 -> K=4 in a fresh namespace
                pool = make_pool(redis_server, "aiq-t-shards-b", 4, feed.symbols, alerts)
            results.append(pool.evaluate(batch, want_snapshot={feed.symbols[1]}))  # an "open position"
            if bar == WARM + kill_at:
                wait_until(lambda p=pool: pid_of(p, victim) not in (None, old_pid))
                stats = ray.get(pool.handles[victim].stats.remote(), timeout=30)
                assert stats["rehydrated"]["checkpoint"] > 0
                again = ray.get(pool.handles[victim].started.remote(), timeout=30)  # the restart's record
                assert again["pid"] == stats["pid"] != old_pid and again["checkpoints"] > 0
        progress = {}
        for handle in pool.handles:
            progress.update(ray.get(handle.progress.remote(feed.symbols), timeout=30))
        pool.retire(feed.symbols[:2])  # left the watchlist: checkpointed, then forgotten
        owner = pool.handles[pool.shard_of(feed.symbols[0])]
        assert ray.get(owner.progress.remote(feed.symbols[:1]), timeout=30) == {}
    finally:
        pool.close()

    # Every tick, every symbol: a real decision equal to batch analyze over the full history.
    for k, result in enumerate(results):
        assert set(result.decisions) == set(feed.symbols)
        for s, record in result.decisions.items():
            assert_matches(record, expected[s][WARM + k])
            assert record.t == feed.hist[s][WARM + k].t
            assert (record.features is not None) == (record.actionable or s == feed.symbols[1])
    # No candle applied twice or skipped: each symbol's state holds exactly the whole history.
    assert progress == {s: (feed.hist[s][-1].t, WARM + TICKS) for s in feed.symbols}
    assert not alerts
    moved = moved_symbols(feed.symbols, 3, 4)
    assert 0 < len(moved) < N_SYMBOLS / 2


@pytest.mark.usefixtures("ray_session")
def test_pool_late_shard_yields_no_signal_alert_then_kill_and_recovers(
    redis_server: EmbeddedRedis, redis_client: Any
) -> None:
    feed = Feed(redis_client)
    feed.write(0, WARM)
    alerts: list[ShardAlert] = []
    # hung_after_secs=0: a late call still running at the next tick counts as hung (the first call
    # catches up 60 symbols x 250 bars, far longer than the moment between these two ticks)
    pool = make_pool(redis_server, "aiq-t-shards-late", 1, feed.symbols, alerts, hung_after_secs=0.0)
    try:
        batch = feed.changed_keys()
        # A deadline no real actor call can meet: the tick must come back anyway, fail-closed.
        late = pool.evaluate(batch, deadline_ms=0.001)
        assert {r.status for r in late.decisions.values()} == {ShardStatus.SHARD_LATE}
        assert not late.ranked()
        assert [a.fault for a in late.alerts] == [ShardFault.LATE]
        second = pool.evaluate(batch, deadline_ms=0.001)
        assert {r.status for r in second.decisions.values()} == {ShardStatus.SHARD_BUSY}
        assert [a.fault for a in second.alerts] == [ShardFault.KILLED_HUNG, ShardFault.BUSY]
        pool.wait_ready()
        recovered = pool.evaluate(batch)  # restarted shard rehydrates; same key, same history
        expected = {s: oracle(s, feed.hist[s][:WARM], feed.hist["BTC"][:WARM]) for s in feed.symbols}
        for s, record in recovered.decisions.items():
            assert_matches(record, expected[s][WARM - 1])
        assert not recovered.alerts
        assert recovered.ranked()  # some real entries, so the flat-mode check below has teeth
        # Hot reload to "flat" (no entries), then a restart: Ray re-runs __init__ with the original
        # config, and the version riding on every call must re-apply the reloaded one.
        pool.set_configs(ConfigSource(strategy_mode="flat"))
        before = pid_of(pool, 0)
        pool.restart_shard(0)
        wait_until(lambda: pid_of(pool, 0) not in (None, before))  # served by the restarted process
        flat = pool.evaluate(batch)
        assert {r.status for r in flat.decisions.values()} == {ShardStatus.OK}
        assert not flat.ranked()
    finally:
        pool.close()
    assert alerts  # the sink saw the same faults


@pytest.mark.usefixtures("ray_session")
def test_pool_names_are_exclusive_and_reusable_right_after_close(
    redis_server: EmbeddedRedis, redis_client: Any
) -> None:
    import ray

    feed = Feed(redis_client)
    feed.write(0, WARM)
    first = make_pool(redis_server, "aiq-t-shards-names", 1, feed.symbols[:3])
    try:
        with pytest.raises(ray.exceptions.ActorAlreadyExistsError):
            make_pool(redis_server, "aiq-t-shards-names", 1, feed.symbols[:3], start_timeout_secs=1.0)
        batch = {s: feed.hist[s][WARM - 1].close_ms for s in feed.symbols[:3]}
        assert {r.status for r in first.evaluate(batch).decisions.values()} == {ShardStatus.OK}
    finally:
        first.close()  # ray.kill is asynchronous: the name may still be held for a moment
    second = make_pool(redis_server, "aiq-t-shards-names", 1, feed.symbols[:3])
    try:
        result = second.evaluate({s: feed.hist[s][WARM - 1].close_ms for s in feed.symbols[:3]})
        assert {r.status for r in result.decisions.values()} == {ShardStatus.OK}
    finally:
        second.close()
