"""Issue 13 acceptance: a dead daemon leaves every position protected on the venue.

The live daemon (`AI_QUANT_MODE=live python -m engine.daemon`) trades against the simulator
until it holds a position with its protective stop resting on the venue; then it is killed with
SIGKILL (its whole session, the sidecar too). The simulator moves the price through the stop
(`/admin/shock`) and the venue's trigger order closes the position while nothing of ours runs.
After a restart on the same state dir the start-up reconcile is clean and records the stop's
fill, and after a SIGTERM the ledger equals the venue (every fill once, positions, trades table).

The stop is 20 ATR away and trailing is off, so only the shock reaches it and no other stop
fires on its own between the daemon's last reconcile and the comparison. The simulator accepts
`scheduleCancel` here (the fixture's volume gate is 0), with a 6 s window: the daemon arms it
while flat and must clear it once it holds a position; a switch left armed would cancel the stop
before the shock (the simulator's cancel-all takes trigger orders too), so the stop must still
rest then.
"""

from __future__ import annotations

import os
import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.enums import ProtectionKind
from engine.execution.gates import ENV_LIVE_CONFIRM, ENV_LIVE_ENABLE, LIVE_CONFIRM_PHRASE
from engine.execution.protection import PROTECT_ACTION
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.states import OrderState
from tests.e2e import test_daemon_live as live_e2e
from tests.e2e.test_daemon_live import assert_ledger_equals_venue, start_daemon, venue_positions
from tests.e2e.test_daemon_paper import Daemon, db_rows
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator

sim = live_e2e.sim
wallet = live_e2e.wallet
daemons = live_e2e.daemons

PROTECT_YAML = """
global:
  engine: {interval: 5m}
  trade:
    entry_min_confidence: low
    entry_cooldown_s: 0
    exit_cooldown_s: 0
    reentry_cooldown_minutes: 0
    enable_ssf_filter: false
    enable_reef_filter: false
    sl_atr_mult: 20.0
    trailing_start_atr: 1000.0
    enable_breakeven_stop: false
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
GATES = {ENV_LIVE_ENABLE: "1", ENV_LIVE_CONFIRM: LIVE_CONFIRM_PHRASE}
SWITCH_SECS = 6


def _start(started: list[Daemon], tmp: Path, venue: SimulatorProcess, secrets: Path, name: str) -> Daemon:
    yaml_path = tmp / "protect-strategy.yaml"
    yaml_path.write_text(PROTECT_YAML)
    return start_daemon(
        started, tmp, venue, secrets, "live", name=name, AI_QUANT_STRATEGY_YAML=str(yaml_path),
        AI_QUANT_SCHEDULE_CANCEL_SECS=str(SWITCH_SECS), AI_QUANT_OMS_NOT_FOUND_GRACE_MS="1000", **GATES,
    )  # fmt: skip


def _stops(venue: SimulatorProcess, user: str) -> dict[str, dict]:
    """The venue's resting stop-loss triggers of `user` by coin."""
    orders = venue.info({"type": "frontendOpenOrders", "user": user}).json()
    return {o["coin"]: o for o in orders if o["isTrigger"] and o["orderType"].startswith("Stop")}


def _protected_coins(venue: SimulatorProcess, user: str) -> list[str]:
    """Coins whose whole venue position is covered by a resting reduce-only stop on the closing side."""
    positions, stops = venue_positions(venue, user), _stops(venue, user)
    return sorted(
        coin for coin, szi in positions.items()
        if coin in stops and stops[coin]["reduceOnly"] and float(stops[coin]["sz"]) == pytest.approx(abs(szi))
        and (stops[coin]["side"] == "A") == (szi > 0)
    )  # fmt: skip


def _switch_cleared(daemon: Daemon) -> bool:
    """The daemon's last word on the dead man's switch is that it cleared it (it armed it while flat)."""
    said = re.findall(r"scheduleCancel (arm|clear)", daemon.text())
    return bool(said) and said[-1] == "clear"


