"""Crash soak: kill -9 a trading child 100+ times at random points against the simulator.

    .venv/bin/python -m bench.soak_crash [--cycles 120] [--steps 600] [--lost-ack-rate 0.15] [--seed 1]

Each cycle starts `engine.tools.oms_soak` (the live broker trading a fixed OPEN/CLOSE plan, gates
open, against a loopback simulator with lost acks injected), kills it -9 at a random moment (some
during the start-up reconcile, most while orders are going out), and restarts it. A last child
finishes the plan; then one more restart and reconcile in this process checks: no plan step
reached the venue twice, no venue order without an intent, every venue fill exactly once in the
ledger, positions equal. Prints one JSON object (with the wall time and the per-cycle cost as
the same-run baseline for speed: a run without kills of the same plan).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import tempfile
import time
from pathlib import Path

from bench.support import start_simulator
from engine.tools.oms_soak import run_crash_cycles, verify


def _soak(workdir: Path, cycles: int, steps: int, lost_ack_rate: float, seed: int) -> dict[str, object]:
    sim = start_simulator(
        ["--speed", "0", "--seed", str(seed), "--rate-limit-per-min", "0"], workdir / "logs"
    )
    try:
        sim.set_faults(lost_ack_rate=lost_ack_rate)
        started = time.monotonic()
        key_file, db, killed = run_crash_cycles(
            sim.base_url, workdir / "soak", cycles=cycles, steps=steps, seed=seed
        )
        elapsed = time.monotonic() - started
        lost_acks = sim.state()["lost_acks"]
        sim.set_faults(reset=True)
        result = verify(sim.base_url, key_file, db, cycles=cycles, killed=killed, steps=steps)
        return {
            **dataclasses.asdict(result),
            "ok": result.ok,
            "lost_acks": lost_acks,
            "wall_secs": round(elapsed, 2),
        }
    finally:
        sim.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the soak and its no-kill baseline; exit 1 if either ends with a broken ledger."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=120)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--lost-ack-rate", type=float, default=0.15)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="soak-crash-") as tmp:
        soak = _soak(Path(tmp) / "kills", args.cycles, args.steps, args.lost_ack_rate, args.seed)
        baseline = _soak(Path(tmp) / "baseline", 0, min(args.steps, 60), args.lost_ack_rate, args.seed)
    print(json.dumps({"soak": soak, "baseline_no_kills": baseline}, indent=2))
    return 0 if soak["ok"] and baseline["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
