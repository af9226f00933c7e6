"""LiveBroker + LiveOms through a 429 storm from the simulator (real HTTP, real signatures).

A 429 means the venue did not act on the request, so an order answered 429 must settle as a
definite refusal (never re-sent behind our back, never left in flight), a read answered 429 must
never advance the fill cursor, and once the storm passes the ledger equals the venue: no duplicate
order per intent, every venue fill exactly once.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.enums import ExecutionStatus, Mode
from engine.execution.broker import OrderIntent
from engine.oms.reconciler import FILLS_CURSOR, ReconcileVerdict
from engine.oms.states import OrderState
from strategies.enums import TradeAction
from tests.fixtures.sim_fixtures import SimulatorProcess, start_simulator
from tests.integration.test_live_broker import Rig, _assert_ledger_matches_venue, _rig

SETTLED = {OrderState.FILLED, OrderState.REJECTED, OrderState.NOT_SENT, OrderState.CANCELLED}


@pytest.fixture(scope="module")
def sim_429(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimulatorProcess]:
    sim = start_simulator(
        ["--speed", "0", "--seed", "29", "--rate-limit-per-min", "0"], tmp_path_factory.mktemp("sim-429")
    )
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def rig(sim_429: SimulatorProcess, tmp_path: Path) -> Iterator[Rig]:
    rig = _rig(sim_429, tmp_path, Mode.LIVE)
    yield rig
    sim_429.set_faults(reset=True)
    rig.parts.info.close()
    if rig.parts.transport is not None:
        rig.parts.transport.close()
    rig.oms.close()


def _intents(rig: Rig, actions: list[TradeAction]) -> list[OrderIntent]:
    """Intents built before the storm (building one reads allMids, which a storm would 429)."""
    return [rig.intent(action, candle=candle) for candle, action in enumerate(actions, start=1)]


def _assert_one_venue_order_per_intent(rig: Rig) -> None:
    """No cloid reached the venue twice and no intent has two venue orders."""
    fills = rig.sim_fills()
    oids_by_cloid: dict[str, set[int]] = {}
    for fill in fills:
        assert fill.get("cloid"), fill  # every venue fill belongs to one of our signed orders
        oids_by_cloid.setdefault(fill["cloid"], set()).add(fill["oid"])
    assert all(len(oids) == 1 for oids in oids_by_cloid.values()), oids_by_cloid
    ours = {o.cloid.lower(): o for o in rig.oms.orders()}
    assert set(oids_by_cloid) <= set(ours)
    for cloid, (oid,) in oids_by_cloid.items():
        assert ours[cloid].state is OrderState.FILLED
        assert rig.oms.order(ours[cloid].intent_id).oid in (None, oid)


def test_full_429_storm_refuses_the_order_and_never_executes_it(rig: Rig) -> None:
    open_, add = _intents(rig, [TradeAction.OPEN, TradeAction.ADD])
    assert rig.broker.execute(open_, 0).status is ExecutionStatus.FILLED
    assert rig.reconciler.run().clean
    cursor = rig.oms.cursor(FILLS_CURSOR)
    faulted_before = rig.sim.state()["faulted_errors"]
    rig.sim.set_faults(rest_error_rate=1.0, rest_error_status=429)

    result = rig.broker.execute(add, 0)
    assert result.status is ExecutionStatus.REJECTED, result  # 429 = not acted on: definite, not PENDING
    storm = rig.reconciler.run()
    assert storm.verdict is ReconcileVerdict.UNKNOWN and storm.failures
    assert rig.oms.cursor(FILLS_CURSOR) == cursor  # a 429'd read never advances the cursor
    assert rig.sim.state()["faulted_errors"] > faulted_before

    rig.sim.set_faults(reset=True)
    after = rig.reconciler.run()
    assert after.verdict is ReconcileVerdict.CLEAN, after
    states = [o.state for o in rig.oms.orders()]
    assert set(states) <= SETTLED and states.count(OrderState.FILLED) == 1, states
    assert len(rig.sim_fills()) == 1  # the 429'd ADD never executed and nothing re-sent it
    _assert_one_venue_order_per_intent(rig)
    _assert_ledger_matches_venue(rig)


def test_partial_429_storm_every_order_settles_once_and_cursor_never_skips(rig: Rig) -> None:
    """Half the REST calls answer 429 while orders and reconciles interleave: every intent ends
    either filled once or refused, and the cursor only moves on a read that succeeded."""
    opens, adds, closes = (
        _intents(rig, [a] * 6) for a in (TradeAction.OPEN, TradeAction.ADD, TradeAction.CLOSE)
    )
    rig.sim.set_faults(rest_error_rate=0.5, rest_error_status=429)
    statuses: list[ExecutionStatus] = []
    cursors: list[int | None] = [rig.oms.cursor(FILLS_CURSOR)]
    for candle in range(1, 7):
        holding = rig.oms.ledger_positions().get(rig.coin, 0.0) != 0
        intents = (closes if candle % 3 == 0 else adds) if holding else opens
        result = rig.broker.execute(intents[candle - 1], 0)
        assert result.status in (ExecutionStatus.FILLED, ExecutionStatus.REJECTED), result
        statuses.append(result.status)
        rig.reconciler.run()
        cursors.append(rig.oms.cursor(FILLS_CURSOR))
    assert rig.sim.state()["faulted_errors"] > 0
    assert ExecutionStatus.FILLED in statuses and ExecutionStatus.REJECTED in statuses, statuses
    known = [c for c in cursors if c is not None]
    assert known == sorted(known)  # monotonic
    held = rig.oms.cursor(FILLS_CURSOR)

    rig.sim.set_faults(reset=True)
    after = rig.reconciler.run()
    assert after.verdict is ReconcileVerdict.CLEAN, after
    # The reconcile after the storm reads from the held cursor: any fill the storm made it skip
    # would now be missing from the ledger (checked below) rather than re-read.
    assert held is None or rig.oms.cursor(FILLS_CURSOR) >= held
    orders = rig.oms.orders()
    assert {o.state for o in orders} <= SETTLED, [(o.intent_id, o.state) for o in orders]
    assert sum(o.state is OrderState.FILLED for o in orders) == statuses.count(ExecutionStatus.FILLED)
    assert len({f["oid"] for f in rig.sim_fills()}) == statuses.count(ExecutionStatus.FILLED)
    _assert_one_venue_order_per_intent(rig)
    _assert_ledger_matches_venue(rig)
