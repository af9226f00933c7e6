"""Crash soak: kill -9 the real live daemon again and again while it trades against the simulator.

    .venv/bin/python -m bench.soak_crash [--cycles 100] [--max-secs S] [--executor ray] [--seed 1]
                                         [--workdir DIR]

Each cycle starts `AI_QUANT_MODE=live python -m engine.daemon` (gates open, the whole stack: risk
check, gates, account-event pump, sidecar, Ray executor by default) on the same state dir and
wallet, and kills its whole session -9 at a point chosen from the venue's own counters:

* `orders`: after the simulator's count of accepted orders for the wallet (its loopback admin
  listing `/admin/orders`) moved by 1..2, plus a random 0..0.3 s;
* `posts`: after its `/exchange` POST count moved by 1..3 (an `updateLeverage` or an order);
* `lost_ack`: with every answer dropped (the order executes, the reply is lost), once one was lost;
* `reconcile`: at a random delay after the daemon logged that it is reconciling at start-up. The
  venue answers every REST call `RECONCILE_REST_DELAY_SECS` late in these cycles (a slow venue),
  which stretches the reconcile from a few ms to a window a kill can aim at; the delay is drawn
  below the slow reconciles measured so far (cycles whose kill came too late), and whether each
  kill landed inside the reconcile (no verdict line before it) is reported.

A last daemon then starts, must come back with a clean start-up reconcile, trade a few ticks and
stop on SIGTERM with a clean shutdown reconcile; `engine.tools.crash_audit` then compares the
ledger with the venue (one intent per decision for every action, at most one accepted venue order
per decision, no venue order without an intent, ledger states agree with the venue, fills and
positions equal) and reports the intents that never reached the venue. The no-kill baseline runs
the same steps, one daemon on a fresh simulator with the same seed trading until the venue has
accepted as many orders as in the soak (or `--baseline-max-secs`), and is audited the same way.
`--max-secs` stops starting new cycles after that much wall time (the JSON says how many ran).
Prints one JSON object; exits 1 when a run has a violation, or a daemon died by itself before its
kill point (its last log line is reported), or a kill point never came, or orphans were left.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from statistics import median
from typing import Any

import psutil

from bench.support import REPO_ROOT, SimulatorProcess, start_simulator
from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE
from engine.tools.crash_audit import CrashAudit, VenueOrder, audit_ledger

# 5m candles, one every 0.25 s of wall time, enough history for the sidecar's backfill (as the live e2e).
SIM_ARGS = ["--speed", "1200", "--history-bars", "300", "--rate-limit-per-min", "0"]
# Entries as frequent as the strategy allows: low confidence, no cooldowns, filters off.
CRASH_YAML = """
global:
  engine: {interval: 5m}
  trade:
    entry_min_confidence: low
    entry_cooldown_s: 0
    exit_cooldown_s: 0
    reentry_cooldown_minutes: 0
    enable_ssf_filter: false
    enable_reef_filter: false
  filters:
    enable_ranging_filter: false
    enable_anomaly_filter: false
    enable_extension_filter: false
    require_adx_rising: false
    use_stoch_rsi_filter: false
    require_btc_alignment: false
  thresholds:
    entry: {min_adx: 5}
