"""kill -9 the real live daemon (`AI_QUANT_MODE=live python -m engine.daemon`) at random points
while it trades against the simulator, restart it on the same state dir each time, with lost
acks injected in some cycles (issue 6 acceptance 3), one kill inside the start-up reconcile that
is settling a lost-ack order, and the Ray executor in the first and the last daemon (issue 13).

Kill points come from the venue's own counters: its accepted-order count for the wallet (the
simulator's loopback `/admin/orders`), its lost acks, the daemon's "reconciling" log line. After
the last restart and a clean SIGTERM, `engine.tools.crash_audit` compares the ledger with the
venue's order list: one intent per (symbol, decision candle, action) for every action, at most
one *accepted* venue order per decision, no venue order without an intent, the ledger's states
agree with the venue's (nothing unsent that the venue knows, nothing acknowledged it does not,
nothing in flight), every venue fill in the ledger exactly once, positions equal; the intents
that never reached the venue are printed by ledger state. The kill points are drawn from a seeded
RNG (printed) so a failure can be replayed.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

import psutil

from bench.soak_crash import CRASH_YAML, RECONCILING, STARTUP_VERDICT, accepted_orders
from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE
from engine.tools.crash_audit import audit_ledger
from tests.e2e import test_daemon_live as live_e2e
from tests.e2e.test_daemon_live import assert_ledger_equals_venue, assert_secret_nowhere, start_daemon
from tests.e2e.test_daemon_paper import Daemon
from tests.fixtures.sim_fixtures import SimulatorProcess

# The same fixtures as the live e2e tests: a loopback simulator, a fresh 0600 wallet, daemon cleanup.
sim = live_e2e.sim
wallet = live_e2e.wallet
daemons = live_e2e.daemons

CYCLES = 6
LOST_ACK_CYCLES = {1, 3}
RECONCILE_CYCLE = 4  # right after a lost-ack kill: the reconcile has an in-flight order to settle
RAY_CYCLES = {0, CYCLES}  # the first killed daemon and the final one run the Ray executor
# AI_QUANT_PROTECT=0: a venue stop resting after the last daemon stops can fire before the audit
# reads the venue (its market keeps moving); test_daemon_live_protect covers kill -9 with stops.
GATES = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE, "AI_QUANT_PROTECT": "0"}
SLOW_VENUE_SECS = 0.1  # every REST answer this late in the reconcile cycle: a window to kill in


def _start(
    started: list[Daemon], tmp: Path, venue: SimulatorProcess, secrets: Path, name: str, executor: str
) -> Daemon:
    yaml_path = tmp / "crash-strategy.yaml"
    yaml_path.write_text(CRASH_YAML)
    return start_daemon(
        started, tmp, venue, secrets, "live", name=name, AI_QUANT_STRATEGY_YAML=str(yaml_path),
        AI_QUANT_OMS_NOT_FOUND_GRACE_MS="1000", AI_QUANT_OMS_RECONCILE_SECS="30", AI_QUANT_EXECUTOR=executor,
        **GATES,
    )  # fmt: skip


def _kill9_after(daemon: Daemon, ready: Callable[[], bool], delay_secs: float, label: str) -> None:
    """Poll `ready` tightly, wait `delay_secs` more (the random kill point), then SIGKILL the
    daemon's whole session at once, as a host crash would; wait until everything it started is
    gone (Ray's agents through the daemon's orphan reaper)."""
    deadline = time.monotonic() + 90
    while not ready():
        if daemon.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"daemon exited or timed out waiting for {label}:\n{daemon.tail()}")
        time.sleep(0.002)
    time.sleep(delay_secs)
    family = daemon.descendants()
    try:
        os.killpg(daemon.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    daemon.proc.wait(timeout=10)
    _gone, alive = psutil.wait_procs(family, timeout=60)
    assert not alive, f"{label}: orphans after kill -9: {[(p.pid, p.name()) for p in alive]}"


def _kill_point(cycle: int, venue: SimulatorProcess, user: str, rng: random.Random) -> tuple[Callable, float]:
    """(ready, delay) for one cycle, from the venue's counters or the daemon's reconcile line."""
    if cycle in LOST_ACK_CYCLES:
        # Every order is executed but its answer dropped; kill while it is still in flight.
        venue.set_faults(lost_ack_rate=1.0)
        lost = venue.state()["lost_acks"]
        return lambda: venue.state()["lost_acks"] > lost, rng.choice([0.0, rng.uniform(0.0, 0.3)])
    # Kill after the venue accepted 1..2 more orders of the wallet (or once it is reconciling).
    target = accepted_orders(venue, user) + rng.randint(1, 2)
    return lambda: accepted_orders(venue, user) >= target, rng.choice([0.0, rng.uniform(0.0, 0.3)])


def test_kill9_at_random_points_with_lost_acks_leaves_no_duplicates_and_ledger_equals_venue(
    tmp_path, sim, wallet, daemons
):
    user, key_hex, secrets = wallet
    seed = int(os.environ.get("CRASH_SEED", str(time.time_ns() % 1_000_000)))
    print(f"CRASH_SEED={seed}")
    rng = random.Random(seed)
    db = tmp_path / "state" / "trading_live.db"
    restarts: list[Daemon] = []
    for cycle in range(CYCLES):
        sim.set_faults(reset=True)
        executor = "ray" if cycle in RAY_CYCLES else "inprocess"
        if cycle == RECONCILE_CYCLE:
            sim.set_faults(rest_delay_rate=1.0, rest_delay_secs=SLOW_VENUE_SECS)
            daemon = _start(daemons, tmp_path, sim, secrets, f"crash{cycle}", executor)
            reconciling = lambda d=daemon: RECONCILING in d.text()  # noqa: E731
            _kill9_after(daemon, reconciling, rng.uniform(0.0, 0.08), "reconciling")
        else:
            ready, delay = _kill_point(cycle, sim, user, rng)
            daemon = _start(daemons, tmp_path, sim, secrets, f"crash{cycle}", executor)
            _kill9_after(daemon, ready, delay, f"cycle {cycle} kill point")
        restarts.append(daemon)
    sim.set_faults(reset=True)
    assert "started embedded Ray" in restarts[0].text()
    # The reconcile kill landed inside the reconcile: it began and never reached its verdict.
    assert RECONCILING in restarts[RECONCILE_CYCLE].text()
    assert not STARTUP_VERDICT.search(restarts[RECONCILE_CYCLE].text()), restarts[RECONCILE_CYCLE].tail()

    final = _start(daemons, tmp_path, sim, secrets, "final", "ray")
    restarts.append(final)
    final.wait_log(r"start-up reconcile verdict=clean ", timeout=60)
    final.wait_log(r"engine started mode=live .* executor=ray", timeout=120)
    final.wait_log(r"tick=2 ", timeout=60)
    assert final.terminate() == 0
    assert "shutdown reconcile verdict=clean" in final.text()
    venue_fills, _positions = assert_ledger_equals_venue(db, sim, user)
    assert venue_fills  # the crashes interrupted real trading, not an idle daemon

    result = audit_ledger(db, sim, user)
    print(f"audit: accepted per decision={result.accepted_per_decision} never reached the venue="
          f"{result.never_reached_venue} rejected={result.venue_rejected}")  # fmt: skip
    assert result.violations == [], result.as_dict()
    assert result.venue_accepted > 0 and result.accepted_per_decision.get("1", 0) > 0
    # The lost-ack cycles really sent orders whose answer never came back; the venue executed
    # each of them once and the audit found them settled once in the ledger.
    ambiguous = [
        cloid
        for cycle in LOST_ACK_CYCLES
        for cloid in re.findall(r"cloids=\['(0x[0-9a-f]+)'\] outcome=ambiguous", restarts[cycle].text())
    ]
    assert ambiguous, "no order lost its answer"
    for cloid in ambiguous:
        assert sim.info({"type": "orderStatus", "user": user, "oid": cloid}).json()["status"] == "order"
    settled = [
        re.search(r"start-up reconcile verdict=clean fills=(\d+) settled=(\d+)", d.text()) for d in restarts
    ]
    print(f"lost-ack orders={len(ambiguous)} start-up (fills, settled)={[m and m.groups() for m in settled]}")
    assert assert_secret_nowhere(final, tmp_path / "state", key_hex) > 0
