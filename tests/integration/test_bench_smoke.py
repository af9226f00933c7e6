"""Every bench script runs for seconds on tiny sizes and prints the JSON it promises, so none can rot.

Each bench runs as `python -m bench.X` (the way it is documented) with tiny arguments. The tests
check that it exits 0 and that its JSON has the keys and sane values (counts, invariants, the
correctness fields a bench reports), never a timing. To keep the file's wall time down (the
benches mostly wait: on Ray's start-up, above all scale's head with its dashboard), they run in
three lanes at once: scale, tick (an embedded Ray of its own), and the rest one after the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import pytest

from bench.support import REPO_ROOT

RUN_TIMEOUT_SECS = 240  # generous: the machine is shared; nothing here asserts a duration
# scale starts two Ray clusters with dashboards; at load 20 a node start can miss Ray's fixed 30 s
# registration deadline and be retried (bench.scale.start_node), so it gets more room
SLOW_BENCH_TIMEOUT_SECS = {"scale": 600}
BENCH_ARGS: dict[str, list[str]] = {
    "scale": ["--symbols", "4", "--shards", "2", "--ticks", "1", "--warm-bars", "60", "--rounds", "1",
              "--pinned", "--json"],
    "tick": ["--symbols", "4", "--shards", "1", "--ticks", "2", "--warm-bars", "60", "--baseline-sample", "2",
             "--baseline-ticks", "1", "--parity-sample", "2", "--variants", "2", "--json"],
    "soak_crash": ["--cycles", "2", "--executor", "inprocess", "--seed", "3", "--baseline-max-secs", "90"],
    "indicators": ["--updates", "200", "--baseline-runs", "3", "--repeats", "1"],
    "ingest": ["--symbols", "20", "--rounds", "2", "--baseline-rounds", "1"],
    "ingest_fleet": ["--markets", "30", "--sidecars", "2", "--bars", "2"],
    "hip3_acceptance": ["--builder-dexes", "3", "--markets-per-dex", "2", "--original-markets", "2",
                        "--speed", "60", "--run-secs", "3", "--ws-drop-every-secs", "3",
                        "--extra-sidecars", "0", "--timeout", "150"],
    "oms": ["--writes", "60"],
    "universe": ["--symbols", "3", "--bars", "40"],
    "shadow": ["--variants", "4", "--ticks", "20", "--warm-bars", "60", "--json"],
    "candle_codec": ["--symbols", "20", "--rounds", "2", "--cold-bars", "10"],
    "shard_cpu": ["--symbols", "8", "--ticks", "3", "--warm-bars", "80", "--json"],
    "shard_block_cpu": ["--symbols", "8", "--variants", "4", "--ticks", "3", "--warm-bars", "80", "--json"],
    "reply_wire": ["--symbols", "12", "--variants", "2", "--calls", "2", "--json"],
    "startup": ["--symbols", "6", "--daemon-runs", "1", "--warm-bars", "60", "--ticks-before", "2",
                "--parity-sample", "2", "--timeout", "150", "--ray-head-runs", "1",
                # the shard-kill phase's per-tick deadline (1 s by default): a loaded box must not
                # make the surviving shard look late; the test asserts it decided every tick
                "--deadline-ms", "5000"],
}
LANES = (("scale", "candle_codec", "startup", "hip3_acceptance"),
         ("tick", "ingest_fleet", "shadow", "reply_wire"),
         ("soak_crash", "indicators", "ingest", "oms", "universe", "shard_cpu", "shard_block_cpu"))


def _run(name: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "RAY_TMPDIR")}
    return subprocess.run([sys.executable, "-m", f"bench.{name}", *BENCH_ARGS[name]], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, check=False,
                          timeout=SLOW_BENCH_TIMEOUT_SECS.get(name, RUN_TIMEOUT_SECS))


def _run_lane(names: tuple[str, ...], futures: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    for name in names:
        try:
            futures[name].set_result(_run(name))
        except BaseException as e:  # handed to the test that reads this bench
            futures[name].set_exception(e)


@pytest.fixture(scope="module")
def bench_runs() -> Iterator[dict[str, Future[subprocess.CompletedProcess[str]]]]:
    futures: dict[str, Future[subprocess.CompletedProcess[str]]] = {name: Future() for name in BENCH_ARGS}
    with ThreadPoolExecutor(max_workers=len(LANES)) as pool:
        for lane in LANES:
            pool.submit(_run_lane, lane, futures)
        yield futures


def _output(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]], name: str) -> dict[str, Any]:
    done = bench_runs[name].result(timeout=2 * max(RUN_TIMEOUT_SECS, *SLOW_BENCH_TIMEOUT_SECS.values()))
    tails = f"{done.stderr[-3000:]}\n{done.stdout[-3000:]}"
    assert done.returncode == 0, f"bench.{name} exited {done.returncode}: {tails}"
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError as e:
        raise AssertionError(f"bench.{name} printed no JSON document: {done.stdout[-2000:]!r}") from e


def test_every_bench_script_has_a_smoke_run() -> None:
    helpers = {"__init__", "support", "pinning"}
    scripts = {p.stem for p in (REPO_ROOT / "bench").glob("*.py")} - helpers
    assert scripts == set(BENCH_ARGS), "a bench script without a smoke run (or a stale entry)"
    assert sorted(n for lane in LANES for n in lane) == sorted(BENCH_ARGS)


def test_bench_indicators(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "indicators")
    assert out["file"] == "ETH_BTC-5m.csv" and out["bars"] == 5760 and out["baseline_lookback_rows"] == 200
    assert out["state_json_bytes"] > 0 and out["live_object_bytes"] > 0
    for key in ("incremental_update_us", "baseline_recompute_us", "speedup", "checkpoint_save_us",
                "checkpoint_restore_us"):
        assert out[key] > 0, key


def test_bench_ingest(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "ingest")
    assert out["benchmark"] == "ingest" and out["redis_version"]
    (result,) = out["results"]
    assert result["symbols"] == 20
    piped, plain, base = (result["pipelined_multi_exec"], result["plain_pipeline_baseline"],
                          result["unpipelined_baseline"])  # fmt: skip
    assert (piped["rounds"], plain["rounds"], base["rounds"]) == (2, 2, 1)
    for run in (piped, plain, base):
        delay = run["close_to_key_visible_ms"]
        assert run["candles_per_sec"] > 0 and 0 <= delay["p50"] <= delay["p90"] <= delay["max"]


def test_bench_ingest_fleet(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "ingest_fleet")
    assert (out["benchmark"], out["markets"], out["sidecars"], out["bars"]) == ("ingest_fleet", 30, 2, 2)
    assert out["missing_candles"] == 0 and out["sources"] == {"ws": 30, "rest": 0, "none": 0}
    assert set(out["per_sidecar"]) == {"s0", "s1"}
    assert {s["ip"] for s in out["per_sidecar"].values()} == {"127.0.0.2", "127.0.0.3"}
    assert sum(s["ws"] for s in out["per_sidecar"].values()) == 30
    assert out["candles_measured"] == 60 and out["candles_per_sec"] > 0
    delay = out["close_to_key_visible_ms"]
    assert delay["p50"] <= delay["p99"] <= delay["max"]


def test_bench_hip3_acceptance(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "hip3_acceptance")
    assert out["markets_per_dex"] == {"main": 2, "xyz": 2, "flx": 2, "vntl": 2}
    assert out["markets_compared"] == 8 and out["bars_compared"] > 0 and out["full_ticks"] >= 1
    assert out["mismatches"] == 0 and out["daemon_exit"] == 0
    assert sum(out["sources"].values()) == 8
    assert out["repaired_logged"] >= 0 and out["share_changes_logged"] >= 1  # the logs were read


def test_bench_oms(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "oms")
    assert out["writes"] == 60 and isinstance(out["meets_target"], bool) and out["target_p99_ms"] == 2.0
    for key in ("intent_write_sync_full", "duplicate_open_check", "intent_write_sync_normal",
                "baseline_plain_insert_sync_full"):
        stats = out[key]
        assert 0 < stats["p50_ms"] <= stats["p99_ms"] <= stats["max_ms"], key


def test_bench_soak_crash(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "soak_crash")
    soak, baseline = out["soak"], out["baseline_no_kills"]
    assert soak["ok"] is True and baseline["ok"] is True
    assert soak["cycles"] == 2 and soak["kills"] == 2 and sum(soak["kills_by_phase"].values()) == 2
    assert soak["orphans_killed"] == 0 and soak["kill_point_timeouts"] == 0
    assert baseline["kills"] == 0 and baseline["steps_reached"] >= baseline["steps_target"] > 0
    for run in (soak, baseline):
        final, audit = run["final"], run["audit"]
        assert final == {"startup_verdict": "clean", "ticked": True, "exit_code": 0, "shutdown_clean": True}
        assert audit["violations"] == [] and audit["venue_accepted"] > 0
        assert audit["venue_fills"] == audit["ledger_fills"] > 0
        assert audit["accepted_per_decision"].get("2+", 0) == 0


def test_bench_universe(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "universe")
    assert out["interval"] == "5m" and out["bars"] == 40
    symbols = out["symbols"]
    assert [s["symbol"] for s in symbols] == ["S0000", "S0001", "S0002", "BTC"]
    for s in symbols:
        assert s["bars"] == 40 and s["last_t"] - s["first_t"] == 39 * 300_000
        assert 0 < s["close_min"] <= s["close_max"]


def test_bench_tick(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "tick")
    assert out["bench"] == "tick" and out["state_bytes_per_symbol_traced"] > 0
    (result,) = out["results"]
    assert (result["symbols"], result["shards"], result["ticks"]) == (4, 1, 2)
    assert result["non_ok_records"] == 0 and result["baseline_ticks"] == 1
    parity = result["parity_full_history"]
    assert parity["decisions_checked"] == 2 * 2 and parity["mismatches"] == 0 and parity["signals_equal"]
    assert result["parity_mismatch_examples"] == []
    assert len(result["inside_shard_evaluate_ms_p50"]) == 1 and len(result["actor_rss_bytes"]) == 1
    # --variants 2: two donchian_breakout shadows per symbol, run columnar, equal to the batch strategy
    assert (result["variants"], result["rows"], result["columnar"]) == (2, 4 * 3, True)
    variants = result["parity_variants"]
    assert variants["decisions_checked"] == 2 * 2 * 2 and variants["mismatches"] == 0
    assert result["us_per_row_inside_shard_p50"] > 0 and out["state_bytes_per_row_traced"] > 0


@pytest.mark.timeout(2 * SLOW_BENCH_TIMEOUT_SECS["scale"])  # waits on the bench's own (generous) timeout
def test_bench_scale(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    """The --pinned run: both layouts, shards proven on 1 vs 2 distinct nodes, each on its node's core."""
    out = _output(bench_runs, "scale")
    assert out["bench"] == "scale" and out["symbols"] == 4 and out["shards"] == 2
    one, two = out["results"]
    parts = ("driver_ms", "ray_overhead_ms", "busiest_shard_ms")
    assert (one["layout"], one["worker_cpus"]) == ("1_node_1_core", [2])
    assert (two["layout"], two["worker_cpus"]) == ("2_nodes_2_cores", [1, 1])
    for result, nodes in ((one, 1), (two, 2)):
        assert result["non_ok_records"] == 0 and len(result["tick_ms"]) == 1
        shards = result["dashboard_shards"]
        assert shards["healthy"] and shards["healthy_after_ticks"] and shards["on_head"] == []
        assert sorted(shards["alive"]) == ["aiq-shard-0", "aiq-shard-1"] and shards["distinct_nodes"] == nodes
        pinning = result["pinning"]
        node_names = {f"node_{i}" for i in range(nodes)}
        assert pinning["distinct_nodes"] == nodes
        assert {s["node"] for s in pinning["shards"].values()} == node_names
        for shard in pinning["shards"].values():  # each shard on its node's one core, every thread
            assert shard["affinity"] == pinning["pinned_to"][shard["node"]] and len(shard["affinity"]) == 1
        # --head-cores layout (the default): head, driver and Redis confined to the layout's cores
        layout_cores = sorted({c for n in node_names for c in pinning["pinned_to"][n]})
        assert len(layout_cores) == nodes
        for group in ("head", "driver", "redis"):
            assert pinning["pinned_to"][group] == layout_cores
        assert pinning["observed_affinity"] == pinning["pinned_to"]  # observed on every thread, from /proc
        assert all(pinning["processes_per_group"][n] >= 2 for n in node_names)  # raylet + shard workers
        cpu = result["cpu_ms_per_tick"]
        assert set(cpu) == node_names | {"head", "driver", "redis", "machine_busy", "other_processes"}
        assert all(cpu[k] >= 0 for k in (*node_names, "head", "driver", "redis", "machine_busy"))
        assert set(result["tick_breakdown"]["mean_ms"]) == set(parts)
        (tick,) = result["ticks_detail"]  # the per-tick view: each shard's reply and checkpoint
        assert len(tick["inside_ms"]) == len(tick["checkpoint_ms"]) == len(tick["checkpointed"]) == 2
        assert len(tick["reply_bytes"]) == 2 and all(b > 0 for b in tick["reply_bytes"])
        assert all(0 <= c <= i for c, i in zip(tick["checkpoint_ms"], tick["inside_ms"], strict=True))
    cores = {tuple(s["affinity"]) for s in two["pinning"]["shards"].values()}
    assert len(cores) == 2  # two nodes, two different cores
    assert out["dashboard_all_shards_alive_every_run"] is True
    assert set(out["summary"]) == {"1_node_1_core", "2_nodes_2_cores"}
    pinned = out["pinned"]
    assert pinned["all_runs_pinned_and_on_distinct_nodes"] is True and pinned["goal"] == 1.7
    assert pinned["throughput_ratio"] == out["ratio_2_nodes_vs_1_node"]["row_candles_per_sec"] > 0
    assert set(pinned["where_the_tick_goes_mean_ms"]) == {"1_node_1_core", "2_nodes_2_cores"}
    assert set(pinned["worker_core_busy_share"]["2_nodes_2_cores"]) == {"node_0", "node_1"}
    loss = pinned["loss_vs_perfect_2x_ms_per_tick"]
    assert abs(loss["total_ms"] - sum(loss[p] for p in parts)) < 0.05  # the parts add up (rounding)


