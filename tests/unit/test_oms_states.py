"""The OMS transition table: every (state, event) pair is either a row or raises; walked through the
real ledger (SQLite on tmp_path), one row at a time."""

from __future__ import annotations

import itertools
from collections import deque
from pathlib import Path

import pytest

from engine.enums import VenueOrderStatus
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.states import (
    IN_FLIGHT,
    TERMINAL,
    TRANSITIONS,
    InvalidTransition,
    OmsEvent,
    OrderState,
    next_state,
    venue_status_event,
)

S, E = OrderState, OmsEvent

# How to reach each state from NEW through the table (used to set up each row's source state).
PATH_FROM_NEW: dict[OrderState, list[OmsEvent]] = {
    S.NEW: [],
    S.UNKNOWN: [E.ACK_AMBIGUOUS],
    S.ACCEPTED: [E.ACK_RESTING],
    S.PARTIAL: [E.ACK_RESTING, E.FILL],
    S.PENDING_CANCEL: [E.ACK_RESTING, E.CANCEL_REQUESTED],
    S.FILLED: [E.ACK_FILLED],
    S.CANCELLED: [E.ACK_RESTING, E.VENUE_CANCELED],
    S.REJECTED: [E.ACK_REJECTED],
    S.NOT_SENT: [E.SEND_SKIPPED],
    S.DENIED: [E.DENY],
    S.WOULD_SEND: [E.WOULD_SEND],
    S.ABANDONED: [E.NOT_FOUND_CONFIRMED],
}


def _new_intent(oms: LiveOms) -> str:
    return oms.create_intent(
        symbol="BTC",
        action="OPEN",
        position_side="LONG",
        is_buy=True,
        size_coins=1.0,
        limit_px=100.0,
        reduce_only=False,
        reference_price=100.0,
        leverage=1.0,
        reason="test",
        event_ms=1,
    ).intent.intent_id


@pytest.fixture
def oms(tmp_path: Path) -> LiveOms:
    ledger = LiveOms(tmp_path / "oms.db", mode="live", config=OmsConfig(synchronous_full=False))
    yield ledger
    ledger.close()


@pytest.mark.parametrize(("state", "event"), list(itertools.product(OrderState, OmsEvent)))
def test_next_state_pair_is_a_row_or_raises_naming_both(state: OrderState, event: OmsEvent) -> None:
    if (state, event) in TRANSITIONS:
        assert next_state(state, event) is TRANSITIONS[(state, event)]
    else:
        with pytest.raises(InvalidTransition) as info:
            next_state(state, event)
        assert info.value.state is state and info.value.event is event
        assert str(state) in str(info.value) and str(event) in str(info.value)


@pytest.mark.parametrize("state", list(OrderState))
def test_path_from_new_reaches_state(state: OrderState) -> None:
    current = S.NEW
    for event in PATH_FROM_NEW[state]:
        current = next_state(current, event)
    assert current is state


@pytest.mark.parametrize(("row", "target"), list(TRANSITIONS.items()), ids=lambda v: str(v))
def test_ledger_walks_table_row_and_logs_it(
    oms: LiveOms, row: tuple[OrderState, OmsEvent], target: OrderState
) -> None:
    source, event = row
    intent_id = _new_intent(oms)
    for step in PATH_FROM_NEW[source]:
        oms.apply(intent_id, step)
    assert oms.order(intent_id).state is source
    logged = len(oms.order_events(intent_id))
    assert oms.apply(intent_id, event) is target
    assert oms.order(intent_id).state is target
    if target is source:  # a self-loop is no new fact: nothing appended
        assert len(oms.order_events(intent_id)) == logged
    else:
        assert oms.order_events(intent_id)[-1] == (event.value, source.value, target.value)


def test_ledger_refuses_missing_pair_and_writes_nothing(oms: LiveOms) -> None:
    intent_id = _new_intent(oms)
    oms.apply(intent_id, E.ACK_REJECTED)
    with pytest.raises(InvalidTransition):
        oms.apply(intent_id, E.ACK_RESTING)
    assert oms.order(intent_id).state is S.REJECTED
    assert len(oms.order_events(intent_id)) == 1


def test_in_flight_states_never_become_rejected_without_a_venue_answer() -> None:
    local_events = {E.ACK_AMBIGUOUS, E.VENUE_NOT_FOUND, E.CANCEL_REQUESTED}
    for state in IN_FLIGHT:
        for event in local_events:
            if (state, event) in TRANSITIONS:
                assert TRANSITIONS[(state, event)] not in {S.REJECTED, S.NOT_SENT, S.ABANDONED}


def test_every_state_reachable_and_every_live_state_can_finish() -> None:
    seen, queue = {S.NEW}, deque([S.NEW])
    while queue:
        state = queue.popleft()
        for (src, _), dst in TRANSITIONS.items():
            if src is state and dst not in seen:
                seen.add(dst)
                queue.append(dst)
    assert seen == set(OrderState)
    for state in set(OrderState) - TERMINAL:
        assert any(src is state and dst in TERMINAL for (src, _), dst in TRANSITIONS.items()), state


@pytest.mark.parametrize("status", list(VenueOrderStatus))
def test_every_venue_status_maps_to_an_event(status: VenueOrderStatus) -> None:
    event = venue_status_event(status.value)
    assert event in {E.VENUE_OPEN, E.VENUE_FILLED, E.VENUE_CANCELED, E.VENUE_REJECTED}
    if status.value.endswith("Rejected"):
        assert event is E.VENUE_REJECTED
    if status.value.endswith("Canceled"):
        assert event is E.VENUE_CANCELED
