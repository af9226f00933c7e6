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

``--pinned`` makes it a fair scale-out test instead: each worker node's processes (raylet, its
workers, the shard actors) are pinned to a CPU of their own by CPU affinity, inherited from the
driver thread that starts the raylet (`os.sched_setaffinity`) and checked afterwards on every
shard actor's process. Baseline "1_node_1_core": one node pinned to one core holding both
shards; "2_nodes_2_cores": two nodes, one core each, shards placed with SPREAD. The head, the
driver and Redis stay unpinned (the same in both layouts). The run fails (exit 1) unless the
two-node layout's shards ran on two distinct nodes and every shard process had its node's
affinity. Printed: the throughput ratio (goal >= 1.7) and, per layout, where the tick goes
(inside the busiest shard, the driver's own work, the rest = Ray calls and scheduling).
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
# --pinned: (logical CPUs per worker node, index of the core each node is pinned to).
PINNED_LAYOUTS: dict[str, tuple[list[int], list[int]]] = {
    "1_node_1_core": ([2], [0]),
    "2_nodes_2_cores": ([1, 1], [0, 1]),
}
PINNED_GOAL_RATIO = 1.7


class PinningError(RuntimeError):
    """A pinned layout did not run as claimed (shards on one node, or a process off its core)."""


@contextlib.contextmanager
def _affinity(cores: set[int] | None) -> Iterator[None]:
    """Run the block with this thread pinned to `cores` (processes it starts inherit the mask)."""
    if cores is None:
        yield
        return
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cores)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def loopback_cluster(worker_cpus: list[int], *, dashboard: bool = True, namespace: str = "aiq",
                     pins: list[set[int]] | None = None) -> Iterator[Any]:
    """Start head (0 CPUs) + one worker node per entry of `worker_cpus`, attach this driver.

    With `pins`, worker node i's raylet is started with CPU affinity `pins[i]`, so it and every
    worker it forks run only there; `cluster.aiq_pins` maps node id -> cores.

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
        cluster.aiq_pins = {}
        for i, cpus in enumerate(worker_cpus):
            pin = None if pins is None else pins[i]
            with _affinity(pin):
                node = cluster.add_node(num_cpus=cpus)
            if pin is not None:
                cluster.aiq_pins[node.node_id] = pin
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


def _cpu_ms(pid: int | None) -> float:
    """CPU time (user + system) a process used so far, ms; 0 when it is gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")


def _machine_busy_ms() -> float:
    """CPU time all cores spent busy so far (every process on the box, other users' too), ms."""
    user, nice, system, _idle, _iowait, irq, softirq, steal = (
        int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9])
    return (user + nice + system + irq + softirq + steal) * 1000.0 / os.sysconf("SC_CLK_TCK")


def _cpu_sample(shard_pids: list[int], redis_pid: int | None) -> dict[str, Any]:
    return {"shards": [_cpu_ms(p) for p in shard_pids], "redis": _cpu_ms(redis_pid),
            "driver": _cpu_ms(os.getpid()), "machine": _machine_busy_ms()}


def _cpu_per_tick(before: dict[str, Any], after: dict[str, Any], ticks: int) -> dict[str, Any]:
    """CPU ms per tick by who spent it: shards, Redis, this driver, everything else on the box."""
    shards = [round((b - a) / ticks, 2) for a, b in zip(before["shards"], after["shards"], strict=True)]
    own = {k: round((after[k] - before[k]) / ticks, 2) for k in ("redis", "driver", "machine")}
    own["other_processes"] = round(own["machine"] - sum(shards) - own["redis"] - own["driver"], 2)
    return {"shards": shards, **own}


def check_pinning(cluster: Any, namespace: str, n_shards: int, want_nodes: int) -> dict[str, Any]:
    """Prove where the shards ran: distinct node ids, and each process's affinity = its node's pin.

    Raises PinningError otherwise (the bench then exits 1: its numbers would mean nothing).
    """
    client = DashboardClient(dashboard_url(cluster), token=auth_token())
    rows = [r for r in client.actors(namespace) if r.state == "ALIVE" and r.name.startswith("aiq-shard-")]
    pins: dict[str, set[int]] = cluster.aiq_pins
    shards = {r.name: {"node_id": r.node_id, "pid": r.pid,
                       "affinity": sorted(os.sched_getaffinity(r.pid)) if r.pid else None,
                       "node_pin": sorted(pins.get(r.node_id or "", set()))} for r in rows}
    nodes = {v["node_id"] for v in shards.values()}
    if len(shards) != n_shards or len(nodes) != want_nodes:
        raise PinningError(f"{len(shards)} shards on {len(nodes)} node(s), wanted {n_shards} on "
                           f"{want_nodes}: {shards}")
    off = {n: v for n, v in shards.items() if not v["node_pin"] or v["affinity"] != v["node_pin"]}
    if off:
        raise PinningError(f"shard processes not on their node's core: {off}")
    return {"distinct_nodes": len(nodes), "shards": shards}


