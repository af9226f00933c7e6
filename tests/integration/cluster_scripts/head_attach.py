"""Subprocess body of test_cluster_head_attach: `ray start --head`, the daemon attaches, `ray stop`.

Meant to run inside a private PID namespace (common.in_pid_namespace), where `ray stop` sees only
the processes this script started. With `--stop tagged` (no PID namespace available) it stops
the head by killing the tagged processes instead, so other Ray instances on the machine survive.

Steps, each recorded in the JSON printed on stdout (the test asserts on it):
1. `ray start --head` on a free loopback port (not 6379), dashboard on 127.0.0.1, 2 CPUs;
2. `python -m engine.daemon` in paper mode against the loopback simulator, with RAY_ADDRESS set:
   it must ATTACH (not start an embedded Ray), build its shard pool on the head, and tick;
3. while it runs, the dashboard state API must list its shard actors ALIVE;
4. SIGTERM: the daemon exits 0 and the Ray head is still up (an attached driver must not stop
   the cluster), with the daemon's shard actors gone;
5. `ray stop`, then nothing of the test is left running.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from tests.integration.cluster_scripts.common import (
    PROJECT_ROOT,
    TAG_VAR,
    VENV_BIN,
    free_port,
    kill_tagged,
    live_pids,
    process_name,
    tagged_pids,
    wait_no_tagged,
)

YAML = "global:\n  engine: {interval: 5m}\n  trade: {entry_min_confidence: low}\n"
TICK = re.compile(r"tick=(\d+) symbols=(\d+) evaluated=(\d+)")
N_SHARDS = 2


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


def start_head(out: dict[str, Any], log: Path) -> tuple[int, int]:
    gcs, dashboard = free_port(), free_port()
    while gcs == 6379 or dashboard == 6379:  # the point of the exercise: never Redis's port
        gcs, dashboard = free_port(), free_port()
    cmd = [str(VENV_BIN / "ray"), "start", "--head", f"--port={gcs}", "--dashboard-host=127.0.0.1",
           f"--dashboard-port={dashboard}", "--num-cpus=2", "--disable-usage-stats",
           f"--ray-client-server-port={free_port()}", f"--dashboard-agent-listen-port={free_port()}"]
    t0 = time.monotonic()
    with open(log, "w") as fh:
        done = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=90)
    out["ray_start"] = {"rc": done.returncode, "secs": round(time.monotonic() - t0, 1), "gcs_port": gcs,
                        "dashboard_port": dashboard}
    if done.returncode != 0:
        raise RuntimeError(f"ray start failed:\n{log.read_text()[-3000:]}")
    return gcs, dashboard


def daemon_env(tmp: Path, gcs: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_QUANT_", "HL_"))}
    (tmp / "strategy.yaml").write_text(YAML)
    env.update(
        RAY_ADDRESS=f"127.0.0.1:{gcs}",
        AI_QUANT_VENUE="simulator",
        AI_QUANT_STATE_DIR=str(tmp / "state"),
        AI_QUANT_STRATEGY_YAML=str(tmp / "strategy.yaml"),
        AI_QUANT_SIM_CANDLE_SECS="0.25",
        AI_QUANT_LOOP_TARGET_SECS="0.5",
        AI_QUANT_EXECUTOR="ray",
        AI_QUANT_SHARDS=str(N_SHARDS),
        AI_QUANT_ALERT_TARGETS="discord:#alerts",
        AI_QUANT_ALERT_DRY_RUN="1",
        AI_QUANT_WEB_PORT="0",  # a free port: parallel tests' daemons never fight over 8765
        PYTHONUNBUFFERED="1",
    )
    return env


def run_daemon(out: dict[str, Any], tmp: Path, gcs: int, dashboard: int) -> None:
    from cluster.cluster_health import DashboardClient, shard_health

    log = tmp / "daemon.log"
    with open(log, "w") as fh:
        proc = subprocess.Popen([sys.executable, "-m", "engine.daemon"], cwd=PROJECT_ROOT,
                                env=daemon_env(tmp, gcs), stdout=fh, stderr=subprocess.STDOUT)
    t0 = time.monotonic()

    def text() -> str:
        if proc.poll() is not None and "shutting down" not in (body := log.read_text(errors="replace")):
            raise RuntimeError(f"daemon exited early with {proc.returncode}:\n{body[-3000:]}")
        return log.read_text(errors="replace")

    try:
        attach = wait_for(lambda: re.search(r"ray (\w+) address=(\S+) namespace=(\S+)", text()), 90,
                          "daemon never connected to Ray")
        out["daemon_ray"] = {"attachment": attach.group(1), "address": attach.group(2),
                             "namespace": attach.group(3)}
        # 3 ticks, one of them with symbols evaluated on the shards (on a loaded box the shards'
        # warm-up can outlast the first ticks, which then evaluate nothing)
        wait_for(lambda: len(ticks := TICK.findall(text())) >= 3 and any(int(t[2]) > 0 for t in ticks), 120,
                 "daemon never ticked 3 times with symbols evaluated")
        client = DashboardClient(f"http://127.0.0.1:{dashboard}")
        health = wait_for(lambda: (h := shard_health(client, attach.group(3), N_SHARDS)).healthy and h, 30,
                          "shards never ALIVE on the dashboard")
        out["dashboard_while_running"] = health.to_json()
        proc.send_signal(signal.SIGTERM)
        out["daemon_exit"] = proc.wait(timeout=90)
        out["daemon_secs"] = round(time.monotonic() - t0, 1)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        body = log.read_text(errors="replace")
        out["daemon_ticks"] = [[int(x) for x in m] for m in TICK.findall(body)]
        out["daemon_log_tail"] = body[-3000:]
    out["head_up_after_daemon_exit"] = port_open(gcs)
    after = wait_for(lambda: (h := shard_health(client, attach.group(3), N_SHARDS)).not_alive and h, 30,
                     "shards still ALIVE after the daemon stopped")
    out["dashboard_after_daemon_exit"] = after.to_json()


def stop_head(out: dict[str, Any], how: str, tag: str, tmp: Path) -> None:
    t0 = time.monotonic()
    if how == "ray":
        with open(tmp / "ray_stop.log", "w") as fh:
            out["ray_stop_rc"] = subprocess.run([str(VENV_BIN / "ray"), "stop"], stdout=fh,
                                                stderr=subprocess.STDOUT, timeout=90).returncode
    else:
        kill_tagged(tag)
    ours = (1, os.getpid())  # PID 1 is our namespace's bash (tagged too); never the host's init
    left = wait_no_tagged(tag, 30.0, ignore=ours)
    if how == "ray":  # in our own PID namespace anything else alive is a leftover, tagged or not
        left = sorted(set(left) | set(live_pids(ignore=ours)))
    out["stop"] = {"how": how, "secs": round(time.monotonic() - t0, 1), "left": left,
                   "left_names": [process_name(p) for p in left]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--tmp", required=True)
    parser.add_argument("--stop", choices=("ray", "tagged"), default="ray")
    args = parser.parse_args(argv)
    tmp = Path(args.tmp)
    tag = os.environ[TAG_VAR]
    out: dict[str, Any] = {"pid1": process_name(1)}  # "bash" inside our PID namespace
    try:
        gcs, dashboard = start_head(out, tmp / "ray_start.log")
        run_daemon(out, tmp, gcs, dashboard)
    except Exception as exc:  # report what happened, then still stop everything
        out["error"] = f"{type(exc).__name__}: {exc}"
    finally:
        stop_head(out, args.stop, tag, tmp)
    out["tagged_after"] = [p for p in tagged_pids(tag) if p not in (1, os.getpid())]
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