def _kill9(daemon: Daemon) -> None:
    try:
        os.killpg(daemon.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    daemon.proc.wait(timeout=10)


def _wait_wall(until: float) -> None:
    while time.time() < until:  # the dead man's switch would have fired by then
        time.sleep(0.2)


def _hold_protected_and_kill(started: list[Daemon], tmp: Path, venue: SimulatorProcess, secrets: Path,
                             user: str) -> tuple[str, dict, int]:  # fmt: skip
    """Run the daemon until every venue position is protected, kill -9 it; retry if the position
    it held was gone by the kill. Return (coin, its stop, how many daemons ran)."""
    for attempt in range(3):
        daemon = _start(started, tmp, venue, secrets, f"run{attempt}")
        daemon.wait_log(r"start-up reconcile verdict=clean", timeout=60)
        daemon.wait_for(
            lambda d=daemon: (held := venue_positions(venue, user))
            and _protected_coins(venue, user) == sorted(held) and _switch_cleared(d),
            timeout=90, label="a venue position with its stop resting, the switch cleared",
        )  # fmt: skip
        _kill9(daemon)
        protected = _protected_coins(venue, user)
        if protected:
            return protected[0], _stops(venue, user)[protected[0]], attempt + 1
    raise AssertionError("never killed the daemon while it held a protected position")


def test_dead_daemon_position_closed_by_the_venue_stop_and_restart_reconciles_clean(
    tmp_path, sim, wallet, daemons
):
    user, _key_hex, secrets = wallet
    db = tmp_path / "state" / "trading_live.db"
    coin, stop, runs = _hold_protected_and_kill(daemons, tmp_path, sim, secrets, user)
    killed_at = time.time()
    szi = venue_positions(sim, user)[coin]
    _wait_wall(killed_at + SWITCH_SECS + 2)
    assert coin in _stops(sim, user), "the stop was cancelled while the daemon was dead"

    # Move the price 5 % beyond the stop: the venue's trigger fires and closes the position.
    mid = float(sim.info({"type": "allMids"}).json()[coin])
    trigger = float(stop["triggerPx"])
    pct = (trigger / mid - 1.0) * 100.0 + (-5.0 if szi > 0 else 5.0)
    sim.shock(coin, pct)
    deadline = time.monotonic() + 30
    while coin in venue_positions(sim, user):
        assert time.monotonic() < deadline, "the venue's stop did not close the position"
        time.sleep(0.1)
    status = sim.info({"type": "orderStatus", "user": user, "oid": stop["cloid"]}).json()
    assert status["order"]["status"] == "filled"

    # Restart: the reconcile finds the stop's fill (made while nothing of ours ran) and is clean.
    again = _start(daemons, tmp_path, sim, secrets, "restart")
    match = again.wait_log(r"start-up reconcile verdict=clean fills=(\d+) ", timeout=60)
    assert int(match.group(1)) >= 1
    again.wait_log(r"tick=2 ", timeout=60)
    assert again.terminate() == 0
    assert "shutdown reconcile verdict=clean" in again.text()
    assert_ledger_equals_venue(db, sim, user)

    oms = LiveOms(db, mode="live", config=OmsConfig(synchronous_full=False))
    try:
        intent = oms.intent_by_cloid(stop["cloid"])
        assert intent is not None and intent.action == PROTECT_ACTION
        assert intent.reason == ProtectionKind.STOP_LOSS
        order = oms.order(intent.intent_id)
        assert order is not None and order.state is OrderState.FILLED and order.oid == stop["oid"]
    finally:
        oms.close()
    rows = db_rows(db, "SELECT kind, reason FROM trades WHERE symbol=? AND reason=?",
                   (coin, ProtectionKind.STOP_LOSS.value))  # fmt: skip
    assert rows and {kind for kind, _ in rows} <= {"CLOSE", "REDUCE"}
    # Nothing of ours was ever cancelled by the dead man's switch.
    assert all(o.get("status") != "scheduledCancel" for o in sim.orders(user))
    print(f"daemon runs before the kill={runs} coin={coin} szi={szi} trigger={trigger} shock={pct:.2f}%")


@pytest.fixture
def strict_sim(tmp_path: Path) -> Iterator[SimulatorProcess]:
    """The venue's own scheduleCancel rule: refused below $1,000,000 of traded volume."""
    process = start_simulator([*live_e2e.SIM_ARGS, "--fund-any", "10000"], tmp_path / "strict-sim")
    try:
        yield process
    finally:
        process.stop()


def test_schedule_cancel_refused_below_the_volume_gate_is_alerted_once_and_stops_still_rest(
    tmp_path, strict_sim, wallet, daemons
):
    user, _key_hex, secrets = wallet
    daemon = _start(daemons, tmp_path, strict_sim, secrets, "strict")
    daemon.wait_log(r"start-up reconcile verdict=clean", timeout=60)
    daemon.wait_for(
        lambda: (held := venue_positions(strict_sim, user))
        and _protected_coins(strict_sim, user) == sorted(held),
        timeout=90, label="a venue position with its stop resting",
    )  # fmt: skip
    ticks = len(re.findall(r" tick=\d+ ", daemon.text()))
    daemon.wait_for(lambda: len(re.findall(r" tick=\d+ ", daemon.text())) >= ticks + 10, timeout=60,
                    label="ten more loop iterations")  # fmt: skip
    assert daemon.terminate() == 0
    alerts = re.findall(r"alert dry-run .* text=\[live\] risk: scheduleCancel refused", daemon.text())
    assert len(alerts) == 1, alerts
    posts = [o for o in strict_sim.orders(user) if o.get("isTrigger")]
    assert posts and all(o["status"] != "scheduledCancel" for o in posts)
