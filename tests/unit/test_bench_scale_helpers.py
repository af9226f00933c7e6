"""The /proc readers and the tick arithmetic behind `bench.scale --pinned` (what its verdict rests on)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import pytest

from bench.scale import TICK_PARTS, scaling_loss, start_node, tick_parts
from bench.support import cpu_ms_used, descendants, parse_proc_stat, proc_table, thread_affinity

# A real /proc/<pid>/stat line whose command name holds a space and a ')' (Ray names its workers
# "ray::SignalShard"; any process may rename itself to anything).
STAT = ("4242 (ray::a) b) S 4200 4242 4200 0 -1 4194560 5000 0 0 0 "
        "250 37 0 0 20 0 9 0 123456 1000000 5000 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0")


def test_parse_proc_stat_counts_fields_after_the_last_paren() -> None:
    ppid, cpu_ms = parse_proc_stat(STAT, clk_tck=100)
    assert ppid == 4200
    assert cpu_ms == pytest.approx((250 + 37) * 10.0)  # utime + stime, 100 ticks a second


def test_parse_proc_stat_rejects_a_truncated_line() -> None:
    with pytest.raises(ValueError, match="not a /proc"):
        parse_proc_stat("12 (x) S 1 2", clk_tck=100)


def test_descendants_follows_the_whole_tree_and_ignores_other_branches() -> None:
    # 1 -> 10 -> {11, 12 -> 13}; 1 -> 20 (another tree); 99 is not in the table
    table = {1: (0, 0.0), 10: (1, 1.0), 11: (10, 2.0), 12: (10, 3.0), 13: (12, 4.0), 20: (1, 5.0)}
    assert descendants(table, [10]) == {10, 11, 12, 13}
    assert descendants(table, [12, 20]) == {12, 13, 20}
    assert descendants(table, [99]) == set()


def test_cpu_ms_used_counts_newborn_from_zero_and_drops_the_vanished() -> None:
    before = {1: (0, 100.0), 2: (0, 50.0), 3: (0, 70.0)}
    after = {1: (0, 130.0), 2: (0, 50.0), 4: (1, 15.0)}  # 3 exited, 4 was born in the window
    assert cpu_ms_used(before, after, [1, 2, 3, 4]) == pytest.approx(30.0 + 0.0 + 15.0)
    assert cpu_ms_used(before, after, [2]) == 0.0


def test_proc_table_and_affinity_see_a_real_pinned_child() -> None:
    """A child started from a pinned thread shows up under its parent with that mask on every thread."""
    core = min(os.sched_getaffinity(0))
    child = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE,
                             preexec_fn=lambda: os.sched_setaffinity(0, {core}))
    try:
        table = proc_table()
        assert table[child.pid][0] == os.getpid()
        assert child.pid in descendants(table, [os.getpid()])
        assert thread_affinity(child.pid) == [core]
        assert set(proc_table([child.pid])) == {child.pid}
    finally:
        child.communicate(b"")
    assert thread_affinity(child.pid) is None  # gone and reaped


def test_tick_parts_add_up_to_the_tick() -> None:
    parts = tick_parts(eval_ms=30.0, driver_ms=5.0, inside_ms=[12.0, 20.0])
    assert parts == {"driver_ms": 5.0, "ray_overhead_ms": 10.0, "busiest_shard_ms": 20.0}
    assert sum(parts[p] for p in TICK_PARTS) == 5.0 + 30.0


def test_scaling_loss_splits_the_excess_over_a_perfect_2x() -> None:
    one = {"driver_ms": 10.0, "ray_overhead_ms": 20.0, "busiest_shard_ms": 200.0}  # tick 230
    two = {"driver_ms": 12.0, "ray_overhead_ms": 25.0, "busiest_shard_ms": 110.0}  # tick 147
    loss = scaling_loss(one, two)
    assert loss["driver_ms"] == 7.0 and loss["ray_overhead_ms"] == 15.0 and loss["busiest_shard_ms"] == 10.0
    assert loss["total_ms"] == pytest.approx(147.0 - 115.0)
    assert loss["total_ms"] == pytest.approx(sum(loss[p] for p in TICK_PARTS))
    # if only the 200 ms of shard work halved: 230 / (30 + 100)
    assert loss["ratio_if_only_shard_work_scaled"] == pytest.approx(230.0 / 130.0, abs=1e-3)


def test_scaling_loss_is_zero_for_perfect_scaling() -> None:
    one = {"driver_ms": 4.0, "ray_overhead_ms": 6.0, "busiest_shard_ms": 90.0}
    two = {k: v / 2 for k, v in one.items()}
    loss = scaling_loss(one, two)
    assert all(loss[p] == 0.0 for p in TICK_PARTS) and loss["total_ms"] == 0.0


def test_start_node_retries_a_ray_start_timeout_and_kills_what_the_failed_start_left() -> None:
    """A start that timed out leaves its processes behind: they are killed, and the next try wins."""
    leftovers: list[subprocess.Popen[bytes]] = []

    def start() -> str:
        if not leftovers:
            leftovers.append(subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"]))
            raise RuntimeError("The current node timed out during startup. This could happen ...")
        return "node"

    assert start_node(start) == "node"
    assert leftovers[0].wait(timeout=60) == -signal.SIGKILL


def test_start_node_does_not_retry_other_errors() -> None:
    calls: list[int] = []

    def start() -> str:
        calls.append(1)
        raise RuntimeError("port already in use")

    with pytest.raises(RuntimeError, match="port already in use"):
        start_node(start)
    assert len(calls) == 1
