"""The crash audit's checks, on hand-made ledgers and venue order lists: each rule passes a clean
history and names the broken one (the e2e and the soak rely on these failing when they should)."""

from __future__ import annotations

from engine.oms.records import IntentRecord, LedgerFill, OrderRow
from engine.oms.states import OrderState
from engine.tools.crash_audit import CrashAudit, VenueFill, VenueOrder, audit

CANDLE = 1_700_000_299_999


def intent(n: int, action: str = "OPEN", *, event_ms: int = CANDLE) -> IntentRecord:
    return IntentRecord(
        intent_id=f"i{n}", cloid=f"0x{n:032x}", dedupe_key=None, mode="live", symbol="ETH", action=action,
        position_side="LONG", is_buy=action in ("OPEN", "ADD"), size_coins=0.01, limit_px=2000.0,
        reduce_only=action in ("CLOSE", "REDUCE"), reference_price=2000.0, leverage=2.0, reason="standard",
        decision_id=None, event_ms=event_ms, created_ms=1_000 * n,
        meta_json="{}",
    )  # fmt: skip


def row(i: IntentRecord, state: OrderState, oid: int | None = None, filled: float = 0.0) -> OrderRow:
    return OrderRow(
        intent_id=i.intent_id, cloid=i.cloid, symbol=i.symbol, is_buy=i.is_buy, state=state, oid=oid,
        requested_sz=i.size_coins, filled_sz=filled, created_ms=i.created_ms, updated_ms=i.created_ms,
    )  # fmt: skip


def venue(i: IntentRecord, oid: int, status: str = "filled") -> VenueOrder:
    return VenueOrder(oid=oid, cloid=i.cloid, coin=i.symbol, status=status, is_trigger=False)


def fill(i: IntentRecord, oid: int, tid: int) -> tuple[LedgerFill, VenueFill]:
    ledger = LedgerFill(
        fill_key=f"k{tid}", hash=f"0xh{tid}", tid=tid, oid=oid, cloid=i.cloid, coin=i.symbol, is_buy=i.is_buy,
        px=2000.0, sz=0.01, time_ms=i.created_ms, start_position=0.0, dir="Open Long", closed_pnl=0.0,
        fee=0.01, fee_token="USDC", crossed=True, source="rest", recorded_ms=i.created_ms,
    )  # fmt: skip
    return ledger, VenueFill(hash=f"0xh{tid}", tid=tid, oid=oid, cloid=i.cloid)


def run(
    intents: list[IntentRecord], orders: list[OrderRow], venue_orders: list[VenueOrder], *,
    fills: list[tuple[LedgerFill, VenueFill]] = (), settled: dict[str, int] | None = None,
    positions: tuple[dict[str, float], dict[str, float]] = ({}, {}),
) -> CrashAudit:  # fmt: skip
    return audit(
        intents=intents, orders=orders, ledger_fills=[f for f, _ in fills], ledger_positions=positions[0],
        venue_orders=venue_orders, venue_fills=[v for _, v in fills], venue_positions=positions[1],
        settled_ms={o.intent_id: o.created_ms + 10 for o in orders} if settled is None else settled,
    )  # fmt: skip


def test_a_clean_open_and_close_passes_and_counts_one_accepted_order_per_decision() -> None:
    a, b = intent(1), intent(2, "CLOSE")
    result = run(
        [a, b], [row(a, OrderState.FILLED, 11, 0.01), row(b, OrderState.FILLED, 12, 0.01)],
        [venue(a, 11), venue(b, 12)], fills=[fill(a, 11, 1), fill(b, 12, 2)],
    )  # fmt: skip
    assert result.violations == [] and result.ok
    assert (result.decisions, result.venue_accepted, result.accepted_per_decision) == (2, 2, {"1": 2})


def test_two_accepted_venue_orders_for_one_decision_fail_even_under_two_cloids() -> None:
    a, b = intent(1, "ADD"), intent(2, "ADD")  # the same candle; b after a was filled: a double ADD
    result = run(
        [a, b], [row(a, OrderState.FILLED, 11, 0.01), row(b, OrderState.FILLED, 12, 0.01)],
        [venue(a, 11), venue(b, 12)], fills=[fill(a, 11, 1), fill(b, 12, 2)],
    )  # fmt: skip
    assert result.duplicate_intent_decisions == [f"ETH:{CANDLE}:ADD"]
    assert result.multi_accepted_decisions == [f"ETH:{CANDLE}:ADD"] and not result.ok


