"""The ledger's ADD dedupe (engine.oms.dedupe) on a real SQLite ledger, reopened as a restarted
daemon would: a second ADD for one symbol/side/candle is a duplicate while any earlier attempt is
in flight, filled (even partly) or abandoned, and may be committed only after every earlier one
settled having done nothing at the venue; a position's ADDs and partial exits since its OPEN
survive a restart. A fake clock, no network."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from engine.enums import AmbiguousReason, ExchangeActionType, NotSentReason, RiskReason
from engine.oms.dedupe import RETRY_SEP, SinceEntry
from engine.oms.ledger import FillSource, LiveOms, OmsConfig, dedupe_key_for_add
from engine.oms.records import CreateResult
from engine.oms.states import OmsEvent, OrderState
from engine.venue import types as hl
from engine.venue.exchange_client import ExchangeAccepted, ExchangeAmbiguous, ExchangeNotSent
from tests.unit.test_oms import T0, Clock, _fill

CANDLE = T0 + 299_999


def _open(path: Path, clock: Clock) -> LiveOms:
    return LiveOms(path, mode="live", config=OmsConfig(synchronous_full=False), clock_ms=clock)


def _add(
    oms: LiveOms, *, candle: int = CANDLE, side: str = "LONG", symbol: str = "BTC", action: str = "ADD"
) -> CreateResult:
    return oms.create_intent(
        symbol=symbol, action=action, position_side=side, is_buy=side == "LONG", size_coins=1.0,
        limit_px=101.0, reduce_only=False, reference_price=100.0, leverage=2.0, reason="entry",
        event_ms=candle, dedupe_key=dedupe_key_for_add(symbol, side, candle), retry_unfilled=True,
    )  # fmt: skip


def _ack(status: hl.ActionStatus) -> ExchangeAccepted:
    return ExchangeAccepted(ExchangeActionType.ORDER, 1, hl.ExchangeAck("order", (status,)))


def _ambiguous() -> ExchangeAmbiguous:
    return ExchangeAmbiguous(ExchangeActionType.ORDER, 1, AmbiguousReason.CONNECTION_LOST, "lost")


def _resting_then(oms: LiveOms, intent_id: str, *, filled: float, cancelled: bool) -> None:
    oms.record_outcome(intent_id, _ack(hl.RestingStatus(oid=7)))
    if filled:
        cloid = oms.intent(intent_id).cloid  # type: ignore[union-attr]
        oms.ingest_fills([_fill(oid=7, sz=filled, cloid=cloid)], source=FillSource.REST)
    if cancelled:
        oms.apply(intent_id, OmsEvent.VENUE_CANCELED)


def _abandon(oms: LiveOms, clock: Clock, intent_id: str) -> None:
    oms.record_outcome(intent_id, _ambiguous())
    clock.now += oms.config.not_found_grace_ms
    gone = hl.OrderStatusInfo(order=None, status=None, status_timestamp_ms=None)
    assert oms.apply_order_status(intent_id, gone) is OrderState.ABANDONED


Drive = Callable[[LiveOms, Clock, str], Any]

BLOCKING: dict[str, tuple[Drive, OrderState]] = {
    # the kill -9 window: committed, maybe sent, nothing recorded yet
    "new": (lambda oms, clock, i: None, OrderState.NEW),
    "lost_ack": (lambda oms, clock, i: oms.record_outcome(i, _ambiguous()), OrderState.UNKNOWN),
    "resting": (lambda oms, clock, i: _resting_then(oms, i, filled=0, cancelled=False), OrderState.ACCEPTED),
    "partial": (lambda oms, clock, i: _resting_then(oms, i, filled=0.4, cancelled=False), OrderState.PARTIAL),
    "filled": (
        lambda oms, clock, i: oms.record_outcome(i, _ack(hl.FilledStatus(oid=7, total_sz=1.0, avg_px=100.0))),
        OrderState.FILLED,
    ),
    "cancelled_after_a_partial_fill": (
        lambda oms, clock, i: _resting_then(oms, i, filled=0.4, cancelled=True), OrderState.CANCELLED
    ),
    "abandoned": (_abandon, OrderState.ABANDONED),  # the venue may still turn it up filled
}

RETRYABLE: dict[str, tuple[Drive, OrderState]] = {
    "ioc_unmatched": (
        lambda oms, clock, i: oms.record_outcome(i, _ack(hl.ErrorStatus("could not immediately match"))),
        OrderState.REJECTED,
    ),
    "not_sent": (
        lambda oms, clock, i: oms.record_outcome(
            i, ExchangeNotSent(ExchangeActionType.ORDER, 1, NotSentReason.RATE_BUDGET, "b")
        ),
        OrderState.NOT_SENT,
    ),
    "denied": (
        lambda oms, clock, i: oms.apply(i, OmsEvent.DENY, reason=RiskReason.HARD_KILL), OrderState.DENIED
    ),
    "cancelled_unfilled": (
        lambda oms, clock, i: _resting_then(oms, i, filled=0, cancelled=True), OrderState.CANCELLED
    ),
}


@pytest.mark.parametrize("case", sorted(BLOCKING))
def test_second_add_on_the_candle_is_a_duplicate_after_a_restart_while_the_first_may_have_acted(
    tmp_path: Path, case: str
) -> None:
    drive, state = BLOCKING[case]
    clock = Clock()
    first = _open(tmp_path / "oms.db", clock)
    created = _add(first)
    drive(first, clock, created.intent.intent_id)
    assert first.order(created.intent.intent_id).state is state  # type: ignore[union-attr]
    first.close()  # kill -9 here: the decision event of this ADD was never written

    restarted = _open(tmp_path / "oms.db", clock)
    again = _add(restarted)
    assert again.duplicate and again.intent.intent_id == created.intent.intent_id and again.state is state
    assert len(restarted.intents()) == 1
    # Other candles and the other side are other decisions.
    assert not _add(restarted, candle=CANDLE + 300_000).duplicate
    assert not _add(restarted, side="SHORT").duplicate
    assert not _add(restarted, symbol="ETH").duplicate
    restarted.close()


@pytest.mark.parametrize("case", sorted(RETRYABLE))
def test_add_whose_attempts_all_settled_unfilled_may_be_retried_once_at_a_time(
    tmp_path: Path, case: str
) -> None:
    drive, state = RETRYABLE[case]
    clock = Clock()
    oms = _open(tmp_path / "oms.db", clock)
    first = _add(oms)
    drive(oms, clock, first.intent.intent_id)
    assert oms.order(first.intent.intent_id).state is state  # type: ignore[union-attr]

    retry = _add(oms)
    assert not retry.duplicate and retry.intent.intent_id != first.intent.intent_id
    assert retry.intent.dedupe_key == f"{dedupe_key_for_add('BTC', 'LONG', CANDLE)}{RETRY_SEP}2"
    # The retry is in flight now: a third attempt is its duplicate, also after a restart.
    oms.close()
    oms = _open(tmp_path / "oms.db", clock)
    third = _add(oms)
    assert third.duplicate and third.intent.intent_id == retry.intent.intent_id
    assert third.state is OrderState.NEW
    # Once the retry settled unfilled too, attempt 3 gets its own key.
    oms.record_outcome(retry.intent.intent_id, _ack(hl.ErrorStatus("could not immediately match")))
    fourth = _add(oms)
    assert not fourth.duplicate and fourth.intent.dedupe_key.endswith(f"{RETRY_SEP}3")  # type: ignore[union-attr]
    assert len(oms.intents()) == 3
    oms.close()


def test_a_fill_linked_to_a_rejected_add_blocks_the_retry(tmp_path: Path) -> None:
    """The venue said rejected, then a fill for its cloid turned up: it did act, never resend."""
    oms = _open(tmp_path / "oms.db", Clock())
    first = _add(oms)
    oms.record_outcome(first.intent.intent_id, _ack(hl.ErrorStatus("no")))
    oms.ingest_fills([_fill(oid=1, cloid=first.intent.cloid)], source=FillSource.WS)
    assert oms.order(first.intent.intent_id).state is OrderState.REJECTED  # type: ignore[union-attr]
    again = _add(oms)
    assert again.duplicate and again.intent.intent_id == first.intent.intent_id
    oms.close()


def test_a_key_that_only_shares_a_prefix_is_another_candle(tmp_path: Path) -> None:
    """`ADD:BTC:LONG:1` and `ADD:BTC:LONG:10` are different candles, not an attempt and its retry."""
    oms = _open(tmp_path / "oms.db", Clock())
    assert not _add(oms, candle=1).duplicate
    assert not _add(oms, candle=10).duplicate
    assert _add(oms, candle=1).duplicate and _add(oms, candle=10).duplicate
    oms.close()


def test_since_entry_counts_the_adds_and_partial_exits_that_acted_or_may_have(tmp_path: Path) -> None:
    """Live positions carry adds_count / last_add_ms / tp1_taken from here (the venue knows none):
    ADDs and REDUCEs that filled or are in flight since the newest OPEN; a restart keeps them,
    a new OPEN resets them."""
    clock = Clock()
    oms = _open(tmp_path / "oms.db", clock)
    filled = _ack(hl.FilledStatus(oid=7, total_sz=1.0, avg_px=100.0))
    unmatched = _ack(hl.ErrorStatus("could not immediately match"))

    def step(action: str, candle: int, outcome: Any) -> None:
        clock.now += 1
        created = _add(oms, candle=candle, action=action)
        oms.record_outcome(created.intent.intent_id, outcome)

    step("OPEN", 1, filled)
    step("ADD", 2, filled)
    assert oms.since_entry("BTC") == SinceEntry(adds=1, last_add_ms=2, reduces=0)
    step("ADD", 3, unmatched)  # did nothing: not an add
    step("ADD", 4, _ambiguous())  # may have filled: counts
    step("REDUCE", 5, unmatched)
    assert oms.since_entry("BTC") == SinceEntry(adds=2, last_add_ms=4, reduces=0)
    step("REDUCE", 6, filled)  # TP1 filled; a kill -9 before the engine stored tp1_taken
    oms.close()
    oms = _open(tmp_path / "oms.db", clock)
    assert oms.since_entry("BTC") == SinceEntry(adds=2, last_add_ms=4, reduces=1)
    assert oms.since_entry("ETH") == SinceEntry()
    step("OPEN", 7, filled)  # (after a close) a new position: nothing since
    assert oms.since_entry("BTC") == SinceEntry()
    oms.close()