"""
RECONCILING = "start-up reconcile: reconciling with the venue"
STARTUP_VERDICT = re.compile(r"start-up reconcile verdict=(\w+)")
STAMP = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3})Z ")
KILL_POINT_TIMEOUT_SECS = 120.0  # Ray's start-up on a loaded 2-core box; a cycle past it is killed anyway
DEFAULT_RECONCILE_SECS = 0.3  # the kill window until a slow start-up reconcile has been measured
RECONCILE_REST_DELAY_SECS = 0.1
PHASE_WEIGHTS = {"orders": 0.35, "posts": 0.2, "lost_ack": 0.2, "reconcile": 0.25}


class Phase(StrEnum):
    ORDERS = "orders"
    POSTS = "posts"
    LOST_ACK = "lost_ack"
    RECONCILE = "reconcile"


def write_wallet(directory: Path) -> tuple[str, Path]:
    """A fresh key in a 0600 secrets file; returns (address, path). The key is never printed."""
    from eth_account import Account

    account = Account.create()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "secrets.json"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump({"secret_key": account.key.hex(), "main_address": account.address}, out)
    return account.address, path


def daemon_env(workdir: Path, sim: SimulatorProcess, secrets: Path, executor: str) -> dict[str, str]:
    """The live daemon's environment: gates open, our state dir, the crash strategy, no web port."""
    yaml_path = workdir / "crash-strategy.yaml"
    yaml_path.write_text(CRASH_YAML)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AI_QUANT_", "HL_", "RAY_ADDRESS"))}
    env.pop("RAY_TMPDIR", None)
    env.update(
        AI_QUANT_MODE="live", AI_QUANT_HL_BASE_URL=sim.base_url, AI_QUANT_SECRETS_PATH=str(secrets),
        AI_QUANT_STATE_DIR=str(workdir / "state"), AI_QUANT_STRATEGY_YAML=str(yaml_path),
        AI_QUANT_INTERVAL="5m", AI_QUANT_TOP_N="4", AI_QUANT_LOOP_TARGET_SECS="0.5",
        AI_QUANT_EXECUTOR=executor, AI_QUANT_SHARDS="1", AI_QUANT_ALERT_TARGETS="discord:#alerts",
        AI_QUANT_ALERT_DRY_RUN="1", AI_QUANT_OMS_NOT_FOUND_GRACE_MS="1000", AI_QUANT_OMS_RECONCILE_SECS="30",
        AI_QUANT_WEB_PORT="0",  # a free port: soaks and tests running side by side never share 8765
        PYTHONUNBUFFERED="1", **{ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE},
        # No venue-side stops: the simulator's market keeps moving after the last daemon stops, and a
        # resting stop that fires then is a venue fill no ledger can have seen when the audit reads
        # both (tests/e2e/test_daemon_live_protect.py covers kill -9 with protected positions).
        AI_QUANT_PROTECT="0",
    )  # fmt: skip
    return env


class DaemonRun:
    """One `python -m engine.daemon` in its own session, output to a file."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "engine.daemon"], cwd=REPO_ROOT, env=env, stdout=out,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip

    def text(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait_until(self, ready: Callable[[], bool], timeout_secs: float, poll_secs: float = 0.02) -> bool:
        """Poll `ready` tightly; False on timeout or when the daemon exited first."""
        deadline = time.monotonic() + timeout_secs
        while not ready():
            if not self.alive() or time.monotonic() > deadline:
                return False
            time.sleep(poll_secs)
        return True

    def kill9(self) -> int:
        """SIGKILL the whole session at once (a host crash), then wait until every descendant is
        gone (Ray's agents are the reaper's job); return how many we had to kill ourselves."""
        try:
            family = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            family = []
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.proc.wait(timeout=30)
        return reap(family)

    def terminate(self, timeout_secs: float = 120.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_secs)
        except subprocess.TimeoutExpired:
            self.kill9()
            return -9


def reap(family: list[psutil.Process], grace_secs: float = 45.0) -> int:
    """Wait for processes the daemon started; SIGKILL those still alive after the grace."""
    _gone, alive = psutil.wait_procs(family, timeout=grace_secs)
    for proc in alive:
        try:
            proc.kill()
        except psutil.NoSuchProcess:
            pass
    return len(alive)


def accepted_orders(sim: SimulatorProcess, user: str) -> int:
    """The venue's count of orders it accepted for `user` (trigger orders aside)."""
    orders = (VenueOrder.from_admin(row) for row in sim.orders(user))
    return sum(o.accepted and not o.is_trigger for o in orders)


def reconcile_secs(text: str) -> list[float]:
    """Start-up reconcile durations in one daemon log (marker line to verdict line)."""
    started: float | None = None
    found: list[float] = []
    for line in text.splitlines():
        stamp = STAMP.match(line)
        if stamp is None:
            continue
        text_stamp = stamp.group(1)
        when = time.mktime(time.strptime(text_stamp[:19], "%Y-%m-%dT%H:%M:%S")) + float(text_stamp[19:])
        if RECONCILING in line:
            started = when
        elif started is not None and STARTUP_VERDICT.search(line):
            found.append(when - started)
            started = None
    return found


@dataclass
class SoakStats:
    kills: Counter[str] = field(default_factory=Counter)
    reconcile_kills_landed: int = 0
    timeouts: int = 0
    exited_early: int = 0
    early_exit_reasons: Counter[str] = field(default_factory=Counter)  # the daemon's last log line
    orphans_killed: int = 0
    startup_verdicts: Counter[str] = field(default_factory=Counter)
    reconcile_secs: list[float] = field(default_factory=list)
    slow_reconcile_secs: list[float] = field(default_factory=list)  # with the REST delay on
    ray_attached: int = 0

    @property
    def healthy(self) -> bool:
        """No daemon died by itself, every kill point came, nothing was left running."""
        return not (self.exited_early or self.timeouts or self.orphans_killed)


