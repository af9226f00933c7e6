"""Crash test: a child process trading a fixed plan through the live broker is killed -9 at random
points (20 cycles, with lost acks injected); after a final restart and one reconcile there are no
duplicate orders at the simulator, every simulator fill is in the ledger exactly once, positions
agree, and `engine.tools.crash_audit` finds every plan step (one decision each) with one intent and
at most one order the venue *accepted* (its own order list), nothing unsent that the venue knows,
nothing acknowledged that it does not. The real daemon's crash soak is `bench.soak_crash`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.tools.crash_audit import audit_ledger
from engine.tools.oms_soak import run_crash_cycles, verify
from engine.venue.exchange_client import SigningKey
from tests.fixtures.sim_fixtures import SimulatorProcess


def test_kill_9_while_trading_never_duplicates_and_ledger_matches_venue(
    simulator_factory: Callable[..., SimulatorProcess], tmp_path: Path
) -> None:
    sim = simulator_factory("--speed", "0", "--seed", "5", "--rate-limit-per-min", "0")
    sim.set_faults(lost_ack_rate=0.15)
    cycles, steps = 20, 150
    key_file, db, killed = run_crash_cycles(
        sim.base_url, tmp_path / "soak", cycles=cycles, steps=steps, seed=3
    )
    sim.set_faults(reset=True)
    result = verify(sim.base_url, key_file, db, cycles=cycles, killed=killed, steps=steps)
    assert killed >= cycles // 2, result  # most children really died mid-run
    assert result.venue_orders > 0 and sim.state()["lost_acks"] > 0
    assert result.duplicate_steps == [] and result.untracked_orders == 0, result
    assert result.fills_missing == 0 and result.fills_extra == 0, result
    assert result.position_ledger == result.position_venue, result
    assert result.final_verdict == "clean", result

    audit = audit_ledger(db, sim, SigningKey.from_hex(key_file.read_text()).address)
    assert audit.violations == [], audit.as_dict()
    # One intent a step (a CLOSE with nothing to close commits none).
    assert audit.decisions == audit.intents > steps // 2
    assert audit.decision_retries == [] and audit.venue_accepted > 0
    assert set(audit.accepted_per_decision) <= {"0", "1"}, audit.accepted_per_decision
    print(f"never reached the venue: {audit.never_reached_venue} rejected={audit.venue_rejected}")
