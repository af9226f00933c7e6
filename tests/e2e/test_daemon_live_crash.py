"""kill -9 the real live daemon (`AI_QUANT_MODE=live python -m engine.daemon`) at random points
while it trades against the simulator, restart it on the same state dir each time, with lost
acks injected in some cycles (issue 6 acceptance 3).

After the last restart and a clean SIGTERM: no intent reached the venue as two orders, every
venue fill is in the ledger exactly once, nothing is left in flight, and ledger positions equal
the venue's `clearinghouseState`. The kill points are drawn from a seeded RNG (printed) so a
failure can be replayed.
"""

from __future__ import annotations

import os
import random
import re
import signal
import time
from collections.abc import Callable
from pathlib import Path

from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.states import OrderState
from tests.e2e import test_daemon_live as live_e2e
from tests.e2e.test_daemon_live import assert_ledger_equals_venue, assert_secret_nowhere, start_daemon
from tests.e2e.test_daemon_paper import Daemon
from tests.fixtures.sim_fixtures import SimulatorProcess

# The same fixtures as the live e2e tests: a loopback simulator, a fresh 0600 wallet, daemon cleanup.
sim = live_e2e.sim
wallet = live_e2e.wallet
daemons = live_e2e.daemons

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
CYCLES = 5
LOST_ACK_CYCLES = {1, 3}
GATES = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}
SETTLED = {
    OrderState.FILLED, OrderState.CANCELLED, OrderState.REJECTED, OrderState.NOT_SENT,
    OrderState.DENIED, OrderState.ABANDONED,
}  # fmt: skip


def _start(started: list[Daemon], tmp: Path, venue: SimulatorProcess, secrets: Path, name: str) -> Daemon:
    yaml_path = tmp / "crash-strategy.yaml"
    yaml_path.write_text(CRASH_YAML)
    return start_daemon(
        started, tmp, venue, secrets, "live", name=name, AI_QUANT_STRATEGY_YAML=str(yaml_path),
        AI_QUANT_OMS_NOT_FOUND_GRACE_MS="1000", AI_QUANT_OMS_RECONCILE_SECS="30", **GATES,
    )  # fmt: skip


def _kill9_after(daemon: Daemon, ready: Callable[[], bool], delay_secs: float, label: str) -> None:
    """Poll `ready` tightly, wait `delay_secs` more (the random kill point), then SIGKILL the
    daemon's whole session at once, as a host crash would."""
    deadline = time.monotonic() + 40
    while not ready():
        if daemon.proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"daemon exited or timed out waiting for {label}:\n{daemon.tail()}")
        time.sleep(0.02)
    time.sleep(delay_secs)
    try:
        os.killpg(daemon.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    daemon.proc.wait(timeout=10)


def _assert_one_venue_order_per_intent(db: Path, venue: SimulatorProcess, user: str) -> None:
    fills = venue.info({"type": "userFills", "user": user}).json()
    oids_by_cloid: dict[str, set[int]] = {}
    for fill in fills:
        assert fill.get("cloid"), fill  # every venue fill belongs to one of the daemon's signed orders
        oids_by_cloid.setdefault(fill["cloid"].lower(), set()).add(fill["oid"])
    assert all(len(oids) == 1 for oids in oids_by_cloid.values()), oids_by_cloid
    oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
    try:
        orders = oms.orders()
    finally:
        oms.close()
    by_cloid = {o.cloid.lower(): o for o in orders}
    assert len(by_cloid) == len(orders)  # one cloid per intent
    assert set(oids_by_cloid) <= set(by_cloid)
    for cloid, (oid,) in oids_by_cloid.items():
        assert by_cloid[cloid].oid == oid, (cloid, by_cloid[cloid], oid)
    # Nothing left in flight, and the ledger agrees with the venue's status of every cloid: an
    # order the venue filled is FILLED under the venue's oid; one the venue knows (e.g. an IOC it
    # could not match) was never recorded as unsent, denied or abandoned.
    assert {o.state for o in orders} <= SETTLED, sorted({o.state for o in orders})
    for order in orders:
        status = venue.info({"type": "orderStatus", "user": user, "oid": order.cloid}).json()
        if status.get("status") != "order":
            continue
        assert order.state not in (OrderState.NOT_SENT, OrderState.ABANDONED, OrderState.DENIED), order
        if status["order"]["status"] == "filled":
            assert (order.state, order.oid) == (OrderState.FILLED, status["order"]["order"]["oid"]), order


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
        before = sim.state()
        if cycle in LOST_ACK_CYCLES:
            # Every order is executed but its answer dropped; kill while it is still in flight.
            sim.set_faults(lost_ack_rate=1.0)
            ready = lambda n=before["lost_acks"]: sim.state()["lost_acks"] > n  # noqa: E731
        else:
            # Kill anywhere after the 1st..3rd /exchange POST (leverage or order) of this run.
            target = before["exchange_posts"] + rng.randint(1, 3)
            ready = lambda t=target: sim.state()["exchange_posts"] >= t  # noqa: E731
        daemon = _start(daemons, tmp_path, sim, secrets, f"crash{cycle}")
        restarts.append(daemon)
        _kill9_after(daemon, ready, rng.choice([0.0, rng.uniform(0.0, 0.3)]), f"cycle {cycle} kill point")
    sim.set_faults(reset=True)

    final = _start(daemons, tmp_path, sim, secrets, "final")
    restarts.append(final)
    final.wait_log(r"start-up reconcile verdict=clean ", timeout=40)
    final.wait_log(r"tick=2 ", timeout=30)
    assert final.terminate() == 0
    assert "shutdown reconcile verdict=clean" in final.text()
    venue_fills, _positions = assert_ledger_equals_venue(db, sim, user)
    assert venue_fills  # the crashes interrupted real trading, not an idle daemon
    _assert_one_venue_order_per_intent(db, sim, user)
    # The lost-ack cycles really sent orders whose answer never came back; the venue executed
    # each of them once and the checks above found them settled once in the ledger.
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