class Soak:
    """The kill cycles against one simulator and one state dir."""

    def __init__(self, sim: SimulatorProcess, workdir: Path, executor: str, rng: random.Random) -> None:
        self.sim, self.workdir, self.rng = sim, workdir, rng
        self.user, secrets = write_wallet(workdir)
        self.env = daemon_env(workdir, sim, secrets, executor)
        self.db = workdir / "state" / "trading_live.db"
        self.stats = SoakStats()
        self.lost_acks = 0
        self._runs: list[DaemonRun] = []

    def start(self, name: str) -> DaemonRun:
        run = DaemonRun(self.env, self.workdir / f"daemon-{len(self._runs) + 1:03d}-{name}.log")
        self._runs.append(run)
        return run

    def close(self) -> None:
        """Never leave a daemon behind, whatever went wrong (an error between start and kill)."""
        for run in self._runs:
            if run.alive():
                run.kill9()

    def cycle(self) -> None:
        phase = Phase(self.rng.choices(list(PHASE_WEIGHTS), weights=list(PHASE_WEIGHTS.values()))[0])
        self.sim.set_faults(reset=True)
        ready, delay = self._kill_point(phase)
        daemon = self.start(str(phase))
        poll = 0.002 if phase is Phase.RECONCILE else 0.02
        if daemon.wait_until(lambda: ready(daemon), KILL_POINT_TIMEOUT_SECS, poll):
            time.sleep(delay())
        elif daemon.alive():
            self.stats.timeouts += 1
        else:
            self.stats.exited_early += 1
            last = (daemon.text().strip().splitlines() or ["(no output)"])[-1]
            self.stats.early_exit_reasons[f"exit {daemon.proc.returncode}: {last[-160:]}"] += 1
        self.stats.kills[str(phase)] += daemon.alive()
        self.stats.orphans_killed += daemon.kill9()
        self.lost_acks = int(self.sim.state().get("lost_acks", 0))
        self.sim.set_faults(reset=True)
        self._observe(daemon.text(), phase)

    def _kill_point(self, phase: Phase) -> tuple[Callable[[DaemonRun], bool], Callable[[], float]]:
        """(ready, delay): when the kill point is reached, and the random wait after it."""
        short = lambda: self.rng.choice([0.0, self.rng.uniform(0.0, 0.3)])  # noqa: E731
        if phase is Phase.ORDERS:
            target = accepted_orders(self.sim, self.user) + self.rng.randint(1, 2)
            return lambda _d: accepted_orders(self.sim, self.user) >= target, short
        state = self.sim.state()
        if phase is Phase.POSTS:
            posts = state["exchange_posts"] + self.rng.randint(1, 3)
            return lambda _d: self.sim.state()["exchange_posts"] >= posts, short
        if phase is Phase.LOST_ACK:
            lost = state["lost_acks"]
            self.sim.set_faults(lost_ack_rate=1.0)
            return lambda _d: self.sim.state()["lost_acks"] > lost, short
        self.sim.set_faults(rest_delay_rate=1.0, rest_delay_secs=RECONCILE_REST_DELAY_SECS)
        slow = self.stats.slow_reconcile_secs
        window = min(slow) if slow else DEFAULT_RECONCILE_SECS
        return lambda d: RECONCILING in d.text(), lambda: self.rng.uniform(0.0, 0.8 * window)

    def _observe(self, text: str, phase: Phase) -> None:
        verdicts = STARTUP_VERDICT.findall(text)
        self.stats.startup_verdicts.update(verdicts)
        measured = reconcile_secs(text)
        slow = phase is Phase.RECONCILE
        (self.stats.slow_reconcile_secs if slow else self.stats.reconcile_secs).extend(measured)
        self.stats.ray_attached += "attached to Ray cluster" in text
        if phase is Phase.RECONCILE and RECONCILING in text and not verdicts:
            self.stats.reconcile_kills_landed += 1

    def finish(self, ticks: int = 3) -> dict[str, Any]:
        """The last daemon: clean start-up reconcile, `ticks` ticks, SIGTERM, clean shutdown."""
        daemon = self.start("final")
        came_up = daemon.wait_until(
            lambda: STARTUP_VERDICT.search(daemon.text()) is not None, KILL_POINT_TIMEOUT_SECS, 0.2
        )
        ticked = came_up and daemon.wait_until(lambda: f" tick={ticks} " in daemon.text(), 120.0, 0.2)
        code = daemon.terminate() if daemon.alive() else daemon.proc.returncode
        text = daemon.text()
        startup = STARTUP_VERDICT.search(text)
        return {
            "startup_verdict": startup.group(1) if startup else None, "ticked": ticked, "exit_code": code,
            "shutdown_clean": "shutdown reconcile verdict=clean" in text,
        }  # fmt: skip


