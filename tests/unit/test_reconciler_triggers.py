"""The reconciler's trigger-order matching (engine/oms/reconciler.py step 3) on a real ledger with
a hand-written venue answering in the venue's own JSON shapes: our protective orders are matched
to their intents and never stale-cancelled, other stale orders of ours still are, foreign trigger
orders are recorded as such, and a stop the venue filled while we were away lands in the ledger."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.enums import ExchangeActionType, ProtectionKind
from engine.execution.protection import PROTECT_ACTION
from engine.oms.ledger import LiveOms, OmsConfig
from engine.oms.reconciler import OmsReconciler, ReconcileEventKind, ReconcilerConfig
from engine.oms.states import OmsEvent, OrderState
from engine.venue import types as hl
from engine.venue.exchange_client import ExchangeAccepted

USER = "0x" + "ab" * 20
NOW = 1_800_000_000_000


def _frontend(coin: str, oid: int, cloid: str | None, *, trigger_px: float | None, ts: int) -> dict[str, Any]:
    trig = trigger_px is not None
    body = {
        "children": [], "coin": coin, "isPositionTpsl": False, "isTrigger": trig, "limitPx": "90.0",
        "oid": oid, "orderType": "Stop Market" if trig else "Limit", "origSz": "1.0", "reduceOnly": trig,
        "side": "A", "sz": "1.0", "tif": None if trig else "Gtc", "timestamp": ts,
        "triggerCondition": "Price below 95.0" if trig else "N/A", "triggerPx": str(trigger_px or "0.0"),
    }  # fmt: skip
    if cloid is not None:
        body["cloid"] = cloid
    return body


class FakeVenue:
    """The /info answers the reconciler reads, as raw venue JSON parsed by our own parsers."""

    def __init__(self) -> None:
        self.frontend: list[dict[str, Any]] = []
        self.fills: list[dict[str, Any]] = []
        self.statuses: dict[str, dict[str, Any]] = {}
        self.szi: dict[str, float] = {}
        self.cancelled: list[tuple[str, int]] = []

    def order_status(self, user: str, cloid: str) -> hl.OrderStatusInfo:
        return hl.parse_order_status(self.statuses.get(cloid, {"status": "unknownOid"}))

    def user_fills_by_time(self, user: str, start_ms: int) -> tuple[hl.Fill, ...]:
        return hl.parse_user_fills(self.fills)

    def frontend_open_orders(self, user: str) -> tuple[hl.FrontendOpenOrder, ...]:
        return hl.parse_frontend_open_orders(self.frontend)

    def clearinghouse_state(self, user: str) -> hl.UserState:
        positions = [{"type": "oneWay", "position": {
            "coin": c, "szi": str(s), "entryPx": "100.0", "positionValue": "100.0", "unrealizedPnl": "0.0",
            "returnOnEquity": "0.0", "liquidationPx": None, "leverage": {"type": "cross", "value": 3},
            "marginUsed": "33.0", "maxLeverage": 50,
            "cumFunding": {"allTime": "0.0", "sinceOpen": "0.0", "sinceChange": "0.0"}}}
            for c, s in self.szi.items()]  # fmt: skip
        summary = {"accountValue": "1000.0", "totalNtlPos": "0.0", "totalRawUsd": "1000.0",
                   "totalMarginUsed": "0.0"}  # fmt: skip
        return hl.parse_user_state({
            "assetPositions": positions, "crossMarginSummary": summary, "marginSummary": summary,
            "crossMaintenanceMarginUsed": "0.0", "withdrawable": "1000.0", "time": NOW,
        })  # fmt: skip

    def cancel(self, coin: str, oid: int) -> ExchangeAccepted:
        self.cancelled.append((coin, oid))
        return ExchangeAccepted(ExchangeActionType.CANCEL, 1, hl.ExchangeAck("cancel", ("success",)))


@pytest.fixture
def oms(tmp_path: Path) -> LiveOms:
    ledger = LiveOms(tmp_path / "oms.db", mode="live", config=OmsConfig(synchronous_full=False),
                     clock_ms=lambda: NOW)  # fmt: skip
    yield ledger  # type: ignore[misc]
    ledger.close()


def _reconciler(oms: LiveOms, venue: FakeVenue) -> OmsReconciler:
    return OmsReconciler(oms=oms, info=venue, config=ReconcilerConfig(user=USER, stale_order_ms=30_000),
                         canceller=venue.cancel, clock_ms=lambda: NOW)  # fmt: skip


def _intent(oms: LiveOms, *, protective: bool) -> tuple[str, str]:
    record = oms.create_intent(
        symbol="ETH", action=PROTECT_ACTION if protective else "OPEN", position_side="LONG", is_buy=False,
        size_coins=1.0, limit_px=90.0, reduce_only=protective, reference_price=95.0, leverage=1.0,
        reason=ProtectionKind.STOP_LOSS.value if protective else "standard", event_ms=NOW,
        meta={"trigger_px": 95.0, "tpsl": "sl"} if protective else {},
    ).intent  # fmt: skip
    return record.intent_id, record.cloid


def test_protective_order_the_ledger_gave_up_on_is_matched_and_never_stale_cancelled(oms: LiveOms) -> None:
    venue = FakeVenue()
    intent_id, cloid = _intent(oms, protective=True)
    oms.apply(intent_id, OmsEvent.NOT_FOUND_CONFIRMED)  # ABANDONED: a lost answer, the venue has it
    venue.frontend = [_frontend("ETH", 42, cloid, trigger_px=95.0, ts=NOW - 3_600_000)]  # an hour old
    report = _reconciler(oms, venue).run()
    assert report.clean and report.protective_open == 1 and report.cancels == 0, report
    order = oms.order(intent_id)
    assert order is not None and (order.state, order.oid) == (OrderState.ACCEPTED, 42)
    assert [e[1] for e in oms.reconcile_events(ReconcileEventKind.PROTECTIVE_FOUND)] == ["ETH"]
    assert venue.cancelled == []
    again = _reconciler(oms, venue).run()  # already live: nothing new recorded
    assert again.clean and len(oms.reconcile_events(ReconcileEventKind.PROTECTIVE_FOUND)) == 1


def test_other_stale_order_of_ours_is_still_cancelled(oms: LiveOms) -> None:
    venue = FakeVenue()
    intent_id, cloid = _intent(oms, protective=False)
    oms.apply(intent_id, OmsEvent.ACK_RESTING, oid=7)
    venue.frontend = [_frontend("ETH", 7, cloid, trigger_px=None, ts=NOW - 3_600_000)]
    venue.statuses[cloid] = {"status": "order", "order": {
        "order": venue.frontend[0], "status": "open", "statusTimestamp": NOW}}  # fmt: skip
    report = _reconciler(oms, venue).run()
    assert report.cancels == 1 and venue.cancelled == [("ETH", 7)]
    assert oms.order(intent_id).state is OrderState.PENDING_CANCEL  # type: ignore[union-attr]


def test_foreign_trigger_order_is_recorded_as_a_trigger_and_left_alone(oms: LiveOms) -> None:
    venue = FakeVenue()
    venue.frontend = [_frontend("ETH", 9, None, trigger_px=80.0, ts=NOW - 3_600_000)]
    report = _reconciler(oms, venue).run()
    assert report.clean and report.protective_open == 0 and venue.cancelled == []
    ((_kind, symbol, detail),) = oms.reconcile_events(ReconcileEventKind.FOREIGN_OPEN_ORDER)
    assert (symbol, detail) == ("ETH", {"oid": 9, "trigger": True})


def test_stop_filled_while_away_is_recorded_and_ledger_equals_venue(oms: LiveOms) -> None:
    venue = FakeVenue()
    entry_id, entry_cloid = _intent(oms, protective=False)
    stop_id, stop_cloid = _intent(oms, protective=True)
    oms.apply(entry_id, OmsEvent.ACK_FILLED, oid=5)
    oms.apply(stop_id, OmsEvent.ACK_RESTING, oid=6)

    def fill(oid: int, cloid: str, side: str, start: str, direction: str, tid: int) -> dict[str, Any]:
        return {"coin": "ETH", "px": "100.0", "sz": "1.0", "side": side, "time": NOW - 1000 + tid,
                "startPosition": start, "dir": direction, "closedPnl": "0.0", "hash": "0x" + f"{tid:064x}",
                "oid": oid, "crossed": True, "fee": "0.01", "tid": tid, "feeToken": "USDC",
                "cloid": cloid}  # fmt: skip

    venue.fills = [fill(5, entry_cloid, "B", "0.0", "Open Long", 1),
                   fill(6, stop_cloid, "A", "1.0", "Close Long", 2)]
    venue.statuses[stop_cloid] = {"status": "order", "order": {
        "order": _frontend("ETH", 6, stop_cloid, trigger_px=95.0, ts=NOW), "status": "filled",
        "statusTimestamp": NOW}}  # fmt: skip
    report = _reconciler(oms, venue).run()  # the venue is flat again: no position on either side
    assert report.clean and report.fills_inserted == 2, report
    assert oms.order(stop_id).state is OrderState.FILLED  # type: ignore[union-attr]
    assert oms.ledger_positions() == {}
    links = oms.fill_links()
    assert sorted(intent for intent, _via in links.values()) == sorted([entry_id, stop_id])


def test_protective_order_whose_cancel_did_not_land_is_cancelled_again(oms: LiveOms) -> None:
    venue = FakeVenue()
    intent_id, cloid = _intent(oms, protective=True)
    oms.apply(intent_id, OmsEvent.ACK_RESTING, oid=11)
    oms.apply(intent_id, OmsEvent.CANCEL_REQUESTED, oid=11)  # our cancel was lost on the way
    venue.frontend = [_frontend("ETH", 11, cloid, trigger_px=95.0, ts=NOW - 3_600_000)]
    venue.statuses[cloid] = {"status": "order", "order": {
        "order": venue.frontend[0], "status": "open", "statusTimestamp": NOW}}  # fmt: skip
    later = NOW + 60_000  # past the stale-order TTL since the cancel was asked for
    reconciler = OmsReconciler(oms=oms, info=venue, config=ReconcilerConfig(user=USER, stale_order_ms=30_000),
                               canceller=venue.cancel, clock_ms=lambda: later)  # fmt: skip
    report = reconciler.run()
    assert report.cancels == 1 and venue.cancelled == [("ETH", 11)]
