"""Tick latency and throughput of the shard pool on 1 worker node vs 2 worker nodes, same run.

    python -m bench.scale --symbols 10000 --json

Both layouts are real multi-process Ray clusters on this machine (`ray.cluster_utils.Cluster`,
every listener on 127.0.0.1), shaped like ray_cluster.yaml: a head with 0 CPUs (the driver lives
there) and the shards on worker nodes.
- baseline "1_node": one worker node with `--cpus-per-node x 2` logical CPUs; both shards on it;
- "2_nodes": two worker nodes with `--cpus-per-node` CPUs each; Ray spreads the shards
  (RAY_scheduler_spread_threshold=0.0, as ray_cluster.yaml sets on the head).
The shard count, the symbols, the history and the per-tick work are the same in both layouts,
which alternate `--rounds` times (the machine is shared, so a single pass mostly measures
whoever else was busy at that moment; `loadavg_1m_after` is recorded with every run).
Each timed tick: the "sidecar" writes one closed candle per symbol (untimed); then the clock
runs while the driver reads all close keys in one round trip, sends one evaluate per shard and
ranks the decisions. During the run the dashboard state API (cluster.cluster_health) must
list every shard actor as ALIVE and off the head; the answer goes into the JSON.

All nodes share this machine's cores, so two nodes cannot be faster than one here: the ratio
shows what the extra raylet and the cross-node object transfers cost, not a speed-up.
No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from bench.support import percentile
from bench.tick import _write_bar, _write_history
from bench.universe import INTERVAL, series, symbol_names
from cluster.cluster_health import DashboardClient, ShardHealth, auth_token, shard_health
from cluster.redis_layout import RedisLayout
from engine.runtime.redis_server import free_port

SPREAD_ENV = "RAY_scheduler_spread_threshold"
SETTLE_TICKS = 2
# Worker CPUs per layout, from --cpus-per-node: one node with both CPUs, or two nodes with one each.
LAYOUTS: dict[str, Callable[[int], list[int]]] = {
    "1_node": lambda cpus: [cpus * 2],
    "2_nodes": lambda cpus: [cpus] * 2,
}


@contextlib.contextmanager
def loopback_cluster(worker_cpus: list[int], *, dashboard: bool = True,
                     namespace: str = "aiq") -> Iterator[Any]:
    """Start head (0 CPUs) + one worker node per entry of `worker_cpus`, attach this driver.

    The driver attaches through engine.runtime.ray_runtime.connect_ray with RAY_ADDRESS (the same path
    the daemon takes), so this process must not be connected to Ray already. Everything is shut
    down on exit. Set RAY_TMPDIR to a private directory first if other Ray instances share the
    machine: Cluster writes the "current cluster" address file under it.
    """
    from engine.runtime.ray_runtime import RayAttachment, connect_ray, prepare_ray_environment, shutdown_ray

    prepare_ray_environment()
    os.environ.setdefault(SPREAD_ENV, "0.0")  # read by the GCS at start: spread, don't pack
    import ray
    from ray.cluster_utils import Cluster

    head_args: dict[str, Any] = {"num_cpus": 0, "include_dashboard": dashboard}
    if dashboard:
        head_args.update(dashboard_host="127.0.0.1", dashboard_port=free_port())
    cluster = Cluster(initialize_head=True, head_node_args=head_args)
    previous = os.environ.get("RAY_ADDRESS")
    try:
        for cpus in worker_cpus:
            cluster.add_node(num_cpus=cpus)
        cluster.wait_for_nodes()
        os.environ["RAY_ADDRESS"] = cluster.address
        info = connect_ray(namespace=namespace)
        if info.attachment is not RayAttachment.ATTACHED:
            raise RuntimeError(f"expected to attach to {cluster.address}, got {info}")
        yield cluster
    finally:
        if ray.is_initialized():
            shutdown_ray()
        cluster.shutdown()
        if previous is None:
            os.environ.pop("RAY_ADDRESS", None)
        else:
            os.environ["RAY_ADDRESS"] = previous


def dashboard_url(cluster: Any) -> str:
    url = cluster.webui_url or ""
    return url if url.startswith("http") else f"http://{url}"


def _health(cluster: Any, namespace: str, n_shards: int) -> ShardHealth:
    client = DashboardClient(dashboard_url(cluster), token=auth_token())
    deadline = time.monotonic() + 30.0
    while True:  # the state API lags actor creation by a moment
        health = shard_health(client, namespace, n_shards)
        if health.healthy or time.monotonic() > deadline:
            return health
        time.sleep(0.2)


def run_layout(label: str, worker_cpus: list[int], args: argparse.Namespace, redis_url: str,
               client: Any, hist: dict[str, Any], first_bar: int) -> dict[str, Any]:
    """Create a cluster of this layout, a pool on it, catch up, time `args.ticks` ticks."""
    from cluster.pool import PoolSettings, ShardPool
    from cluster.shard_core import ConfigSource, ShardSettings

    layout = RedisLayout(args.prefix, keep_bars=len(next(iter(hist.values()))) + 10)
    symbols = [s for s in hist if s != "BTC"]
    namespace = f"aiq-scale-{label}"
    with loopback_cluster(worker_cpus, namespace=namespace) as cluster:
        head = cluster.head_node.node_id
        t0 = time.perf_counter()
        pool = ShardPool(redis_url=redis_url, redis_prefix=args.prefix,
                         settings=ShardSettings(interval=INTERVAL, checkpoint_every=args.checkpoint_every),
                         configs=ConfigSource(), symbols=symbols,
                         pool=PoolSettings(n_shards=args.shards, namespace=namespace, deadline_ms=600_000))
        create_secs = time.perf_counter() - t0
        try:
            keys = layout.read_candle_keys(client, symbols, INTERVAL)
            t0 = time.perf_counter()
            pool.evaluate({s: k.closed_close_ms for s, k in keys.items() if k.closed_close_ms is not None})
            catch_up_secs = time.perf_counter() - t0
            for bar in range(first_bar, first_bar + SETTLE_TICKS):  # untimed: first ticks after a restore
                _write_bar(client, layout, hist, bar)
                pool.evaluate({s: hist[s][bar].close_ms for s in symbols})
            health = _health(cluster, namespace, args.shards)
            latencies: list[float] = []
            not_ok = 0
            for bar in range(first_bar + SETTLE_TICKS, first_bar + SETTLE_TICKS + args.ticks):
                _write_bar(client, layout, hist, bar)
                t0 = time.perf_counter()
                keys = layout.read_candle_keys(client, symbols, INTERVAL)
                result = pool.evaluate({s: k.closed_close_ms for s, k in keys.items()
                                        if k.closed_close_ms is not None})
                result.ranked()
                latencies.append((time.perf_counter() - t0) * 1000.0)
                not_ok += sum(1 for r in result.decisions.values() if r.status.value != "ok")
            health_after = _health(cluster, namespace, args.shards)
            inside = [statistics.median(s["evaluate_ms_recent"][-args.ticks:]) for s in pool.stats()]
        finally:
            pool.close()
    total_secs = sum(latencies) / 1000.0
    return {
        "layout": label, "worker_nodes": len(worker_cpus), "worker_cpus": worker_cpus,
        "loadavg_1m_after": round(os.getloadavg()[0], 2), "tick_ms": [round(x, 1) for x in latencies],
        "tick_ms_p50": round(statistics.median(latencies), 2),
        "tick_ms_p90": round(percentile(latencies, 0.9), 2),
        "tick_ms_max": round(max(latencies), 2),
        "symbols_per_sec": round(len(symbols) * len(latencies) / total_secs),
        "inside_shard_evaluate_ms_p50": [round(x, 2) for x in inside],
        "non_ok_records": not_ok,
        "setup_secs": {"pool_create": round(create_secs, 1), "catch_up": round(catch_up_secs, 1)},
        "dashboard_shards": {
            "alive": list(health.alive), "healthy": health.healthy, "on_head": list(health.on_head),
            "distinct_nodes": len(set(health.node_of.values())), "head_node": head,
            "node_of": dict(health.node_of), "healthy_after_ticks": health_after.healthy,
        },
    }


def _summary(results: list[dict[str, Any]], labels: list[str], symbols: int) -> dict[str, dict[str, Any]]:
    summary = {}
    for label in labels:
        ticks = [t for r in results if r["layout"] == label for t in r["tick_ms"]]
        summary[label] = {"tick_ms_p50": round(statistics.median(ticks), 2),
                          "symbols_per_sec": round(symbols * len(ticks) / (sum(ticks) / 1000.0)),
                          "ticks": len(ticks)}
    return summary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--cpus-per-node", type=int, default=1, help="logical CPUs per worker in '2_nodes'")
    parser.add_argument("--ticks", type=int, default=15)
    parser.add_argument("--warm-bars", type=int, default=260)
    parser.add_argument("--checkpoint-every", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternate the layouts this many times (the box is shared: shows the noise)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help="comma-separated subset of " + ",".join(LAYOUTS) + " (one layout: no ratio; "
                             "the smoke test runs 2_nodes alone)")
    parser.add_argument("--prefix", default="bench-scale")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.layouts.split(",")) - set(LAYOUTS))
    if unknown or not args.layouts:
        parser.error(f"--layouts: unknown {unknown}; choose from {','.join(LAYOUTS)}")
    layouts = [(label, cpus(args.cpus_per_node)) for label, cpus in LAYOUTS.items()
               if label in args.layouts.split(",")]

    from engine.runtime.ray_runtime import prepare_ray_environment
    from engine.runtime.redis_server import EmbeddedRedis

    prepare_ray_environment()
    import redis

    out: dict[str, Any] = {"bench": "scale", "cpus": os.cpu_count(), "python": sys.version.split()[0],
                           "symbols": args.symbols, "shards": args.shards, "ticks": args.ticks,
                           "warm_bars": args.warm_bars, "results": []}
    names = symbol_names(args.symbols)
    per_layout = SETTLE_TICKS + args.ticks
    bars = args.warm_bars + len(layouts) * args.rounds * per_layout + 1
    hist = {s: series(i, bars) for i, s in enumerate(names)}
    hist["BTC"] = series(0, bars, anchor=True)
    with tempfile.TemporaryDirectory(prefix="aiqs-", dir="/tmp") as tmp:
        os.environ.setdefault("RAY_TMPDIR", tmp)  # our clusters' address files stay private
        server = EmbeddedRedis(Path(tmp) / "redis", appendonly=False)
        server.start()
        client = redis.Redis.from_url(server.url)
        try:
            layout = RedisLayout(args.prefix, keep_bars=bars + 10)
            t0 = time.perf_counter()
            _write_history(client, layout, hist, args.warm_bars)
            out["redis_load_secs"] = round(time.perf_counter() - t0, 1)
            # Each run after the first restores the previous run's final checkpoints (a planned
            # restart), then runs the next ticks: the same per-tick work, one new candle per symbol.
            first_bar = args.warm_bars
            for round_no in range(args.rounds):
                for label, cpus in layouts:
                    result = run_layout(label, cpus, args, server.url, client, hist, first_bar)
                    result["round"] = round_no
                    out["results"].append(result)
                    first_bar += per_layout
                    if not args.json:
                        print(json.dumps(result), file=sys.stderr)
        finally:
            client.close()
            server.stop()
    out["summary"] = summary = _summary(out["results"], [label for label, _ in layouts], args.symbols)
    out["ratio_2_nodes_vs_1_node"] = None  # needs both layouts
    if len(summary) == len(LAYOUTS):
        one, two = summary["1_node"], summary["2_nodes"]
        out["ratio_2_nodes_vs_1_node"] = {
            "tick_ms_p50": round(two["tick_ms_p50"] / one["tick_ms_p50"], 3),
            "symbols_per_sec": round(two["symbols_per_sec"] / one["symbols_per_sec"], 3),
        }
    out["dashboard_all_shards_alive_every_run"] = all(
        r["dashboard_shards"]["healthy"] and r["dashboard_shards"]["healthy_after_ticks"]
        and not r["dashboard_shards"]["on_head"] for r in out["results"])
    print(json.dumps(out, indent=None if args.json else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
