"""Crash test: a child process trading through the live broker is killed -9 at random points (20
cycles, with lost acks injected); after a final restart and one reconcile there are no duplicate
orders at the simulator, every simulator fill is in the ledger exactly once, positions agree."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from engine.tools.oms_soak import run_crash_cycles, verify
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
