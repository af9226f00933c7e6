"""Turn ray_cluster.yaml into its single-box variant: head on 127.0.0.1, no workers, free ports.

The `ray up` test runs THIS variant, derived from the real file, so it exercises the real
start commands. Only what cannot be the same on a test box changes:
- the addresses (head 127.0.0.1, no workers), the SSH user and key;
- the project and venv path (/opt/ai-quant -> this checkout; the tree is already there, so no
  file_mounts and no pip install: the setup step checks the venv imports instead, and keeps the
  command that puts the venv on the login PATH, which `ray down` needs);
- the ports: Ray's GCS, the dashboard, and the ports a second Ray on this box would collide on;
- the environment: loopback binding, auth disabled (the test session's choice), a private
  RAY_TMPDIR and the test's process tag.
Every replaced token must be present in the source commands: if ray_cluster.yaml changes shape,
this raises instead of silently testing something else.
"""

from __future__ import annotations

import copy
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PROD_ROOT = "/opt/ai-quant"
VENV_DIR = str(Path(sys.executable).parent.parent)  # not resolved: a venv's python is a symlink
PROD_RAY_PORT = "--port=6380"
PROD_DASHBOARD_PORT = "--dashboard-port=8265"
PROD_AUTH = "RAY_AUTH_MODE=token"


def _replace(command: str, old: str, new: str) -> str:
    if old not in command:
        raise ValueError(f"ray_cluster.yaml changed: {old!r} not in {command!r}")
    return command.replace(old, new)


def localhost_variant(
    config: Mapping[str, Any],
    *,
    project_root: str,
    ssh_user: str,
    ssh_key: str,
    ports: Mapping[str, int],
    env: Mapping[str, str],
    venv_dir: str = VENV_DIR,
) -> dict[str, Any]:
    """Return the single-box variant of the parsed ray_cluster.yaml (see module docstring).

    `ports` needs keys gcs, dashboard, client, agent, metrics; `env` is exported before every
    command; `venv_dir` defaults to the venv running the tests (.venv, or .ci-venv in CI).
    Raises ValueError if an expected token is missing from the source commands.
    """
    cfg = copy.deepcopy(dict(config))
    cfg["provider"] = {"type": "local", "head_ip": "127.0.0.1", "worker_ips": []}
    cfg["max_workers"] = 0
    cfg["auth"] = {"ssh_user": ssh_user, "ssh_private_key": ssh_key}
    cfg["file_mounts"] = {}
    venv_python = f"{venv_dir}/bin/python"
    login_path = [
        _replace(c, f"{PROD_ROOT}/.venv", venv_dir).replace(PROD_ROOT, project_root)
        for c in cfg["setup_commands"]
        if "~/.bashrc" in c
    ]
    if not login_path:
        raise ValueError("ray_cluster.yaml changed: no setup command puts the venv on the login PATH")
    cfg["setup_commands"] = [f'{venv_python} -c "import ray, engine, cluster, strategies"', *login_path]
    exports = "export " + " ".join(f"{k}={v}" for k, v in env.items()) + "; "
    extra = (f" --ray-client-server-port={ports['client']} --dashboard-agent-listen-port={ports['agent']}"
             f" --metrics-export-port={ports['metrics']}")
    head = []
    for command in cfg["head_start_ray_commands"]:
        command = _replace(command, f"{PROD_ROOT}/.venv/bin/ray", f"{venv_dir}/bin/ray")
        if " start " in command:
            command = _replace(command, PROD_AUTH, "RAY_AUTH_MODE=disabled")
            command = _replace(command, PROD_RAY_PORT, f"--port={ports['gcs']}")
            command = _replace(command, PROD_DASHBOARD_PORT, f"--dashboard-port={ports['dashboard']}")
            command += extra
        head.append(exports + command)
    cfg["head_start_ray_commands"] = head
    cfg["worker_start_ray_commands"] = []
    return cfg
