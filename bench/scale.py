"""Tick latency and throughput of the shard pool on 1 worker node vs 2 worker nodes, same run.

    python -m bench.scale --symbols 10000 --json
    python -m bench.scale --pinned --symbols 1000 --variants 8 --bars-per-call 4 --json

Both layouts are real multi-process Ray clusters on this machine (`ray.cluster_utils.Cluster`,
every listener on 127.0.0.1), shaped like ray_cluster.yaml: a head with 0 CPUs (the driver lives
there) and the shards on worker nodes.
- baseline "1_node": one worker node with `--cpus-per-node x 2` logical CPUs; both shards on it;
- "2_nodes": two worker nodes with `--cpus-per-node` CPUs each; Ray spreads the shards
  (RAY_scheduler_spread_threshold=0.0, as ray_cluster.yaml sets on the head).
The shard count, the symbols, the variants, the history and the per-call work are the same in
both layouts, which alternate `--rounds` times (the machine is shared, so a single pass mostly
measures whoever else was busy at that moment; the load average is recorded with every run).
Each timed tick: the "sidecar" writes `--bars-per-call` closed candles per symbol (untimed: a
driver that fell behind by that many candles, so each shard call carries that many candles of
indicator work per row); then the clock runs while the driver reads all close keys in one round
trip, sends one evaluate per shard and ranks the decisions. `--variants V` adds V
donchian_breakout shadow rows per symbol (as bench.tick), so a call evaluates symbols x (1 + V)
rows. The dashboard state API (cluster.cluster_health) must list every shard ALIVE off the head.

Without --pinned all nodes share the cores: the ratio shows the extra raylet's cost, not a speed-up.

``--pinned`` is the scale-out test: each worker node's processes (raylet, its workers and their
children, every thread) are pinned by CPU affinity once the node is up (workers forked later
inherit the raylet's mask; the tree is pinned again once the shards exist).
"1_node_1_core": one node on core 0 holding both shards; "2_nodes_2_cores": two nodes on a core
each, shards placed with SPREAD. `--head-cores layout` (default) confines the head's processes,
this driver and Redis to the cores of the layout too, so the 1-core layout is a whole 1-core
system and cannot borrow the second core for them (`free` leaves them unpinned, as before).
Checked and printed for every run, from /proc: every thread of every process of each node and
its affinity, the CPU time each node / the head / the driver / Redis / everything else on the
box used inside the timed windows. The run fails (exit 1) unless the two-node shards ran on two
distinct nodes and every node process had its node's mask. Printed: the wall-time throughput
ratio (goal >= 1.7), the ratio on worker-node CPU-seconds per row, the shard-work ratio, and
where the 2-node tick loses against a perfect 2x (driver, Ray calls, shard work: they add up).
`ticks_detail` lists every timed tick: its parts, the driver thread's CPU inside the Ray calls,
each shard's evaluate and checkpoint ms (and how many symbols it checkpointed) and the bytes each
shard's reply pickles to. Pinning and the CPU accounting live in bench/pinning.py.
No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import pickle
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

from bench.pinning import (
    CpuWindows,
    check_pinning,
    dashboard_url,
    node_roots,
    pin_head,
    pin_tree,
    pin_workers,
    process_groups,
)
from bench.support import descendants, percentile, proc_table
from bench.tick import _source, _write_bar, _write_history
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
# A tick = driver (read keys + rank) + evaluate; evaluate = busiest shard + the rest (Ray calls,
# result transfer and unpacking). Means of these parts add up to the mean tick exactly.
TICK_PARTS = ("driver_ms", "ray_overhead_ms", "busiest_shard_ms")


RAY_START_TIMEOUT = "timed out during startup"  # Ray waits a fixed 30 s for a node to register
START_ATTEMPTS = 3


def start_node(start: Callable[[], Any], attempts: int = START_ATTEMPTS) -> Any:
    """Run `start` (a Ray node start); on Ray's start-up timeout, which a box at load 20 can hit,
    kill the processes the failed start left behind (this process's new descendants) and retry."""
    for attempt in range(1, attempts + 1):
        before = descendants(proc_table(), [os.getpid()])
        try:
            return start()
        except Exception as exc:
            if RAY_START_TIMEOUT not in str(exc) or attempt == attempts:
                raise
            for pid in descendants(proc_table(), [os.getpid()]) - before:
                with contextlib.suppress(OSError):
                    os.kill(pid, signal.SIGKILL)
            print(f"bench.scale: Ray node start timed out (attempt {attempt}/{attempts}); retrying",
                  file=sys.stderr)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def loopback_cluster(worker_cpus: list[int], *, dashboard: bool = True, namespace: str = "aiq",
                     pins: list[set[int]] | None = None) -> Iterator[Any]:
    """Start head (0 CPUs) + one worker node per entry of `worker_cpus`, attach this driver.

    With `pins`, worker node i's process tree (raylet, agents, workers) is pinned to `pins[i]` once
    the nodes are up; workers the raylet forks later inherit it. `cluster.aiq_nodes` lists
    (node, pin) in `worker_cpus` order.

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
    cluster = start_node(lambda: Cluster(initialize_head=True, head_node_args=head_args))
    previous = os.environ.get("RAY_ADDRESS")
    try:
        cluster.aiq_nodes = []
        for i, cpus in enumerate(worker_cpus):
            node = start_node(lambda cpus=cpus: cluster.add_node(num_cpus=cpus))
            cluster.aiq_nodes.append((node, None if pins is None else pins[i]))
        cluster.wait_for_nodes()
        pin_workers(cluster)
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


def _health(cluster: Any, namespace: str, n_shards: int) -> ShardHealth:
    client = DashboardClient(dashboard_url(cluster), token=auth_token())
    deadline = time.monotonic() + 30.0
    while True:  # the state API lags actor creation by a moment
        health = shard_health(client, namespace, n_shards)
        if health.healthy or time.monotonic() > deadline:
            return health
        time.sleep(0.2)


def tick_parts(eval_ms: float, driver_ms: float, inside_ms: list[float]) -> dict[str, float]:
    """One tick split into TICK_PARTS (they add up to driver + evaluate wall time)."""
    busiest = max(inside_ms)
    return {"driver_ms": driver_ms, "ray_overhead_ms": eval_ms - busiest, "busiest_shard_ms": busiest}


def scaling_loss(one: Mapping[str, float], two: Mapping[str, float], cores: int = 2) -> dict[str, float]:
    """Where the `cores`-node tick loses against perfect scaling of the 1-node tick, ms per tick.

    Perfect scaling divides every part of the 1-node tick by `cores`; each part's excess is
    two[part] - one[part] / cores, and the excesses add up to tick_2 - tick_1 / cores. Also the
    ratio the tick would reach if only the shard work scaled (driver and Ray calls unchanged).
    """
    loss = {part: round(two[part] - one[part] / cores, 2) for part in TICK_PARTS}
    tick_one, tick_two = (sum(t[p] for p in TICK_PARTS) for t in (one, two))
    loss["total_ms"] = round(tick_two - tick_one / cores, 2)
    serial = one["driver_ms"] + one["ray_overhead_ms"]
    loss["ratio_if_only_shard_work_scaled"] = round(tick_one / (serial + one["busiest_shard_ms"] / cores), 3)
    return loss


def _timed_ticks(pool: Any, client: Any, layout: RedisLayout, hist: dict[str, Any], symbols: list[str],
                 bars: range, per_call: int, cpu: CpuWindows) -> dict[str, Any]:
    """Run the timed ticks: write `per_call` bars (untimed), then read keys, evaluate, rank."""
    ticks: list[dict[str, float]] = []
    not_ok = 0
    for first in bars:
        for bar in range(first, first + per_call):
            _write_bar(client, layout, hist, bar)
        cpu.start()
        t0 = time.perf_counter()
        keys = layout.read_candle_keys(client, symbols, INTERVAL)
        batch = {s: k.closed_close_ms for s, k in keys.items() if k.closed_close_ms is not None}
        t1, c1 = time.perf_counter(), time.thread_time()
        result = pool.evaluate(batch)
        t2, c2 = time.perf_counter(), time.thread_time()
        result.ranked()
        t3 = time.perf_counter()
        cpu.stop()
        ticks.append({"wall_ms": (t3 - t0) * 1000.0, "eval_ms": (t2 - t1) * 1000.0,
                      "driver_ms": (t1 - t0 + t3 - t2) * 1000.0, "eval_driver_cpu_ms": (c2 - c1) * 1000.0,
                      # untimed: what each shard's reply pickles to (Ray returns > 100 KiB via plasma)
                      "reply_bytes": [len(pickle.dumps(b, protocol=5)) for b in result.decisions.blocks]})
        not_ok += sum(1 for r in result.decisions.values() if r.status.value != "ok")
    stats = pool.stats()
    inside = [s["evaluate_ms_recent"][-len(ticks):] for s in stats]
    checkpoints = [s["checkpoint_ms_recent"][-len(ticks):] for s in stats]
    for i, tick in enumerate(ticks):
        tick["inside_ms"] = [shard[i] for shard in inside]
        tick["checkpoint_ms"] = [shard[i][0] for shard in checkpoints]  # inside_ms's checkpoint part
        tick["checkpointed"] = [shard[i][1] for shard in checkpoints]
    return {"ticks": ticks, "not_ok": not_ok}


def tick_detail(ticks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every timed tick as measured (ms rounded): the JSON's per-tick view behind the means."""
    def rounded(v: Any) -> Any:
        return [rounded(x) for x in v] if isinstance(v, list) else round(v, 2) if isinstance(v, float) else v
    return [{k: rounded(v) for k, v in t.items()} for t in ticks]


def _summarise_ticks(ticks: list[dict[str, Any]]) -> dict[str, Any]:
    parts = [tick_parts(t["eval_ms"], t["driver_ms"], t["inside_ms"]) for t in ticks]
    inside = list(zip(*(t["inside_ms"] for t in ticks), strict=True))
    return {"mean_ms": {p: round(statistics.fmean(x[p] for x in parts), 2) for p in TICK_PARTS},
            "median_ms": {p: round(statistics.median(x[p] for x in parts), 2) for p in TICK_PARTS},
            "inside_shard_ms_mean": [round(statistics.fmean(s), 2) for s in inside],
            # of ray_overhead_ms, the driver thread's own CPU (submitting, unpacking the records)
            "driver_cpu_in_evaluate_ms_mean": round(statistics.fmean(t["eval_driver_cpu_ms"]
                                                                     for t in ticks), 2),
            "shard_imbalance_ms_mean": round(statistics.fmean(max(t["inside_ms"]) - min(t["inside_ms"])
                                                              for t in ticks), 2),
            "checkpoint_ms_mean": [round(statistics.fmean(s), 2)
                                   for s in zip(*(t["checkpoint_ms"] for t in ticks), strict=True)],
            "checkpointed_mean": [round(statistics.fmean(s), 1)
                                  for s in zip(*(t["checkpointed"] for t in ticks), strict=True)],
            "reply_bytes_mean": round(statistics.fmean(b for t in ticks for b in t["reply_bytes"]))}


def run_layout(label: str, worker_cpus: list[int], args: argparse.Namespace, redis: tuple[str, int],
               client: Any, hist: dict[str, Any], first_bar: int, pins: list[set[int]] | None = None,
               head_pin: set[int] | None = None) -> dict[str, Any]:
    """Create a cluster of this layout, a pool on it, catch up, time `args.ticks` ticks."""
    from cluster.pool import PoolSettings, ShardPool
    from cluster.shard_core import ShardSettings

    redis_url, redis_pid = redis
    layout = RedisLayout(args.prefix, keep_bars=len(next(iter(hist.values()))) + 10)
    symbols = [s for s in hist if s != "BTC"]
    namespace = f"aiq-scale-{label}"
    per_call = args.bars_per_call
    with contextlib.ExitStack() as stack:
        cluster = stack.enter_context(loopback_cluster(worker_cpus, namespace=namespace, pins=pins))
        if head_pin is not None:
            pin_head(cluster, head_pin, redis_pid, stack)
        head = cluster.head_node.node_id
        t0 = time.perf_counter()
        pool = ShardPool(redis_url=redis_url, redis_prefix=args.prefix,
                         settings=ShardSettings(interval=INTERVAL, checkpoint_every=args.checkpoint_every),
                         configs=_source(args), symbols=symbols,
                         pool=PoolSettings(n_shards=args.shards, namespace=namespace, deadline_ms=600_000,
                                           scheduling_strategy="SPREAD" if pins else None))
        create_secs = time.perf_counter() - t0
        try:
            keys = layout.read_candle_keys(client, symbols, INTERVAL)
            t0 = time.perf_counter()
            pool.evaluate({s: k.closed_close_ms for s, k in keys.items() if k.closed_close_ms is not None})
            catch_up_secs = time.perf_counter() - t0
            bar = first_bar
            for _ in range(SETTLE_TICKS):  # untimed: the first calls after a restore
                for written in range(bar, bar + per_call):
                    _write_bar(client, layout, hist, written)
                bar += per_call
                pool.evaluate({s: hist[s][bar - 1].close_ms for s in symbols})
            health = _health(cluster, namespace, args.shards)
            pin_workers(cluster)
            if head_pin is not None:  # again: a head process forked while the tree was walked escaped it
                pin_tree(node_roots(cluster.head_node), head_pin)
            groups = process_groups(cluster, redis_pid)
            pinning = check_pinning(cluster, namespace, args.shards, groups, head_pin) if pins else None
            cpu = CpuWindows(groups)
            timed = _timed_ticks(pool, client, layout, hist, symbols,
                                 range(bar, bar + args.ticks * per_call, per_call), per_call, cpu)
            health_after = _health(cluster, namespace, args.shards)
            rows = sum(s["symbols"] for s in pool.stats()) * (1 + args.variants)
        finally:
            pool.close()
    ticks = timed["ticks"]
    walls = [t["wall_ms"] for t in ticks]
    total_secs = sum(walls) / 1000.0
    return {
        "layout": label, "worker_nodes": len(worker_cpus), "worker_cpus": worker_cpus,
        "loadavg_1m_after": round(os.getloadavg()[0], 2), "tick_ms": [round(x, 1) for x in walls],
        "tick_ms_p50": round(statistics.median(walls), 2), "tick_ms_p90": round(percentile(walls, 0.9), 2),
        "tick_ms_max": round(max(walls), 2), "rows": rows, "bars_per_call": per_call,
        "symbols_per_sec": round(len(symbols) * len(ticks) / total_secs),
        "row_candles_per_sec": round(rows * per_call * len(ticks) / total_secs),
        "non_ok_records": timed["not_ok"], "tick_breakdown": _summarise_ticks(ticks),
        "ticks_detail": tick_detail(ticks), "pinning": pinning,
        "cpu_ms_per_tick": cpu.per_tick(len(ticks)),
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
        runs = [r for r in results if r["layout"] == label]
        ticks = [t for r in runs for t in r["tick_ms"]]
        secs = sum(ticks) / 1000.0
        summary[label] = {"tick_ms_p50": round(statistics.median(ticks), 2),
                          "symbols_per_sec": round(symbols * len(ticks) / secs),
                          "row_candles_per_sec": round(sum(r["rows"] * r["bars_per_call"] * len(r["tick_ms"])
                                                           for r in runs) / secs),
                          "ticks": len(ticks)}
    return summary


def _mean_over_runs(results: list[dict[str, Any]], label: str,
                    pick: Callable[[dict[str, Any]], Mapping[str, float]]) -> dict[str, float]:
    rows = [pick(r) for r in results if r["layout"] == label]
    return {k: round(statistics.fmean(row[k] for row in rows), 2) for k in rows[0]}


def _pinned_report(results: list[dict[str, Any]], ratio: dict[str, float] | None) -> dict[str, Any]:
    """The scale-out verdict: throughput ratios against the goal, and where the 2-node tick goes."""
    one_label, two_label = PINNED_LAYOUTS
    where = {label: _mean_over_runs(results, label, lambda r: r["tick_breakdown"]["mean_ms"])
             for label in PINNED_LAYOUTS}
    cpu = {label: _mean_over_runs(results, label, lambda r: r["cpu_ms_per_tick"]) for label in PINNED_LAYOUTS}
    worker_cpu = {label: sum(v for k, v in cpu[label].items() if k.startswith("node_")) for label in cpu}
    one, two = where[one_label], where[two_label]
    tick = {label: sum(where[label][p] for p in TICK_PARTS) for label in where}
    throughput = None if ratio is None else ratio["row_candles_per_sec"]
    return {
        "throughput_ratio": throughput, "goal": PINNED_GOAL_RATIO,
        "meets_goal": throughput is not None and throughput >= PINNED_GOAL_RATIO,
        "all_runs_pinned_and_on_distinct_nodes": all(r["pinning"] is not None for r in results),
        # 1.0 = the two nodes spent the same worker CPU on the same work as the one node
        "worker_cpu_per_row_ratio_1_over_2": round(worker_cpu[one_label] / max(worker_cpu[two_label], 1e-9),
                                                   3),
        # share of the tick's wall time each worker core was busy (1.0 = never idle)
        "worker_core_busy_share": {label: {k: round(v / max(tick[label], 1e-9), 3)
                                           for k, v in cpu[label].items() if k.startswith("node_")}
                                   for label in cpu},
        "shard_work_ratio_busiest": round(one["busiest_shard_ms"] / max(two["busiest_shard_ms"], 1e-9), 3),
        "where_the_tick_goes_mean_ms": where,
        "cpu_ms_per_tick_mean": cpu,
        "loss_vs_perfect_2x_ms_per_tick": scaling_loss(one, two),
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=10_000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--variants", type=int, default=0, help="donchian_breakout shadow rows per symbol")
    parser.add_argument("--bars-per-call", type=int, default=1,
                        help="candles written per symbol before each timed tick (one call catches up on all)")
    parser.add_argument("--cpus-per-node", type=int, default=1, help="logical CPUs per worker in '2_nodes'")
    parser.add_argument("--ticks", type=int, default=15)
    parser.add_argument("--warm-bars", type=int, default=260)
    parser.add_argument("--checkpoint-every", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=2,
                        help="alternate the layouts this many times (the box is shared: shows the noise)")
    parser.add_argument("--layouts", default=",".join(LAYOUTS),
                        help="comma-separated subset of " + ",".join(LAYOUTS) + " (one layout: no ratio)")
    parser.add_argument("--pinned", action="store_true",
                        help="fair scale-out: 1 node on 1 core vs 2 nodes on 2 cores (CPU affinity); "
                             "--layouts and --cpus-per-node do not apply")
    parser.add_argument("--head-cores", choices=("layout", "free"), default="layout",
                        help="--pinned: head, driver and Redis on the layout's cores (default) or unpinned")
    parser.add_argument("--prefix", default="bench-scale")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    args.primary = "mei_alpha_v1"  # bench.tick's ConfigSource builder reads it
    unknown = sorted(set(args.layouts.split(",")) - set(LAYOUTS))
    if unknown or not args.layouts:
        parser.error(f"--layouts: unknown {unknown}; choose from {','.join(LAYOUTS)}")
    if args.variants < 0 or args.bars_per_call < 1 or args.ticks < 1 or args.rounds < 1:
        parser.error("--variants must be >= 0; --bars-per-call, --ticks and --rounds >= 1")
    return args


def _layouts(args: argparse.Namespace) -> list[tuple[str, list[int], list[set[int]] | None, set[int] | None]]:
    """(label, worker CPUs, per-node pins, head pin) of every layout of the run."""
    if not args.pinned:
        return [(label, cpus(args.cpus_per_node), None, None) for label, cpus in LAYOUTS.items()
                if label in args.layouts.split(",")]
    cores = sorted(os.sched_getaffinity(0))
    out = []
    for label, (cpus, which) in PINNED_LAYOUTS.items():
        pins = [{cores[i]} for i in which]
        out.append((label, cpus, pins, set().union(*pins) if args.head_cores == "layout" else None))
    return out


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    if args.pinned and len(os.sched_getaffinity(0)) < 2:
        usable = sorted(os.sched_getaffinity(0))
        print(f"bench.scale --pinned needs 2 usable cores, this process may use {usable}", file=sys.stderr)
        return 2
    layouts = _layouts(args)

    from engine.runtime.ray_runtime import prepare_ray_environment
    from engine.runtime.redis_server import EmbeddedRedis

    prepare_ray_environment()
    import redis

    out: dict[str, Any] = {"bench": "scale", "cpus": os.cpu_count(), "python": sys.version.split()[0],
                           "symbols": args.symbols, "shards": args.shards, "ticks": args.ticks,
                           "variants": args.variants, "bars_per_call": args.bars_per_call,
                           "head_cores": args.head_cores if args.pinned else None,
                           "warm_bars": args.warm_bars, "loadavg_before": list(os.getloadavg()),
                           "results": []}
    names = symbol_names(args.symbols)
    per_layout = (SETTLE_TICKS + args.ticks) * args.bars_per_call
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
            redis_pid = int(client.info("server")["process_id"])
            # Each run after the first restores the previous run's final checkpoints (a planned
            # restart), then runs the next ticks: the same per-tick work, new candles per symbol.
            first_bar = args.warm_bars
            for round_no in range(args.rounds):
                for label, cpus, pins, head_pin in layouts:
                    result = run_layout(label, cpus, args, (server.url, redis_pid), client, hist, first_bar,
                                        pins, head_pin)
                    result["round"] = round_no
                    out["results"].append(result)
                    first_bar += per_layout
                    if not args.json:
                        print(json.dumps(result), file=sys.stderr)
        finally:
            client.close()
            server.stop()
    _finish(out, args, [label for label, *_ in layouts])
    print(json.dumps(out, indent=None if args.json else 2))
    return 0 if not args.pinned or out["pinned"]["all_runs_pinned_and_on_distinct_nodes"] else 1


def _finish(out: dict[str, Any], args: argparse.Namespace, labels: list[str]) -> None:
    """Summary per layout, the 2-vs-1 ratios, the pinned verdict, the dashboard check."""
    out["summary"] = summary = _summary(out["results"], labels, args.symbols)
    out["ratio_2_nodes_vs_1_node"] = None  # needs both layouts
    if len(summary) == 2:
        one, two = summary.values()
        out["ratio_2_nodes_vs_1_node"] = {
            "tick_ms_p50": round(two["tick_ms_p50"] / one["tick_ms_p50"], 3),
            "symbols_per_sec": round(two["symbols_per_sec"] / one["symbols_per_sec"], 3),
            "row_candles_per_sec": round(two["row_candles_per_sec"] / one["row_candles_per_sec"], 3),
        }
    if args.pinned:
        out["pinned"] = _pinned_report(out["results"], out["ratio_2_nodes_vs_1_node"])
    out["dashboard_all_shards_alive_every_run"] = all(
        r["dashboard_shards"]["healthy"] and r["dashboard_shards"]["healthy_after_ticks"]
        and not r["dashboard_shards"]["on_head"] for r in out["results"])
    out["loadavg_after"] = list(os.getloadavg())


if __name__ == "__main__":
    raise SystemExit(main())
