"""Start-up and recovery times at N symbols: daemon start → first decision, shard kill → deciding again.

    .venv/bin/python -m bench.startup [--symbols 1000] [--parts daemon,shard_kill]

``daemon`` (goal <= 15 s at 1,000 symbols): a loopback simulator with N synthetic coins, a
private redis-server (AOF, like the embedded one) and two external sidecars that split the
watchlist, as a multi-sidecar deployment runs. The venue caps WebSocket subscriptions at 1,000
per IP (allMids + one candle channel per symbol and sidecar), so from one machine this part
watches at most 998 symbols (reported as ``daemon.symbols``). Once every symbol has candles
in Redis, a paper daemon (Ray executor) runs until its first decision and stops (SIGTERM: shards
checkpoint). Then the timed run: a new daemon against the now warm Redis, from `Popen` to the
first status line that evaluated symbols. Repeated `--daemon-runs` times. Each run's breakdown
is the daemon's own `startup phases` line (`warm_phases_secs`), beside the CPU seconds the
daemon's process tree used until its first decision (`warm_daemon_tree_cpu_secs`: the work, whatever
the load) and what the embedded Ray's dashboard says of the shards right then (`warm_dashboard_shards`:
its state API must list every shard ALIVE). `--late-runs N` interleaves N
warm starts with AI_QUANT_RAY_EARLY_START=0 (Ray started after imports and config, as before)
as a same-load baseline (`late_ray_start_runs`); `--no-dashboard-runs N` interleaves N with
AI_QUANT_RAY_DASHBOARD=0 (the dashboard's cost, `no_dashboard_runs`). `--ray-head-runs N` then
starts a long-lived Ray head with its dashboard (what `ray start --head` runs; README "Single box
with a long-lived Ray head") and times N warm starts that attach to it (`RAY_ADDRESS`; `ray_head_runs`): the
deployment that takes Ray's own start out of a daemon restart.

``shard_kill`` (goal <= 3 s, no missed tick): an embedded Ray, a `ShardPool` of `--shards` over
N symbols of history in Redis, ticks running (one closed candle per symbol per tick, deadline
`--deadline-ms`). One shard's process gets SIGKILL (a crash, not `ray.kill`); ticks go on at
the same cadence. Measured: from the kill to the end of the first tick in which every symbol
of that shard is decided again (status ok). "No missed tick": no tick stalls past its deadline
(the dead shard's symbols get SHARD_* no-signal records meanwhile, the others keep deciding),
and once back, the shard's decisions equal the batch strategy over the full history for a
sample of its symbols (a candle skipped during the outage would break that).

Prints one JSON object. No timing is asserted anywhere.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.support import REPO_ROOT, SimulatorProcess, start_simulator
from engine.runtime.startup_timeline import parse_phases

DAEMON_GOAL_SECS = 15.0
SHARD_KILL_GOAL_SECS = 3.0
STATUS = re.compile(r"tick=(\d+) symbols=\d+ evaluated=(\d+) ")
STARTED = re.compile(r"engine started mode=")
YAML = "global:\n  engine: {interval: 5m}\n"
SIDECARS = 2
# The venue (and the simulator) accept at most 1,000 WebSocket subscriptions per IP, all
# connections together; each sidecar needs allMids + one candle channel per symbol, so from one
# machine the daemon part can watch 1,000 - SIDECARS symbols (more needs REST-polled markets).
WS_SUBSCRIPTIONS_PER_IP = 1000


def _wait(what: Callable[[], Any], timeout: float, label: str, proc: subprocess.Popen[Any] | None = None,
          poll_secs: float = 0.05) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = what()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{label}: process exited with {proc.returncode}")
        time.sleep(poll_secs)
    raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {label}")


def _stop(proc: subprocess.Popen[Any], timeout: float = 60.0) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return proc.returncode


def _spawn(module: str, env: dict[str, str], log: Path) -> subprocess.Popen[Any]:
    with log.open("a") as out:
        return subprocess.Popen([sys.executable, "-m", module], cwd=REPO_ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _base_env(sim: SimulatorProcess, redis_url: str, state: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_QUANT_", "HL_", "RAY_ADDRESS"))}
    env.update(AI_QUANT_HL_BASE_URL=sim.base_url, AI_QUANT_REDIS_URL=redis_url, AI_QUANT_REDIS_PREFIX="aiq",
               AI_QUANT_INTERVAL="5m", AI_QUANT_WS_ENABLE_BBO="0", AI_QUANT_REST_WEIGHT_PER_MIN="100000000",
               AI_QUANT_CANDLE_REST_MIN_GAP_MS="0", AI_QUANT_CANDLE_REST_MAX_INFLIGHT="16",
               AI_QUANT_STATE_DIR=str(state), PYTHONUNBUFFERED="1")
    return env


class _LogTail:
    """The complete lines appended to a log since the last call (a partial last line waits)."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._offset = 0

    def lines(self) -> str:
        try:
            with self._path.open("rb") as fh:
                fh.seek(self._offset)
                chunk = fh.read()
        except OSError:  # not created yet
            return ""
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        return chunk[:end].decode(errors="replace")


