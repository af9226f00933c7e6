"""Subprocess body of test_cluster_ray_up: a real `ray up` / `ray down` of ray_cluster.yaml's
single-box variant, over SSH to an sshd of our own on 127.0.0.1.

Must run inside a private PID + mount namespace (common.in_pid_namespace): `ray up` runs
`ray stop` on the head first and `ray down` runs it again, and `ray stop` kills every Ray
process it can see. In the namespace those are only ours. The mount namespace also lets us put
sshd's privilege-separation directory on a private tmpfs instead of creating /run/sshd on the host.

Nothing here can reach another machine: the variant's head is 127.0.0.1 with no workers, sshd
listens on 127.0.0.1 only, and the `ssh` that ray and rsync find first on PATH is a wrapper that
refuses any target but 127.0.0.1 (and adds our port, as Ray's auth config has no port field).
The SSH session's HOME is a private directory, so ray_bootstrap_config.yaml and
ray_bootstrap_key.pem never land in the real user's home.
"""

from __future__ import annotations

import argparse
import contextlib
import getpass
import hashlib
import json
import os
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

import yaml

from tests.integration.cluster_scripts.common import (
    PROJECT_ROOT,
    TAG_VAR,
    VENV_BIN,
    free_port,
    live_pids,
    process_name,
    tagged_pids,
)
from tests.integration.cluster_scripts.localhost_yaml import localhost_variant

SSHD = "/usr/sbin/sshd"

SSH_WRAPPER = """#!/bin/sh
# ssh for the ray-up test: loopback targets only, on the test's sshd port.
for arg in "$@"; do
  case "$arg" in
    *@127.0.0.1) ;;
    *@*) echo "ray-up test: refusing non-loopback ssh target $arg" >&2; exit 255 ;;
  esac
done
exec /usr/bin/ssh -p {port} -o ControlMaster=no -o ControlPath=none -o UserKnownHostsFile=/dev/null \\
  -o StrictHostKeyChecking=no -o LogLevel=ERROR "$@"
"""


def port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def wait_for(condition: Any, timeout_secs: float, what: str) -> Any:
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise TimeoutError(what)


def private_run_dir() -> None:
    """sshd insists on /run/sshd; give it one on a tmpfs only this mount namespace sees."""
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m,mode=0755", "tmpfs", "/run"], check=True)
    Path("/run/sshd").mkdir(mode=0o755)


def start_sshd(tmp: Path, port: int, env: dict[str, str]) -> subprocess.Popen[bytes]:
    home = tmp / "home"
    home.mkdir(mode=0o700)
    (home / ".bashrc").write_text("")  # ray runs `source ~/.bashrc && ...`
    for name in ("host_key", "client_key"):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(tmp / name)], check=True)
    (tmp / "authorized_keys").write_text((tmp / "client_key.pub").read_text())
    (tmp / "authorized_keys").chmod(0o600)
    set_env = " ".join(f"{k}={v}" for k, v in env.items())
    (tmp / "sshd_config").write_text(
        f"Port {port}\nListenAddress 127.0.0.1\nHostKey {tmp}/host_key\nPidFile {tmp}/sshd.pid\n"
        f"AuthorizedKeysFile {tmp}/authorized_keys\nPubkeyAuthentication yes\n"
        "PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
        f"UsePAM no\nStrictModes no\nAllowUsers {getpass.getuser()}\nSetEnv HOME={home} {set_env}\n"
    )
    proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(tmp / "sshd_config")],
                            stdout=open(tmp / "sshd.log", "w"), stderr=subprocess.STDOUT)
    wait_for(lambda: port_open(port) or proc.poll() is not None, 20, "sshd did not listen")
    if proc.poll() is not None:
        raise RuntimeError(f"sshd exited: {(tmp / 'sshd.log').read_text()[-2000:]}")
    return proc


def ray_cli(args: list[str], env: dict[str, str], log: Path, timeout: float) -> tuple[int, float]:
    t0 = time.monotonic()
    with open(log, "w") as fh:
        rc = subprocess.run([str(VENV_BIN / "ray"), *args], env=env, stdout=fh, stderr=subprocess.STDOUT,
                            timeout=timeout, cwd=PROJECT_ROOT).returncode
    return rc, round(time.monotonic() - t0, 1)