def test_second_open_intent_for_one_candle_fails_even_after_a_rejection() -> None:
    a, b = intent(1), intent(2)
    result = run(
        [a, b], [row(a, OrderState.REJECTED, 11), row(b, OrderState.FILLED, 12, 0.01)],
        [venue(a, 11, "iocCancelRejected"), venue(b, 12)], fills=[fill(b, 12, 1)],
    )  # fmt: skip
    assert result.duplicate_intent_decisions == [f"ETH:{CANDLE}:OPEN"]
    assert result.multi_accepted_decisions == [] and result.venue_rejected == 1


def test_close_retried_after_its_unmatched_ioc_settled_is_a_retry_not_a_duplicate() -> None:
    a, b = intent(1, "CLOSE"), intent(2, "CLOSE")
    orders = [row(a, OrderState.REJECTED, 11), row(b, OrderState.FILLED, 12, 0.01)]
    venue_orders = [venue(a, 11, "iocCancelRejected"), venue(b, 12)]
    result = run([a, b], orders, venue_orders, fills=[fill(b, 12, 1)])
    assert result.ok and result.decision_retries == [f"ETH:{CANDLE}:CLOSE"]
    # The same retry committed while the first attempt was still unsettled: a double action.
    early = run([a, b], orders, venue_orders, fills=[fill(b, 12, 1)], settled={"i1": 2_500, "i2": 2_010})
    assert early.duplicate_intent_decisions == [f"ETH:{CANDLE}:CLOSE"] and not early.ok


def test_close_after_a_filled_close_fails_unless_the_symbol_was_entered_again() -> None:
    a, b = intent(1, "CLOSE"), intent(3, "CLOSE")
    orders = [row(a, OrderState.FILLED, 11, 0.01), row(b, OrderState.REJECTED, 12)]
    venue_orders = [venue(a, 11), venue(b, 12, "reduceOnlyRejected")]
    stale = run([a, b], orders, venue_orders, fills=[fill(a, 11, 1)])
    assert stale.duplicate_intent_decisions == [f"ETH:{CANDLE}:CLOSE"]  # closed a closed position
    reentry = intent(2, event_ms=CANDLE + 1)
    orders.append(row(reentry, OrderState.FILLED, 13, 0.01))
    reopened = run([a, reentry, b], orders, [*venue_orders, venue(reentry, 13)], fills=[fill(a, 11, 1)])
    assert reopened.duplicate_intent_decisions == [] and reopened.decision_retries == [f"ETH:{CANDLE}:CLOSE"]


def test_close_of_a_position_entered_again_in_its_candle_is_one_more_accepted_order_not_two() -> None:
    """The crash e2e's seed 311574: CLOSE (filled), OPEN, CLOSE (IOC unmatched), CLOSE (filled),
    one candle. The retry rule allows the last CLOSE (a new position), so the accepted-orders
    check must count it as a new decision too; a second ADD after a fill still fails both."""
    a, b, c = intent(1, "CLOSE"), intent(3, "CLOSE"), intent(4, "CLOSE")
    reentry = intent(2, event_ms=CANDLE + 1)
    orders = [row(a, OrderState.FILLED, 11, 0.01), row(reentry, OrderState.FILLED, 12, 0.01),
              row(b, OrderState.REJECTED, 13), row(c, OrderState.FILLED, 14, 0.01)]  # fmt: skip
    venue_orders = [venue(a, 11), venue(reentry, 12), venue(b, 13, "iocCancelRejected"), venue(c, 14)]
    fills = [fill(a, 11, 1), fill(reentry, 12, 2), fill(c, 14, 3)]
    result = run([a, reentry, b, c], orders, venue_orders, fills=fills)
    assert result.violations == [] and result.decision_retries == [f"ETH:{CANDLE}:CLOSE"]
    assert result.accepted_per_decision == {"1": 3}  # CLOSE, OPEN, the CLOSE of the re-entry
    # Without the re-entry the second filled CLOSE closed a closed position: both checks fail.
    stale = run(
        [a, b, c], [orders[0], *orders[2:]], [venue_orders[0], *venue_orders[2:]], fills=[fills[0], fills[2]]
    )
    assert stale.duplicate_intent_decisions == [f"ETH:{CANDLE}:CLOSE"]
    assert stale.multi_accepted_decisions == [f"ETH:{CANDLE}:CLOSE"] and not stale.ok


