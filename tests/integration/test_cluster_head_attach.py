"""Single box, the operator's way: `ray start --head` on loopback, then the daemon attaches to it.

The whole scenario runs in a subprocess (cluster_scripts/head_attach.py) inside a private PID
namespace, so its `ray stop` cannot touch any other Ray on this machine (the test session's own
included). Without PID namespaces (not root, no user namespaces) the head is stopped by killing
the test's tagged processes instead, and the test says so in its JSON.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import pytest

from tests.integration.cluster_scripts.common import (
    PROJECT_ROOT,
    cluster_env,
    in_pid_namespace,
    kill_tagged,
    new_tag,
    pid_namespace_available,
    remove_tmpdir,
    short_tmpdir,
    wait_no_tagged,
)

TIMEOUT_SECS = 180


@pytest.fixture
def head_attach_run() -> dict[str, Any]:
    tag, tmp = new_tag(), short_tmpdir()
    namespaced = pid_namespace_available()
    argv = [sys.executable, "-m", "tests.integration.cluster_scripts.head_attach", "--tmp", tmp,
            "--stop", "ray" if namespaced else "tagged"]
    try:
        done = subprocess.run(in_pid_namespace(argv) if namespaced else argv, cwd=PROJECT_ROOT,
                              env=cluster_env(tag, tmp), capture_output=True, text=True, timeout=TIMEOUT_SECS)
        left = wait_no_tagged(tag, 15.0)
    finally:
        kill_tagged(tag)
        remove_tmpdir(tmp)
    assert done.returncode == 0, done.stderr[-4000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run["left_outside"] = left
    run["namespaced"] = namespaced
    return run


def test_cluster_daemon_attaches_to_ray_start_head_and_ray_stop_leaves_nothing(
    head_attach_run: dict[str, Any],
) -> None:
    run = head_attach_run
    assert "error" not in run, run.get("error", "") + "\n" + run.get("daemon_log_tail", "")
    start = run["ray_start"]
    assert start["rc"] == 0 and start["gcs_port"] != 6379
    # Attached, to the head we started; not an embedded Ray.
    assert run["daemon_ray"]["attachment"] == "attached"
    assert run["daemon_ray"]["address"] == f"127.0.0.1:{start['gcs_port']}"
    # It ran ticks that evaluated symbols on the shard pool.
    ticks = run["daemon_ticks"]
    assert len(ticks) >= 3 and any(evaluated > 0 for _tick, _symbols, evaluated in ticks)
    health = run["dashboard_while_running"]
    assert health["healthy"] and health["alive"] == ["aiq-shard-0", "aiq-shard-1"]
    # SIGTERM: clean exit; the cluster it attached to is still up; its shards are gone.
    assert run["daemon_exit"] == 0
    assert run["head_up_after_daemon_exit"] is True
    assert run["dashboard_after_daemon_exit"]["alive"] == []
    # `ray stop` (or the tagged kill without a PID namespace): nothing of ours is left.
    assert run["stop"]["how"] == ("ray" if run["namespaced"] else "tagged")
    if run["namespaced"]:
        assert run["ray_stop_rc"] == 0 and run["pid1"] == "bash"
    assert run["stop"]["left"] == [], run["stop"]["left_names"]
    assert run["tagged_after"] == [] and run["left_outside"] == []