def scenario(out: dict[str, Any], tmp: Path, tag: str) -> None:
    from cluster.cluster_health import DashboardClient

    private_run_dir()
    ports = {name: free_port() for name in ("ssh", "gcs", "dashboard", "client", "agent", "metrics")}
    node_env = {"RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER": "0", "RAY_USAGE_STATS_ENABLED": "0",
                "RAY_TMPDIR": os.environ["RAY_TMPDIR"], TAG_VAR: tag}
    sshd = start_sshd(tmp, ports["ssh"], node_env)
    out["sshd_pid"] = sshd.pid
    bin_dir = tmp / "bin"
    bin_dir.mkdir()
    (bin_dir / "ssh").write_text(SSH_WRAPPER.format(port=ports["ssh"]))
    (bin_dir / "ssh").chmod(0o755)
    variant = localhost_variant(yaml.safe_load((PROJECT_ROOT / "ray_cluster.yaml").read_text()),
                                project_root=str(PROJECT_ROOT), ssh_user=getpass.getuser(),
                                ssh_key=str(tmp / "client_key"), ports=ports, env=node_env)
    variant["cluster_name"] = f"aiq-t-{tag}"
    config = tmp / "cluster.yaml"
    config.write_text(yaml.safe_dump(variant))
    cli_env = dict(os.environ, PATH=f"{bin_dir}:{VENV_BIN}:/usr/bin:/bin:/usr/sbin:/sbin")
    out["ray_up"] = ray_cli(["up", str(config), "-y", "--no-config-cache", "--disable-usage-stats"],
                            cli_env, tmp / "ray_up.log", 90)
    out["ray_up_log_tail"] = (tmp / "ray_up.log").read_text(errors="replace")[-2500:]
    if out["ray_up"][0] != 0:
        return
    out["gcs_up_after_up"] = wait_for(lambda: port_open(ports["gcs"]), 30, "GCS not up after ray up")
    nodes = wait_for(lambda: DashboardClient(f"127.0.0.1:{ports['dashboard']}").nodes(), 30, "no nodes")
    out["nodes"] = [{"ip": n.node_ip, "head": n.is_head, "state": n.state,
                     "cpus": n.resources_total.get("CPU", 0.0)} for n in nodes]
    out["bootstrap_in_private_home"] = (tmp / "home" / "ray_bootstrap_config.yaml").is_file()
    out["ray_down"] = ray_cli(["down", str(config), "-y"], cli_env, tmp / "ray_down.log", 60)
    out["gcs_up_after_down"] = port_open(ports["gcs"])


def _remove_control_dir(cluster_name: str) -> None:
    """Ray makes /tmp/ray_ssh_<user hash>/<cluster hash> even though our ssh never uses it."""
    user_dir = Path("/tmp") / f"ray_ssh_{hashlib.sha256(getpass.getuser().encode()).hexdigest()[:10]}"
    for path in (user_dir / hashlib.sha256(cluster_name.encode()).hexdigest()[:10], user_dir):
        with contextlib.suppress(OSError):
            path.rmdir()  # only if empty: another cluster's directory stays


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tmp", required=True)
    args = parser.parse_args(argv)
    tmp = Path(args.tmp)
    tag = os.environ[TAG_VAR]
    out: dict[str, Any] = {"pid1": process_name(1)}
    try:
        scenario(out, tmp, tag)
    except Exception as exc:  # report, then still clean up
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        # The pitfall: `ray down` with the local provider can leave Ray running. `ray stop` here
        # is safe: this PID namespace holds only our processes.
        out["ray_stop_local"] = ray_cli(["stop"], dict(os.environ), tmp / "ray_stop.log", 60)
        ours = (1, os.getpid())
        sshd_pid = out.get("sshd_pid")
        if sshd_pid:
            os.kill(sshd_pid, 15)
            os.waitpid(sshd_pid, 0)
        deadline = time.monotonic() + 30.0
        while (left := live_pids(ignore=ours)) and time.monotonic() < deadline:
            time.sleep(0.2)
        out["left"] = left
        out["left_names"] = [process_name(p) for p in left]
        out["tagged_after"] = [p for p in tagged_pids(tag) if p not in ours]
        _remove_control_dir(f"aiq-t-{tag}")
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