def tree_cpu_secs(root: int, proc_dir: str = "/proc") -> float:
    """CPU seconds (user + system) used so far by process `root` and every descendant, the reaped
    ones included (their parents' cutime/cstime): the work a start-up cost, whatever the load."""
    tick = os.sysconf("SC_CLK_TCK")
    parent: dict[int, int] = {}
    used: dict[int, int] = {}
    for name in os.listdir(proc_dir):
        if not name.isdigit():
            continue
        try:
            with open(f"{proc_dir}/{name}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except OSError:  # exited meanwhile
            continue
        parent[int(name)] = int(fields[1])
        used[int(name)] = sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    tree, frontier = {root}, [root]
    while frontier:
        children = [pid for pid, ppid in parent.items() if ppid in frontier and pid not in tree]
        tree.update(children)
        frontier = children
    return sum(used.get(pid, 0) for pid in tree) / tick


def _first_decision_secs(env: dict[str, str], log: Path,
                         timeout: float) -> tuple[float, float, float, subprocess.Popen[Any]]:
    """Start a daemon; return (seconds to "engine started" = shards ready, seconds to its first
    status line with evaluated > 0, the CPU seconds its process tree used until then, the process).
    The engine decides on key changes, so the second includes the wait for the next candle close
    after it started. The daemon's own breakdown of the first number is its `startup phases` log
    line (`_phases`)."""
    start = time.monotonic()
    proc = _spawn("engine.daemon", env, log)
    tail = _LogTail(log)  # reads only what was appended: the poll must not compete with the start

    try:
        _wait(lambda: STARTED.search(tail.lines()), timeout, f"engine start (log {log})", proc,
              poll_secs=0.02)
        ready = time.monotonic() - start
        tail = _LogTail(log)  # from the top again: a status line may share the chunk that started it
        _wait(lambda: any(int(m[2]) > 0 for m in STATUS.finditer(tail.lines())), timeout,
              f"first decision (log {log})", proc, poll_secs=0.02)
        decided = time.monotonic() - start
        cpu = tree_cpu_secs(proc.pid)
    except BaseException:
        _stop(proc)  # never leave a daemon (and its Ray) behind
        raise
    return ready, decided, cpu, proc


def run_daemon(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The `daemon` part (see the module docstring)."""
    import redis

    from cluster.redis_layout import RedisLayout
    from engine.runtime.redis_server import EmbeddedRedis

    # one 5m candle every --candle-secs of wall time
    sim = start_simulator(["--synthetic", str(args.symbols), "--speed", f"{300 / args.candle_secs:g}",
                           "--history-bars", "400", "--rate-limit-per-min", "0"], work / "sim")
    server = EmbeddedRedis(work / "redis", appendonly=True)
    procs: list[subprocess.Popen[Any]] = []
    try:
        url = server.start()
        watch = min(args.symbols, WS_SUBSCRIPTIONS_PER_IP - SIDECARS)
        coins = [u["name"] for u in sim.info({"type": "meta"}).json()["universe"]][:watch]
        env = _base_env(sim, url, work / "state")
        for i in range(SIDECARS):
            part = coins[i::SIDECARS]
            procs.append(_spawn("engine.sidecar", {**env, "AI_QUANT_SYMBOLS": ",".join(part)},
                                work / f"sidecar-{i}.log"))
        client = redis.Redis.from_url(url)
        layout = RedisLayout("aiq")
        t0 = time.monotonic()
        _wait(lambda: all(k.closed_close_ms for k in layout.read_candle_keys(client, coins, "5m").values()),
              args.timeout, "every symbol's candles in Redis", poll_secs=0.5)
        fill_secs = time.monotonic() - t0
        client.close()
        (work / "strategy.yaml").write_text(YAML)
        daemon_env = {**env, "AI_QUANT_STRATEGY_YAML": str(work / "strategy.yaml"),
                      "AI_QUANT_SYMBOLS": ",".join(coins), "AI_QUANT_SIDECAR_EXTERNAL": "1",
                      "AI_QUANT_EXECUTOR": "ray", "AI_QUANT_SHARDS": str(args.shards),
                      "AI_QUANT_WEB_PORT": "0",
                      "AI_QUANT_LOOP_TARGET_SECS": "0.5", "AI_QUANT_ALERT_TARGETS": "discord:#alerts",
                      "AI_QUANT_ALERT_DRY_RUN": "1"}
        _, first, _, proc = _first_decision_secs(daemon_env, work / "daemon-cold.log", args.timeout)
        cold_exit = _stop(proc)
        warm: list[float] = []
        ready: list[float] = []
        phases: list[dict[str, float]] = []
        late: list[dict[str, Any]] = []
        dashboards: list[dict[str, Any]] = []
        cpus: list[float] = []
        bare: list[dict[str, Any]] = []
        for run in range(max(args.daemon_runs, args.late_runs, args.no_dashboard_runs)):
            if run < args.daemon_runs:
                log = work / f"daemon-warm-{run}.log"
                up, secs, cpu, proc = _first_decision_secs(daemon_env, log, args.timeout)
                ready.append(up)
                warm.append(secs)
                cpus.append(cpu)
                dashboards.append(_dashboard_shards(log, args.shards))  # while the daemon runs
                _stop(proc)
                phases.append(_phases(log, up, secs))
            if run < args.late_runs:  # interleaved, so both see the same load
                late.append(_late_run(daemon_env, work / f"daemon-late-{run}.log", args.timeout))
            if run < args.no_dashboard_runs:
                bare.append(_late_run(daemon_env, work / f"daemon-nodash-{run}.log", args.timeout,
                                      ("AI_QUANT_RAY_DASHBOARD", "0")))
        head_runs = _ray_head_runs(daemon_env, work, args) if args.ray_head_runs else []
    finally:
        for proc in procs:
            _stop(proc, 20.0)
        server.stop()
        sim.stop()
    return {
        "symbols": len(coins), "sidecars": SIDECARS, "shards": args.shards,
        "redis_fill_secs": round(fill_secs, 1),
        "first_run_secs": round(first, 2), "first_run_exit": cold_exit,
        "warm_start_to_engine_started_secs": [round(s, 2) for s in ready],
        "warm_start_to_first_decision_secs": [round(s, 2) for s in warm],
        "warm_daemon_tree_cpu_secs": [round(c, 2) for c in cpus],
        "warm_phases_secs": phases,
        "warm_dashboard_shards": dashboards,
        "late_ray_start_runs": late,
        "no_dashboard_runs": bare,
        "ray_head_runs": head_runs,
        "candle_every_secs": args.candle_secs,
        "warm_p50_secs": round(statistics.median(warm), 2), "goal_secs": DAEMON_GOAL_SECS,
        "meets_goal": statistics.median(warm) <= DAEMON_GOAL_SECS,
    }


def _phases(log: Path, ready: float, decided: float) -> dict[str, float]:
    """The daemon's `startup phases` line as {phase: seconds}: the sequential imports, config,
    redis, venue, sidecar_broker, shards (waiting for the pool), engine; beside them, in the
    background, ray_init, shards_create, shard_boot, shard_restore. Plus `first_tick` (engine started →
    first decision, measured here) and `spawn` (Popen → the daemon's own clock, i.e. what its
    `total` does not see). Raises RuntimeError when the daemon logged no such line."""
    found = parse_phases(log.read_text(errors="replace"))
    if found is None:
        raise RuntimeError(f"no 'startup phases' line in {log}")
    out = {k: round(v, 3) for k, v in found.items()}
    out["spawn"] = round(max(0.0, ready - found["total"]), 3)
    out["first_tick"] = round(decided - ready, 3)
    return out


def _dashboard_shards(log: Path, shards: int) -> dict[str, Any]:
    """What the daemon's Ray dashboard (URL from its `ray embedded ... dashboard=` line) says of
    the shard actors right after the first decision: its state API must list every one ALIVE."""
    from cluster.cluster_health import DashboardClient, DashboardError, auth_token, shard_health

    found = re.search(r"ray \w+ address=\S+ namespace=(\S+) dashboard=(\S+)", log.read_text(errors="replace"))
    if found is None or found[2] == "none":
        return {"url": None, "healthy": False}
    try:
        health = shard_health(DashboardClient(found[2], token=auth_token()), found[1], shards)
    except DashboardError as exc:
        return {"url": found[2], "healthy": False, "error": str(exc)}
    return {"url": found[2], "healthy": health.healthy, "alive": list(health.alive)}


def _late_run(env: dict[str, str], log: Path, timeout: float,
              variant: tuple[str, str] = ("AI_QUANT_RAY_EARLY_START", "0")) -> dict[str, Any]:
    """One warm start with one variable changed: by default AI_QUANT_RAY_EARLY_START=0 (Ray starts
    once the watchlist is known, after the daemon's imports and config, as before the early
    start); `--no-dashboard-runs` passes AI_QUANT_RAY_DASHBOARD=0. A same-run baseline."""
    up, secs, cpu, proc = _first_decision_secs({**env, variant[0]: variant[1]}, log, timeout)
    _stop(proc)
    return {"start_to_engine_started_secs": round(up, 2), "start_to_first_decision_secs": round(secs, 2),
            "daemon_tree_cpu_secs": round(cpu, 2),
            "phases_secs": _phases(log, up, secs)}


def _ray_head_runs(env: dict[str, str], work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Warm starts attached to a long-lived Ray head (dashboard included, on loopback) that this
    bench starts once and stops at the end; each daemon still creates and removes its own shards."""
    from ray.cluster_utils import Cluster

    from engine.runtime.redis_server import free_port

    began = time.monotonic()
    cluster = Cluster(initialize_head=True, connect=False,
                      head_node_args={"num_cpus": 2, "include_dashboard": True, "dashboard_host": "127.0.0.1",
                                      "dashboard_port": free_port()})
    head_secs = time.monotonic() - began
    runs: list[dict[str, Any]] = []
    try:
        for run in range(args.ray_head_runs):
            log = work / f"daemon-head-{run}.log"
            attach_env = {**env, "RAY_ADDRESS": cluster.address}
            up, secs, cpu, proc = _first_decision_secs(attach_env, log, args.timeout)
            _stop(proc)
            runs.append({"head_start_secs": round(head_secs, 2), "start_to_engine_started_secs": round(up, 2),
                         "start_to_first_decision_secs": round(secs, 2),
                         "daemon_tree_cpu_secs": round(cpu, 2),
                         "phases_secs": _phases(log, up, secs),
                         "attached": "ray attached" in log.read_text(errors="replace")})
    finally:
        cluster.shutdown()
    return runs


def _victim_back(result: Any, victims: list[str]) -> bool:
    return all(result.decisions[s].status.value == "ok" for s in victims)


def run_shard_kill(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """The `shard_kill` part (see the module docstring)."""
    import redis

    from bench.tick import _parity, _write_bar, _write_history
    from bench.universe import INTERVAL, series, symbol_names
    from cluster.pool import PoolSettings, ShardPool
    from cluster.redis_layout import RedisLayout
    from cluster.shard_core import ConfigSource, ShardSettings
    from engine.runtime.ray_runtime import connect_ray, shutdown_ray
    from engine.runtime.redis_server import EmbeddedRedis

    bars = args.warm_bars + args.ticks_before + args.max_outage_ticks + 2
    symbols = symbol_names(args.symbols)
    hist = {s: series(i, bars) for i, s in enumerate(symbols)}
    hist["BTC"] = series(0, bars, anchor=True)
    server = EmbeddedRedis(work / "redis-kill", appendonly=False)
    url = server.start()
    client = redis.Redis.from_url(url)
    layout = RedisLayout("kill", keep_bars=bars + 10)
    pool = None
    try:
        _write_history(client, layout, hist, args.warm_bars)
        # with the dashboard, as the daemon starts it (engine.runtime.ray_boot.connect_daemon_ray)
        connect_ray(namespace="aiq-bench-startup", num_cpus=2, include_dashboard=None)
        pool = ShardPool(redis_url=url, redis_prefix="kill", settings=ShardSettings(interval=INTERVAL),
                         configs=ConfigSource(), symbols=symbols,
                         pool=PoolSettings(n_shards=args.shards, namespace="aiq-bench-startup",
                                           deadline_ms=args.deadline_ms))
        pool.evaluate({s: hist[s][args.warm_bars - 1].close_ms for s in symbols}, deadline_ms=600_000)
        bar = args.warm_bars
        tick_ms: list[float] = []
        for _ in range(args.ticks_before):
            _write_bar(client, layout, hist, bar)
            t0 = time.perf_counter()
            pool.evaluate({s: hist[s][bar].close_ms for s in symbols})
            tick_ms.append((time.perf_counter() - t0) * 1000.0)
            bar += 1
        victim = 0
        victims = [s for s in symbols if pool.shard_of(s) == victim]
        pid = next(s["pid"] for s in pool.stats() if s["shard"] == victim)
        os.kill(pid, signal.SIGKILL)
        killed = time.monotonic()
        killed_wall = time.time()
        outage: list[dict[str, Any]] = []
        records: list[dict[str, Any]] = []
        back_secs = None
        while len(outage) < args.max_outage_ticks:
            _write_bar(client, layout, hist, bar)
            t0 = time.perf_counter()
            result = pool.evaluate({s: hist[s][bar].close_ms for s in symbols})
            took = (time.perf_counter() - t0) * 1000.0
            others_ok = all(r.status.value == "ok" for s, r in result.decisions.items() if s not in victims)
            statuses = sorted({result.decisions[s].status.value for s in victims})
            outage.append({"tick_ms": round(took, 1), "victim_statuses": statuses, "others_ok": others_ok})
            bar += 1
            if _victim_back(result, victims):
                back_secs = time.monotonic() - killed
                records.append(result.decisions)
                break
            time.sleep(max(0.0, args.cadence_ms - took) / 1000.0)
        # one more tick after recovery, then parity of both recovered ticks against the batch oracle
        if back_secs is not None:
            _write_bar(client, layout, hist, bar)
            records.append(pool.evaluate({s: hist[s][bar].close_ms for s in symbols}).decisions)
        sample = victims[:: max(1, len(victims) // args.parity_sample)][: args.parity_sample]
        checked, mismatches = (_parity(hist, sample, bar + 1 - len(records), [{s: r[s] for s in sample}
                                                                             for r in records])
                               if records else (0, 0))
        new_pid = next(s["pid"] for s in pool.stats() if s["shard"] == victim)
        import ray

        restarted = ray.get(pool.handles[victim].started.remote(), timeout=60)
    finally:
        if pool is not None:
            pool.close()
        client.close()
        shutdown_ray()
        server.stop()
    max_tick = max(o["tick_ms"] for o in outage)
    return {
        "symbols": args.symbols, "shards": args.shards, "victim_symbols": len(victims),
        "deadline_ms": args.deadline_ms, "tick_ms_before_p50": round(statistics.median(tick_ms), 1),
        "kill_to_deciding_secs": None if back_secs is None else round(back_secs, 2),
        "ticks_until_back": len(outage), "outage_ticks": outage, "restarted_pid_differs": new_pid != pid,
        "phases_secs": _kill_phases(restarted, killed_wall, back_secs),
        "no_tick_stalled": max_tick <= args.deadline_ms + 250.0,
        "others_decided_every_tick": all(o["others_ok"] for o in outage),
        "parity_after_recovery": {"checked": checked, "mismatches": mismatches},
        "goal_secs": SHARD_KILL_GOAL_SECS,
        "meets_goal": back_secs is not None and back_secs <= SHARD_KILL_GOAL_SECS and mismatches == 0,
    }


def _kill_phases(started: dict[str, Any], killed_wall: float, back_secs: float | None) -> dict[str, Any]:
    """Kill → deciding, split with the restarted actor's own record (`SignalShard.started`):
    `respawn` kill → Ray spawned the new worker process, `boot` → strategy stack imported,
    `restore` the constructor (checkpoints), `catch_up_and_tick` → the first tick it decided."""
    spawned = started.get("spawned_wall")
    out: dict[str, Any] = {
        "respawn": None if spawned is None else round(spawned - killed_wall, 3),
        "boot": None if started.get("boot_secs") is None else round(started["boot_secs"], 3),
        "restore": round(started["restore_secs"], 3),
        "checkpoints_restored": started.get("checkpoints"),
    }
    ready = started["ready_wall"] - killed_wall
    out["catch_up_and_tick"] = None if back_secs is None else round(back_secs - ready, 3)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--symbols", type=int, default=1000)
    parser.add_argument("--shards", type=int, default=2)
    parser.add_argument("--parts", default="daemon,shard_kill")
    parser.add_argument("--daemon-runs", type=int, default=2, help="timed warm starts")
    parser.add_argument("--late-runs", type=int, default=0,
                        help="extra warm starts with AI_QUANT_RAY_EARLY_START=0, interleaved (baseline)")
    parser.add_argument("--no-dashboard-runs", type=int, default=0,
                        help="extra warm starts with AI_QUANT_RAY_DASHBOARD=0, interleaved (its cost)")
    parser.add_argument("--ray-head-runs", type=int, default=0,
                        help="then N warm starts attached to a long-lived Ray head (dashboard on)")
    parser.add_argument("--candle-secs", type=float, default=2.0, help="wall seconds per 5m candle")
    parser.add_argument("--timeout", type=float, default=300.0, help="per wait (s)")
    parser.add_argument("--warm-bars", type=int, default=260)
    parser.add_argument("--ticks-before", type=int, default=20, help="shard_kill: ticks before the kill")
    parser.add_argument("--max-outage-ticks", type=int, default=60)
    parser.add_argument("--cadence-ms", type=float, default=250.0,
                        help="shard_kill: one tick at most this often")
    parser.add_argument("--deadline-ms", type=float, default=1000.0)
    parser.add_argument("--parity-sample", type=int, default=20)
    parser.add_argument("--work-dir", type=Path, default=None,
                        help="keep logs and state here (default: a temporary directory, removed)")
    args = parser.parse_args(argv)
    parts = [p for p in args.parts.split(",") if p]
    if not parts or set(parts) - {"daemon", "shard_kill"} or args.symbols < 2 or args.daemon_runs < 1 \
            or args.late_runs < 0 or args.ray_head_runs < 0 or args.no_dashboard_runs < 0:
        print("bench.startup: --parts is a subset of daemon,shard_kill; --symbols >= 2; --daemon-runs >= 1;"
              " --late-runs >= 0; --ray-head-runs >= 0",
              file=sys.stderr)
        return 2
    from engine.runtime.ray_runtime import prepare_ray_environment

    prepare_ray_environment()
    # Ray's driver prints worker-death notices on stdout (one is certain here: we kill a shard);
    # they go to stderr, stdout carries only the JSON document.
    sys.stdout.flush()
    report = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    out: dict[str, Any] = {"bench": "startup", "cpus": os.cpu_count(),
                           "loadavg_1m_before": os.getloadavg()[0]}
    with tempfile.TemporaryDirectory(prefix="aiq-startup-", dir="/tmp") as tmp:
        os.environ.setdefault("RAY_TMPDIR", tmp)
        work = args.work_dir or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        if "shard_kill" in parts:
            out["shard_kill"] = run_shard_kill(args, work)
        if "daemon" in parts:
            out["daemon"] = run_daemon(args, work)
    out["loadavg_1m_after"] = os.getloadavg()[0]
    print(json.dumps(out, indent=2), file=report, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