def test_bench_reply_wire(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    """Both reply forms went through a real two-node cluster; the compact one is the smaller."""
    out = _output(bench_runs, "reply_wire")
    assert out["bench"] == "reply_wire" and out["symbols"] == 12 and out["calls"] == 2
    assert 0 < out["reply_bytes"]["compact"] < out["reply_bytes"]["raw"]
    for form in ("raw", "compact"):
        assert out[form]["wall_ms_p50"] > 0 and out[form]["driver_cpu_ms_p50"] > 0


def test_bench_shadow(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "shadow")
    assert (out["symbols"], out["variants"], out["ticks"]) == (7, 4, 20)
    assert out["primary_ledger_identical"] is True  # the shadows never touch the primary's ledger
    rows = out["shadow_rows"]
    assert rows["OPEN"] > 0 and rows["OPEN"] - rows.get("CLOSE", 0) == out["shadow_open_positions"]
    for key in ("base_tick_ms", "shadow_tick_ms", "variant_eval_ms", "fleet_ms"):
        stats = out[key]
        assert 0 < stats["p50"] <= stats["p90"] <= stats["max"], key


def test_bench_candle_codec(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "candle_codec")
    assert out["bench"] == "candle_codec" and (out["symbols"], out["rounds"], out["cold_bars"]) == (20, 2, 10)
    assert out["bytes_per_candle"]["binary"] == 64 and out["bytes_per_candle"]["json"] > 64
    paths = {f"{path}.{fmt}" for path in ("decode_only", "warm_tick") for fmt in ("json", "binary_arrays",
                                                                               "binary_candles")}
    assert set(out["ms"]) == paths | {"cold_read.json", "cold_read.binary_arrays"}
    for name, stats in out["ms"].items():
        assert 0 < stats["p50_ms"] <= stats["p90_ms"], name
    assert all(ratio > 0 for ratio in out["ratio_json_vs_binary"].values())


def test_bench_shard_cpu(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "shard_cpu")
    assert out["bench"] == "shard_cpu" and (out["symbols"], out["ticks"]) == (8, 3)
    assert out["mismatches"] == 0 and out["records_not_ok"] == 0  # fast and general path decide alike
    assert out["timed_candles_fast"] == 3 * 8  # every timed tick's candles went the fast way
    assert set(out["paths"]) == {"fast", "general"}
    assert all(row["cpu_us_per_symbol_p50"] > 0 for row in out["paths"].values())


def test_bench_shard_block_cpu(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "shard_block_cpu")
    assert out["bench"] == "shard_block_cpu" and (out["symbols"], out["variants"], out["ticks"]) == (8, 4, 3)
    assert out["cpu_us_per_symbol_p50"] > 0 and out["cpu_us_per_row_p50"] > 0 and len(out["digest"]) == 16


def test_bench_startup(bench_runs: dict[str, Future[subprocess.CompletedProcess[str]]]) -> None:
    out = _output(bench_runs, "startup")
    daemon, kill = out["daemon"], out["shard_kill"]
    assert daemon["symbols"] == 6 and daemon["sidecars"] == 2 and daemon["first_run_exit"] == 0
    (ready,) = daemon["warm_start_to_engine_started_secs"]
    (decided,) = daemon["warm_start_to_first_decision_secs"]
    assert 0 < ready <= decided and daemon["goal_secs"] == 15.0
    (cpu,) = daemon["warm_daemon_tree_cpu_secs"]  # the start's work, load-independent
    assert cpu > 0
    (dashboard,) = daemon["warm_dashboard_shards"]  # the embedded Ray's dashboard shows the shards
    assert dashboard["healthy"] is True and sorted(dashboard["alive"]) == ["aiq-shard-0", "aiq-shard-1"]
    assert kill["symbols"] == 6 and 0 < kill["victim_symbols"] < 6
    assert kill["kill_to_deciding_secs"] is not None and kill["restarted_pid_differs"] is True
    assert kill["others_decided_every_tick"] is True  # the live shard never lost a tick to the dead one
    (phases,) = daemon["warm_phases_secs"]  # the daemon's own start-up breakdown, for the README
    assert {"total", "imports", "config", "redis", "venue", "shards", "ray_init", "shards_create",
            "shard_boot", "shard_restore", "first_tick", "spawn"} <= set(phases)
    assert phases["total"] <= ready + 0.5 and phases["ray_init"] > 0  # /proc start time: 10 ms ticks
    assert 0 < phases["ray_import"] <= phases["ray_init"]  # `import ray` ran first, inside Ray's start
    (head,) = daemon["ray_head_runs"]  # a warm start attached to a long-lived head (dashboard on)
    assert head["attached"] is True
    assert 0 < head["start_to_engine_started_secs"] <= head["start_to_first_decision_secs"]
    assert head["phases_secs"]["ray_init"] > 0 and "shard_restore" in head["phases_secs"]
    restart = kill["phases_secs"]  # the restarted actor's own record: it restored from checkpoints
    assert set(restart) == {"respawn", "boot", "restore", "checkpoints_restored", "catch_up_and_tick"}
    assert 0 < restart["checkpoints_restored"] <= kill["victim_symbols"]
    assert kill["parity_after_recovery"]["checked"] > 0 and kill["parity_after_recovery"]["mismatches"] == 0
    *outage, back = kill["outage_ticks"]
    assert back["victim_statuses"] == ["ok"] and all(t["victim_statuses"] != ["ok"] for t in outage)
