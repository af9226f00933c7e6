"""Crash-soak driver: a process that trades a fixed plan through the live broker and can be
killed -9 at any point, plus the parent-side cycle runner and the checks.

The plan is `steps` candles on one coin: even steps OPEN a small long (deduped per candle),
odd steps CLOSE it. The child resumes after the newest step it has an intent for, so a restart
never repeats a step; trading starts only after a clean start-up reconcile. The parent
(`run_crash_cycles`) starts the child, kills it -9 at a random moment, repeats, lets a last child
finish the plan, and `verify` then checks: no step reached the venue twice, no venue order
without an intent, every venue fill exactly once in the ledger, positions equal after one
reconcile.

Child usage (internal): python -m engine.oms_soak --base-url URL --key-file F --db D --steps N
The key file holds the hex secret (mode 0600); it is never printed.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from engine.enums import Mode, RoundDirection
from engine.execution.broker import OrderIntent
from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE
from engine.execution.live_broker import LiveBrokerConfig, VenueBrokerParts, build_venue_broker
from engine.execution.verdicts import ALLOW
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.reconciler import OmsReconciler, ReconcilerConfig, ReconcileReport
from engine.venue.exchange_client import SigningKey, round_size
from engine.venue.info_client import RetryPolicy
from engine.venue.rate_budget import RateBudget
from strategies.enums import EntryKind, ExitReason, PositionSide, TradeAction

NOT_FOUND_GRACE_MS = 1_000
READY_LINE = "ready"


def _oms(db: Path) -> LiveOms:
    return LiveOms(db, mode=str(Mode.LIVE), config=OmsConfig(not_found_grace_ms=NOT_FOUND_GRACE_MS))


def _parts(base_url: str, key: SigningKey, oms: LiveOms) -> VenueBrokerParts:
    return build_venue_broker(
        mode=Mode.LIVE, base_url=base_url, key=key, oms=oms, config=LiveBrokerConfig(user=key.address),
        pre_send_check=lambda *_: ALLOW, budget=RateBudget(100_000), timeout_secs=3.0,
        retry=RetryPolicy(max_attempts=3, backoff_base_secs=0.05, total_deadline_secs=5),
    )  # fmt: skip


def _reconciler(oms: LiveOms, parts: VenueBrokerParts, user: str) -> OmsReconciler:
    return OmsReconciler(
        oms=oms,
        info=parts.info,
        config=ReconcilerConfig(user=user),
        canceller=getattr(parts.broker, "cancel", None),
    )


def reconcile_until_clean(reconciler: OmsReconciler, timeout_secs: float = 15.0) -> ReconcileReport:
    return reconciler.run_until_settled(timeout_secs, poll_secs=0.1)


def child(base_url: str, key_file: Path, db: Path, steps: int, notional_usd: float) -> int:
    """Trade the plan; exit 0 when every step has an intent."""
    key = SigningKey.from_hex(key_file.read_text())
    oms = _oms(db)
    parts = _parts(base_url, key, oms)
    reconciler = _reconciler(oms, parts, key.address)
    parts.broker.refresh()
    report = reconcile_until_clean(reconciler)
    if not report.clean:
        print(f"start-up reconcile not clean: {report.verdict}", file=sys.stderr, flush=True)
        return 3
    print(READY_LINE, flush=True)
    done = {i.event_ms for i in oms.intents()}
    coin = parts.info.meta().universe[0].name
    for step in range(max(done, default=-1) + 1, steps):
        mid = parts.info.all_mids()[coin]
        action = TradeAction.OPEN if step % 2 == 0 else TradeAction.CLOSE
        size = round_size(notional_usd / mid, 4, RoundDirection.UP) if action is TradeAction.OPEN else None
        intent = OrderIntent(
            symbol=coin, action=action, side=PositionSide.LONG, reference_price=mid, event_ms=step,
            reason=EntryKind.STANDARD if action is TradeAction.OPEN else ExitReason.SIGNAL_FLIP,
            size_coins=size, leverage=2.0,
        )  # fmt: skip
        parts.broker.execute(intent, 0)
        if step % 5 == 4:
            reconciler.run()
    reconcile_until_clean(reconciler)
    oms.close()
    return 0


# --- parent side ------------------------------------------------------------------------------


@dataclass
class SoakResult:
    cycles: int
    killed: int
    steps: int
    venue_orders: int
    venue_fills: int
    ledger_fills: int
    duplicate_steps: list[int] = field(default_factory=list)
    untracked_orders: int = 0
    fills_missing: int = 0
    fills_extra: int = 0
    position_venue: float = 0.0
    position_ledger: float = 0.0
    final_verdict: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.duplicate_steps and self.untracked_orders == 0 and self.fills_missing == 0
            and self.fills_extra == 0 and abs(self.position_venue - self.position_ledger) < 1e-9
            and self.final_verdict == "clean"
        )  # fmt: skip


def _spawn(base_url: str, key_file: Path, db: Path, steps: int, log: Path) -> subprocess.Popen[str]:
    env = dict(
        os.environ, **{ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}, PYTHONUNBUFFERED="1"
    )
    with log.open("a") as err:
        return subprocess.Popen(
            [sys.executable, "-m", "engine.oms_soak", "--base-url", base_url, "--key-file", str(key_file),
             "--db", str(db), "--steps", str(steps)],
            stdout=subprocess.PIPE, stderr=err, text=True, env=env,
        )  # fmt: skip


def _wait_ready(proc: subprocess.Popen[str], timeout_secs: float) -> bool:
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout_secs
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.strip() == READY_LINE:
            return True
        if not line and proc.poll() is not None:
            return False
    return False


def run_crash_cycles(
    base_url: str, workdir: Path, *, cycles: int, steps: int, seed: int = 0, max_kill_delay_secs: float = 0.4
) -> tuple[Path, Path, int]:
    """Kill -9 a trading child `cycles` times at random moments, then let one finish.
    Returns (key_file, db, killed)."""
    from eth_account import Account

    rng = random.Random(seed)
    workdir.mkdir(parents=True, exist_ok=True)
    key_file, db, log = workdir / "key.hex", workdir / "oms.db", workdir / "children.log"
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(Account.create().key.hex())
    killed = 0
    for _ in range(cycles):
        proc = _spawn(base_url, key_file, db, steps, log)
        # kill before "ready" sometimes (start-up reconcile), mostly while orders are going out
        if rng.random() < 0.8:
            _wait_ready(proc, 30.0)
        time.sleep(rng.uniform(0.0, max_kill_delay_secs))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            killed += 1
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()
    final = _spawn(base_url, key_file, db, steps, log)
    final.wait(timeout=120)
    if final.stdout is not None:
        final.stdout.close()
    if final.returncode != 0:
        raise RuntimeError(f"final child exited {final.returncode}: {log.read_text()[-2000:]}")
    return key_file, db, killed


def verify(base_url: str, key_file: Path, db: Path, *, cycles: int, killed: int, steps: int) -> SoakResult:
    """Restart once more (in this process), reconcile, and compare the ledger with the venue."""
    import requests

    key = SigningKey.from_hex(key_file.read_text())
    oms = _oms(db)
    parts = _parts(base_url, key, oms)
    try:
        report = reconcile_until_clean(_reconciler(oms, parts, key.address))
        venue_fills = requests.post(
            f"{base_url}/info", json={"type": "userFills", "user": key.address}, timeout=10
        ).json()
        by_cloid = {i.cloid: i for i in oms.intents()}
        step_orders: dict[int, set[int]] = {}
        untracked = 0
        for fill in venue_fills:
            intent = by_cloid.get(fill.get("cloid"))
            if intent is None:
                untracked += 1
                continue
            step_orders.setdefault(intent.event_ms, set()).add(int(fill["oid"]))
        venue_keys = sorted((int(f["tid"]), int(f["oid"])) for f in venue_fills)
        ledger_keys = sorted((int(f.tid or -1), f.oid) for f in oms.fills())
        coin = parts.info.meta().universe[0].name
        state = parts.info.clearinghouse_state(key.address)
        pos = state.position(coin)
        return SoakResult(
            cycles=cycles, killed=killed, steps=steps,
            venue_orders=len({int(f["oid"]) for f in venue_fills}), venue_fills=len(venue_fills),
            ledger_fills=len(ledger_keys),
            duplicate_steps=sorted(k for k, oids in step_orders.items() if len(oids) > 1),
            untracked_orders=untracked,
            fills_missing=len(set(venue_keys) - set(ledger_keys)),
            fills_extra=len(ledger_keys) - len(set(ledger_keys)) + len(set(ledger_keys) - set(venue_keys)),
            position_venue=0.0 if pos is None else pos.szi,
            position_ledger=oms.ledger_positions().get(coin, 0.0),
            final_verdict=str(report.verdict),
        )  # fmt: skip
    finally:
        parts.info.close()
        if parts.transport is not None:
            parts.transport.close()
        oms.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", required=True)
    parser.add_argument("--key-file", type=Path, required=True)
    parser.add_argument("--db", type=Path, required=True)
    parser.add_argument("--steps", type=int, required=True)
    parser.add_argument("--notional-usd", type=float, default=25.0)
    args = parser.parse_args(argv)
    return child(args.base_url, args.key_file, args.db, args.steps, args.notional_usd)


if __name__ == "__main__":
    raise SystemExit(main())
