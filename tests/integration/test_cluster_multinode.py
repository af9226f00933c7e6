"""Multi-node Ray on loopback: shards land on the workers; a worker crash moves its shards, which
rehydrate from their Redis checkpoints and then decide exactly like an uninterrupted run.

The cluster (ray.cluster_utils.Cluster: head + 2 worker nodes) runs in a subprocess
(cluster_scripts/multinode.py) so it does not fight the session's embedded Ray; every process
it starts is tagged and must be gone when it ends.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from engine.runtime.redis_server import EmbeddedRedis
from tests.integration.cluster_scripts.common import (
    PROJECT_ROOT,
    cluster_env,
    kill_tagged,
    new_tag,
    remove_tmpdir,
    short_tmpdir,
    wait_no_tagged,
)

TIMEOUT_SECS = 120


@pytest.fixture
def multinode_run(redis_server: EmbeddedRedis, redis_client: Any) -> dict[str, Any]:
    tag, tmp = new_tag(), short_tmpdir()
    env = cluster_env(tag, tmp, {
        # Notice a crashed node in ~1.5 s instead of the default ~15 s, to keep the test short.
        "RAY_health_check_period_ms": "500",
        "RAY_health_check_failure_threshold": "3",
        "RAY_health_check_timeout_ms": "500",
    })
    try:
        done = subprocess.run(
            [sys.executable, "-m", "tests.integration.cluster_scripts.multinode",
             "--redis-url", redis_server.url],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT_SECS,
        )
        left = wait_no_tagged(tag, 20.0)
    finally:
        kill_tagged(tag)
        remove_tmpdir(tmp)
    assert done.returncode == 0, done.stderr[-4000:]
    assert not left, f"processes left running after Cluster.shutdown: {left}"
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run["stderr_tail"] = done.stderr[-4000:]  # shard/strategy warnings, shown when an assert fails
    return run


def test_cluster_worker_crash_moves_shards_which_rehydrate_and_match_uninterrupted_run(
    multinode_run: dict[str, Any],
) -> None:
    run = multinode_run
    shards = [f"aiq-shard-{i}" for i in range(4)]
    before, after = run["before"], run["after"]
    # Placement: every shard ALIVE on a worker, never on the head, and both workers used.
    assert before["healthy"] and before["alive"] == shards
    assert before["on_head"] == []
    assert set(before["node_of"].values()) == set(run["worker_nodes"])
    # The crash moved the victim's shards to the surviving worker; Ray restarted them there.
    moved = run["moved_shards"]
    assert moved and len(moved) < 4
    survivor = (set(run["worker_nodes"]) - {run["victim_node"]}).pop()
    assert after["healthy"] and after["alive"] == shards
    assert set(after["node_of"].values()) == {survivor}
    assert run["victim_node"] not in run["nodes_alive_after"]
    for shard in range(4):
        key = str(shard)
        restarted = run["pids_after"][key] != run["pids_before"][key]
        assert restarted == (shard in moved)
        assert (after["restarts"][f"aiq-shard-{shard}"] or 0) >= (1 if shard in moved else 0)
    # The restarted shards rebuilt their state from the checkpoints in Redis.
    for shard in moved:
        assert run["rehydrated"][str(shard)].get("checkpoint", 0) > 0, run["rehydrated"]
    # Decisions: identical to the uninterrupted run on every tick. Only on the crash tick may the
    # moved shards' symbols come back fail-closed (no signal), never a different decision.
    assert run["mismatches"] == [], run["stderr_tail"]
    for tick, _symbol, shard, got, _want in run["fail_closed"]:
        assert tick == run["kill_at"] and shard in moved
        assert got[0] in ("shard_dead", "shard_late") and got[1] == "NEUTRAL"