def final_ok(final: dict[str, Any]) -> bool:
    return final["startup_verdict"] == "clean" and final["ticked"] and final["exit_code"] == 0 and bool(
        final["shutdown_clean"]
    )


def _open(workdir: Path, executor: str, seed: int) -> tuple[SimulatorProcess, Soak]:
    sim = start_simulator([*SIM_ARGS, "--seed", str(seed)], workdir / "sim")
    try:
        return sim, Soak(sim, workdir, executor, random.Random(seed))
    except BaseException:
        sim.stop()
        raise


def run_soak(workdir: Path, *, cycles: int, executor: str, seed: int, max_secs: float) -> dict[str, Any]:
    started = time.monotonic()
    done = 0
    sim, soak = _open(workdir, executor, seed)
    try:
        while done < cycles and time.monotonic() - started < max_secs:
            soak.cycle()
            done += 1
        final = soak.finish()
        result = audit_ledger(soak.db, sim, soak.user)
    finally:
        soak.close()
        sim.stop()
    elapsed = time.monotonic() - started
    stats = soak.stats
    return {
        "cycles": done, "cycles_asked": cycles, "executor": executor, "seed": seed,
        "kills_by_phase": dict(sorted(stats.kills.items())), "kills": sum(stats.kills.values()),
        "reconcile_kills_landed": stats.reconcile_kills_landed, "kill_point_timeouts": stats.timeouts,
        "exited_before_kill": stats.exited_early, "early_exit_reasons": dict(stats.early_exit_reasons),
        "orphans_killed": stats.orphans_killed,
        "ray_attached_runs": stats.ray_attached, "lost_acks": soak.lost_acks,
        "startup_verdicts": dict(sorted(stats.startup_verdicts.items())),
        "startup_reconcile_secs_median": _median(stats.reconcile_secs),
        "slow_startup_reconcile_secs_median": _median(stats.slow_reconcile_secs),
        "final": final, "audit": result.as_dict(),
        "ok": result.ok and final_ok(final) and stats.healthy,
        "wall_secs": round(elapsed, 1), "secs_per_cycle": round(elapsed / max(done, 1), 2),
    }  # fmt: skip


def _median(values: list[float]) -> float | None:
    return round(median(values), 3) if values else None


def run_baseline(workdir: Path, *, steps: int, executor: str, seed: int, max_secs: float) -> dict[str, Any]:
    """The same steps without kills: one daemon until the venue accepted `steps` orders."""
    started = time.monotonic()
    sim, soak = _open(workdir, executor, seed)
    try:
        daemon = soak.start("baseline")
        daemon.wait_until(lambda: accepted_orders(sim, soak.user) >= steps, max_secs, 0.2)
        code = daemon.terminate() if daemon.alive() else daemon.proc.returncode
        text = daemon.text()
        reached = accepted_orders(sim, soak.user)
        result: CrashAudit = audit_ledger(soak.db, sim, soak.user)
    finally:
        soak.close()
        sim.stop()
    startup = STARTUP_VERDICT.search(text)
    final = {
        "startup_verdict": startup.group(1) if startup else None, "ticked": " tick=" in text,
        "exit_code": code, "shutdown_clean": "shutdown reconcile verdict=clean" in text,
    }  # fmt: skip
    return {
        "steps_target": steps, "steps_reached": reached, "kills": 0, "final": final,
        "audit": result.as_dict(), "ok": result.ok and final_ok(final),
        "wall_secs": round(time.monotonic() - started, 1),
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Run the soak and its no-kill baseline; exit 1 if either has a violation."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=100, help="kill -9 cycles (default 100)")
    parser.add_argument("--max-secs", type=float, default=float("inf"), help="no new cycle after this")
    parser.add_argument("--executor", choices=["ray", "inprocess"], default="ray")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--baseline-max-secs", type=float, default=600.0)
    parser.add_argument("--workdir", type=Path, help="keep logs, ledgers and simulator output here")
    args = parser.parse_args(argv)
    if args.cycles < 1:
        parser.error("--cycles must be >= 1")
    with tempfile.TemporaryDirectory(prefix="soak-crash-") as tmp:
        root = args.workdir or Path(tmp)
        soak = run_soak(
            root / "kills", cycles=args.cycles, executor=args.executor, seed=args.seed, max_secs=args.max_secs
        )
        steps = soak["audit"]["venue_accepted"]
        baseline = run_baseline(
            root / "baseline", steps=steps, executor=args.executor, seed=args.seed,
            max_secs=args.baseline_max_secs,
        )  # fmt: skip
    print(json.dumps({"soak": soak, "baseline_no_kills": baseline}, indent=2))
    return 0 if soak["ok"] and baseline["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
