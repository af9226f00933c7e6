"""A real `ray up` / `ray down` of ray_cluster.yaml's single-box variant, over SSH to 127.0.0.1.

When sshd, rsync or ssh-keygen are missing, or when this machine cannot give the test a private
PID + mount namespace (`ray up` and `ray down` both run a plain `ray stop`, which would kill every
other Ray on the machine, the test session's own included), the test skips naming what is
missing; under CI=true (.ci/run installs all of it) it fails instead.
The scenario is in cluster_scripts/ray_up_local.py; it never addresses anything but 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.ci import skip_or_fail
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

TIMEOUT_SECS = 150


def _missing() -> str | None:
    if not Path("/usr/sbin/sshd").exists():
        return "sshd not installed (apt-get install openssh-server)"
    for tool in ("rsync", "ssh", "ssh-keygen", "mount"):
        if shutil.which(tool) is None:
            return f"{tool} not installed"
    if not pid_namespace_available():
        return ("no private PID namespace (needs root or user namespaces): the `ray stop` that ray up "
                "and ray down run would hit every other Ray instance on this machine")
    return None


@pytest.fixture
def ray_up_run() -> dict[str, Any]:
    reason = _missing()
    if reason:
        skip_or_fail(reason)
    tag, tmp = new_tag(), short_tmpdir()
    argv = [sys.executable, "-m", "tests.integration.cluster_scripts.ray_up_local", "--tmp", tmp]
    try:
        done = subprocess.run(in_pid_namespace(argv), cwd=PROJECT_ROOT, env=cluster_env(tag, tmp),
                              capture_output=True, text=True, timeout=TIMEOUT_SECS)
        left = wait_no_tagged(tag, 15.0)
    finally:
        kill_tagged(tag)
        remove_tmpdir(tmp)
    assert done.returncode == 0, done.stderr[-4000:]
    run = json.loads(done.stdout.strip().splitlines()[-1])
    run["left_outside"] = left
    return run


def test_cluster_ray_up_and_down_of_the_localhost_variant(ray_up_run: dict[str, Any]) -> None:
    run = ray_up_run
    assert "error" not in run, run.get("error", "") + "\n" + run.get("ray_up_log_tail", "")
    assert run["ray_up"][0] == 0, run["ray_up_log_tail"]
    assert run["gcs_up_after_up"] is True
    # One node, the head, on loopback, with no CPU for shards (ray_cluster.yaml's --num-cpus=0).
    assert run["nodes"] == [{"ip": "127.0.0.1", "head": True, "state": "ALIVE", "cpus": 0.0}]
    assert run["bootstrap_in_private_home"] is True  # ray up really synced its files over SSH
    # `ray down` really stopped Ray: the setup command that puts the venv on the login PATH
    # fixes the pitfall where its bare `ray stop` is "command not found" and Ray keeps running.
    assert run["ray_down"][0] == 0
    assert run["gcs_up_after_down"] is False
    # The belt-and-braces local `ray stop` ran, and nothing of the test is left.
    assert run["ray_stop_local"][0] == 0
    assert run["left"] == [], run["left_names"]
    assert run["tagged_after"] == [] and run["left_outside"] == []
