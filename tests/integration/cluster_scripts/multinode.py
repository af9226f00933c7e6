"""Subprocess body of test_cluster_multinode: head + 2 worker nodes, a worker dies mid-run.

Run by the test with a tagged environment (common.cluster_env); prints one JSON document on
stdout and asserts nothing itself. The pytest process keeps its own session Ray, which is why
this runs in a separate process.

1. A loopback cluster shaped like ray_cluster.yaml (head with 0 CPUs, 2 worker nodes, spread
   scheduling); this driver attaches through engine.runtime.ray_runtime.connect_ray (RAY_ADDRESS).
2. A ShardPool with 4 shards; the dashboard state API (cluster.cluster_health) says where they are.
3. Every tick the "sidecar" writes one closed candle per symbol to Redis, the "driver" reads the
   close keys and evaluates the changed symbols on the pool AND on an in-process executor over a
   memory store that is never interrupted (the reference run).
4. At tick `--kill-at` the worker node hosting shard 0 is killed (no graceful shutdown). The tick
   must still return (fail-closed records allowed for that node's shards on that tick only).
   Then we wait until the dashboard shows every shard ALIVE again, none on the dead node.
5. Every other record of every tick must equal the reference run.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

PREFIX_DEFAULT = "t-cluster-mn"
NAMESPACE = "aiq-t-cluster-mn"


def _record(r: Any) -> list[Any]:
    return [r.status.value, r.signal.value, r.confidence.value, r.score, r.t, r.history_gap]


def _compare(k: int, symbols: list[str], got: Any, want: Any, shard_of: Any,
             mismatches: list[Any], fail_closed: list[Any]) -> None:
    """File every symbol whose pool record differs from the reference (fail-closed or a real mismatch)."""
    for s in symbols:
        g, w = _record(got.decisions[s]), _record(want.decisions[s])
        if g == w:
            continue
        entry = [k, s, shard_of(s), g, w]
        (fail_closed if g[0] != "ok" else mismatches).append(entry)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--redis-url", required=True)
    parser.add_argument("--prefix", default=PREFIX_DEFAULT)
    parser.add_argument("--symbols", type=int, default=40)
    parser.add_argument("--shards", type=int, default=4)
    parser.add_argument("--warm", type=int, default=250)
    parser.add_argument("--ticks", type=int, default=20)
    parser.add_argument("--kill-at", type=int, default=6)
    args = parser.parse_args(argv)

    import redis

    from bench.scale import dashboard_url, loopback_cluster
    from bench.universe import INTERVAL, series, symbol_names
    from cluster.cluster_health import DashboardClient, ShardHealth, shard_health
    from cluster.inprocess import InProcessExecutor
    from cluster.pool import PoolSettings, ShardPool
    from cluster.redis_layout import RedisLayout
    from cluster.shard_core import ConfigSource, ShardSettings
    from cluster.shard_store import MemoryShardStore

    settings = ShardSettings(interval=INTERVAL, checkpoint_every=4)
    client = redis.Redis.from_url(args.redis_url)
    layout = RedisLayout(args.prefix)
    symbols = symbol_names(args.symbols)
    hist = {s: series(i, args.warm + args.ticks) for i, s in enumerate(symbols)}
    hist["BTC"] = series(0, args.warm + args.ticks, anchor=True)
    memory = MemoryShardStore()
    seen: dict[str, int] = {}

    def publish(start: int, stop: int) -> dict[str, int]:
        pipe = client.pipeline(transaction=True)
        layout.write_closed_many(pipe, INTERVAL, {s: c[start:stop] for s, c in hist.items()})
        pipe.execute()
        for s, c in hist.items():
            memory.add_closed(s, c[start:stop])
        keys = layout.read_candle_keys(client, symbols, INTERVAL)
        changed = {s: k.closed_close_ms for s, k in keys.items()
                   if k.closed_close_ms is not None and k.closed_close_ms != seen.get(s)}
        seen.update(changed)
        return changed

    out: dict[str, Any] = {"ticks": args.ticks, "kill_at": args.kill_at, "symbols": args.symbols}
    reference = InProcessExecutor(args.shards, lambda _i: memory, settings, ConfigSource(), symbols=symbols)
    first_batch = publish(0, args.warm)
    reference.evaluate(first_batch)
    with loopback_cluster([1, 1], namespace=NAMESPACE) as cluster:
        out["ray_address"] = cluster.address
        out["head_node"] = cluster.head_node.node_id
        workers = {node.node_id: node for node in cluster.worker_nodes}
        out["worker_nodes"] = sorted(workers)
        dashboard = DashboardClient(dashboard_url(cluster))
        out["dashboard_url"] = dashboard.url

        def wait_health(ok: Any, timeout_secs: float = 60.0) -> ShardHealth:
            deadline = time.monotonic() + timeout_secs
            while True:
                health = shard_health(dashboard, NAMESPACE, args.shards)
                if ok(health) or time.monotonic() > deadline:
                    return health
                time.sleep(0.2)

        pool = ShardPool(redis_url=args.redis_url, redis_prefix=args.prefix, settings=settings,
                         configs=ConfigSource(), symbols=symbols,
                         pool=PoolSettings(n_shards=args.shards, namespace=NAMESPACE, deadline_ms=45_000))
        try:
            pool.evaluate(first_batch)  # catch up on the warm history
            before = wait_health(lambda h: h.healthy)
            out["before"] = before.to_json()
            out["pids_before"] = {s["shard"]: s["pid"] for s in pool.stats()}
            victim_node = before.node_of.get("aiq-shard-0")
            moved = sorted(int(name.rsplit("-", 1)[1])
                           for name, node in before.node_of.items() if node == victim_node)
            out["victim_node"] = victim_node
            out["moved_shards"] = moved
            mismatches: list[Any] = []
            fail_closed: list[Any] = []
            for k in range(args.ticks):
                bar = args.warm + k
                batch = publish(bar, bar + 1)
                if k == args.kill_at:
                    cluster.remove_node(workers[victim_node], allow_graceful=False)  # the node crashes
                    t_kill = time.monotonic()
                got = pool.evaluate(batch)
                want = reference.evaluate(batch)
                _compare(k, symbols, got, want, pool.shard_of, mismatches, fail_closed)
                if k == args.kill_at:
                    out["kill_tick_alerts"] = [a.fault.value for a in got.alerts]
                    after = wait_health(lambda h, v=victim_node: h.healthy and v not in h.node_of.values())
                    out["recovery_secs"] = round(time.monotonic() - t_kill, 1)
                    out["after"] = after.to_json()
            stats = pool.stats()
            out["pids_after"] = {s["shard"]: s["pid"] for s in stats}
            out["rehydrated"] = {s["shard"]: s["rehydrated"] for s in stats}
            out["mismatches"] = mismatches
            out["fail_closed"] = fail_closed
            out["nodes_alive_after"] = sorted(n.node_id for n in dashboard.nodes() if n.state == "ALIVE")
        finally:
            pool.close()
    client.close()
    out["ray_tmpdir"] = os.environ.get("RAY_TMPDIR")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