def run_layout(label: str, worker_cpus: list[int], args: argparse.Namespace, redis_url: str,
               client: Any, hist: dict[str, Any], first_bar: int,
               pins: list[set[int]] | None = None) -> dict[str, Any]:
    """Create a cluster of this layout, a pool on it, catch up, time `args.ticks` ticks."""
    from cluster.pool import PoolSettings, ShardPool
    from cluster.shard_core import ConfigSource, ShardSettings

    layout = RedisLayout(args.prefix, keep_bars=len(next(iter(hist.values()))) + 10)
    symbols = [s for s in hist if s != "BTC"]
    namespace = f"aiq-scale-{label}"
    with loopback_cluster(worker_cpus, namespace=namespace, pins=pins) as cluster:
        head = cluster.head_node.node_id
        t0 = time.perf_counter()
        pool = ShardPool(redis_url=redis_url, redis_prefix=args.prefix,
                         settings=ShardSettings(interval=INTERVAL, checkpoint_every=args.checkpoint_every),
                         configs=ConfigSource(), symbols=symbols,
                         pool=PoolSettings(n_shards=args.shards, namespace=namespace, deadline_ms=600_000,
                                           scheduling_strategy="SPREAD" if pins else None))
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
            pinning = check_pinning(cluster, namespace, args.shards, len(worker_cpus)) if pins else None
            latencies: list[float] = []
            driver_ms: list[float] = []
            not_ok = 0
            shard_pids = [int(st["pid"]) for st in pool.stats()]
            redis_pid = int(client.info("server")["process_id"])
            cpu_before = _cpu_sample(shard_pids, redis_pid)
            for bar in range(first_bar + SETTLE_TICKS, first_bar + SETTLE_TICKS + args.ticks):
                _write_bar(client, layout, hist, bar)
                t0 = time.perf_counter()
                keys = layout.read_candle_keys(client, symbols, INTERVAL)
                batch = {s: k.closed_close_ms for s, k in keys.items() if k.closed_close_ms is not None}
                t1 = time.perf_counter()
                result = pool.evaluate(batch)
                t2 = time.perf_counter()
                result.ranked()
                t3 = time.perf_counter()
                latencies.append((t3 - t0) * 1000.0)
                driver_ms.append((t1 - t0 + t3 - t2) * 1000.0)
                not_ok += sum(1 for r in result.decisions.values() if r.status.value != "ok")
            cpu = _cpu_per_tick(cpu_before, _cpu_sample(shard_pids, redis_pid), args.ticks)
            health_after = _health(cluster, namespace, args.shards)
            inside = [statistics.median(s["evaluate_ms_recent"][-args.ticks:]) for s in pool.stats()]
        finally:
            pool.close()
    total_secs = sum(latencies) / 1000.0
    tick_p50 = statistics.median(latencies)
    breakdown = {"tick_ms_p50": round(tick_p50, 2), "busiest_shard_ms": round(max(inside), 2),
                 "driver_ms": round(statistics.median(driver_ms), 2),
                 "ray_and_scheduling_ms": round(tick_p50 - max(inside) - statistics.median(driver_ms), 2),
                 "shard_imbalance_ms": round(max(inside) - min(inside), 2)}
    return {
        "layout": label, "worker_nodes": len(worker_cpus), "worker_cpus": worker_cpus,
        "loadavg_1m_after": round(os.getloadavg()[0], 2), "tick_ms": [round(x, 1) for x in latencies],
        "tick_ms_p50": round(statistics.median(latencies), 2),
        "tick_ms_p90": round(percentile(latencies, 0.9), 2),
        "tick_ms_max": round(max(latencies), 2),
        "symbols_per_sec": round(len(symbols) * len(latencies) / total_secs),
        "inside_shard_evaluate_ms_p50": [round(x, 2) for x in inside],
        "non_ok_records": not_ok, "tick_breakdown": breakdown, "pinning": pinning, "cpu_ms_per_tick": cpu,
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


def _pinned_report(results: list[dict[str, Any]], ratio: dict[str, float] | None) -> dict[str, Any]:
    """The fair scale-out verdict: throughput ratio against the goal, and where the ticks went."""
    where: dict[str, dict[str, float]] = {}
    cpu: dict[str, dict[str, Any]] = {}
    for label in PINNED_LAYOUTS:
        rows = [r["tick_breakdown"] for r in results if r["layout"] == label]
        where[label] = {k: round(statistics.median(row[k] for row in rows), 2) for k in rows[0]}
        cpus = [r["cpu_ms_per_tick"] for r in results if r["layout"] == label]
        cpu[label] = {k: round(statistics.median(c[k] for c in cpus), 2) for k in cpus[0] if k != "shards"}
        cpu[label]["shards_total"] = round(statistics.median(sum(c["shards"]) for c in cpus), 2)
    throughput = None if ratio is None else ratio["symbols_per_sec"]
    one, two = where["1_node_1_core"], where["2_nodes_2_cores"]
    return {
        "throughput_ratio": throughput, "goal": PINNED_GOAL_RATIO,
        "meets_goal": throughput is not None and throughput >= PINNED_GOAL_RATIO,
        "all_runs_pinned_and_on_distinct_nodes": all(r["pinning"] is not None for r in results),
        "where_the_tick_goes_ms_p50": where,
        "cpu_ms_per_tick_p50": cpu,
        # of the 2-node tick, the part that does not shrink with a second core: driver + Ray calls
        "serial_share_of_2_node_tick": round((two["driver_ms"] + two["ray_and_scheduling_ms"])
                                             / max(two["tick_ms_p50"], 1e-9), 3),
        "shard_speedup_busiest": round(one["busiest_shard_ms"] / max(two["busiest_shard_ms"], 1e-9), 3),
    }


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
    parser.add_argument("--pinned", action="store_true",
                        help="fair scale-out: 1 node on 1 core vs 2 nodes on 2 cores (CPU affinity); "
                             "--layouts and --cpus-per-node do not apply")
    parser.add_argument("--prefix", default="bench-scale")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.layouts.split(",")) - set(LAYOUTS))
    if unknown or not args.layouts:
        parser.error(f"--layouts: unknown {unknown}; choose from {','.join(LAYOUTS)}")
    layouts: list[tuple[str, list[int], list[set[int]] | None]] = [
        (label, cpus(args.cpus_per_node), None) for label, cpus in LAYOUTS.items()
        if label in args.layouts.split(",")]
    if args.pinned:
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) < 2:
            print(f"bench.scale --pinned needs 2 usable cores, this process may use {cores}", file=sys.stderr)
            return 2
        layouts = [(label, cpus, [{cores[i]} for i in which])
                   for label, (cpus, which) in PINNED_LAYOUTS.items()]

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
                for label, cpus, pins in layouts:
                    result = run_layout(label, cpus, args, server.url, client, hist, first_bar, pins)
                    result["round"] = round_no
                    out["results"].append(result)
                    first_bar += per_layout
                    if not args.json:
                        print(json.dumps(result), file=sys.stderr)
        finally:
            client.close()
            server.stop()
    out["summary"] = summary = _summary(out["results"], [label for label, _, _ in layouts], args.symbols)
    out["ratio_2_nodes_vs_1_node"] = None  # needs both layouts
    if len(summary) == 2:
        one, two = summary.values()
        out["ratio_2_nodes_vs_1_node"] = {
            "tick_ms_p50": round(two["tick_ms_p50"] / one["tick_ms_p50"], 3),
            "symbols_per_sec": round(two["symbols_per_sec"] / one["symbols_per_sec"], 3),
        }
    if args.pinned:
        out["pinned"] = _pinned_report(out["results"], out["ratio_2_nodes_vs_1_node"])
    out["dashboard_all_shards_alive_every_run"] = all(
        r["dashboard_shards"]["healthy"] and r["dashboard_shards"]["healthy_after_ticks"]
        and not r["dashboard_shards"]["on_head"] for r in out["results"])
    print(json.dumps(out, indent=None if args.json else 2))
    return 0 if not args.pinned or out["pinned"]["all_runs_pinned_and_on_distinct_nodes"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