def test_venue_order_without_an_intent_and_state_disagreements_fail() -> None:
    a, b, c = intent(1), intent(2, "CLOSE", event_ms=CANDLE + 300_000), intent(3, event_ms=CANDLE + 600_000)
    stranger = VenueOrder(oid=99, cloid="0x" + "f" * 32, coin="ETH", status="filled", is_trigger=False)
    result = run(
        [a, b, c],
        [row(a, OrderState.ABANDONED), row(b, OrderState.FILLED, 12, 0.01), row(c, OrderState.UNKNOWN)],
        [venue(a, 11), stranger],
    )  # fmt: skip
    assert result.untracked_venue_orders == [99]
    assert result.unsent_but_venue_knows == [f"ETH:{CANDLE}:OPEN:ABANDONED"]
    assert result.acknowledged_but_venue_unknown == [f"ETH:{CANDLE + 300_000}:CLOSE:FILLED"]
    assert result.in_flight == [f"ETH:{CANDLE + 600_000}:OPEN:UNKNOWN"]
    assert result.filled_state_mismatch == [f"ETH:{CANDLE}:OPEN:ABANDONED:venue_oid=11"]
    assert result.never_reached_venue == {"FILLED": 1, "UNKNOWN": 1}


def test_intents_that_never_reached_the_venue_are_reported_not_failed() -> None:
    a, b = intent(1), intent(2, event_ms=CANDLE + 300_000)
    result = run([a, b], [row(a, OrderState.DENIED), row(b, OrderState.NOT_SENT)], [])
    assert result.ok and result.never_reached_venue == {"DENIED": 1, "NOT_SENT": 1}
    assert result.accepted_per_decision == {"0": 2}


def test_trigger_orders_are_counted_apart() -> None:
    a = intent(1)
    trigger = VenueOrder(oid=50, cloid=None, coin="ETH", status="open", is_trigger=True)
    result = run([a], [row(a, OrderState.FILLED, 11, 0.01)], [venue(a, 11), trigger], fills=[fill(a, 11, 1)])
    assert result.ok and (result.trigger_orders, result.venue_orders) == (1, 1)


def test_fills_and_positions_must_match_the_venue() -> None:
    a = intent(1)
    ledger, venue_fill = fill(a, 11, 1)
    orders, venue_orders = [row(a, OrderState.FILLED, 11, 0.01)], [venue(a, 11)]
    missing = audit(
        intents=[a], orders=orders, ledger_fills=[], ledger_positions={}, venue_orders=venue_orders,
        venue_fills=[venue_fill], venue_positions={}, settled_ms={"i1": 1_010},
    )  # fmt: skip
    twice = audit(
        intents=[a], orders=orders, ledger_fills=[ledger, ledger], ledger_positions={"ETH": 0.02},
        venue_orders=venue_orders, venue_fills=[venue_fill], venue_positions={"ETH": 0.01},
        settled_ms={"i1": 1_010},
    )  # fmt: skip
    assert (missing.fills_missing, missing.fills_extra, missing.ok) == (1, 0, False)
    assert (twice.fills_missing, twice.fills_extra) == (0, 1)
    assert any(v.startswith("positions") for v in twice.violations)
    same = ({"ETH": 0.01}, {"ETH": 0.01})
    assert run([a], orders, venue_orders, fills=[(ledger, venue_fill)], positions=same).ok


def test_protective_stops_are_no_decisions_but_the_venue_must_know_the_ones_the_ledger_acked() -> None:
    a = intent(1)
    stop, moved = intent(2, "PROTECT"), intent(3, "PROTECT")  # placed, then cancelled and re-placed
    rows = [row(a, OrderState.FILLED, 11, 0.01), row(stop, OrderState.CANCELLED, 21),
            row(moved, OrderState.ACCEPTED, 22)]
    trigger = [
        VenueOrder(oid=21, cloid=stop.cloid, coin="ETH", status="canceled", is_trigger=True),
        VenueOrder(oid=22, cloid=moved.cloid, coin="ETH", status="open", is_trigger=True),
    ]
    result = run([a, stop, moved], rows, [venue(a, 11), *trigger], fills=[fill(a, 11, 1)])
    assert result.violations == [] and result.decisions == 1 and result.trigger_orders == 2
    lost = run([a, stop, moved], rows, [venue(a, 11), trigger[0]], fills=[fill(a, 11, 1)])
    assert lost.acknowledged_but_venue_unknown == [f"ETH:{CANDLE}:PROTECT:{OrderState.ACCEPTED}"]
