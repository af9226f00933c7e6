"""Stop-loss / take-profit trigger orders and modify: listing (orderType, triggerCondition,
isTrigger), firing on the price path (market: at once with slippage; limit: cross then rest), the
normalTpsl / positionTpsl groupings, reduce-only at fire time, cancel, modify / batchModify."""

from __future__ import annotations

from typing import Any

import pytest
from hyperliquid.utils import signing as sdk
from hyperliquid.utils.types import Cloid

from tests.unit.test_sim_exchange_support import Client, Venue

CLOID = "0x" + "00" * 15 + "07"
ASSETS = ["BTC", "ETH", "DOGE"]


def trigger_wire(coin: str, is_buy: bool, sz: float, px: float, trigger_px: float, tpsl: str, *,
                 is_market: bool = True, reduce_only: bool = True, cloid: str | None = None) -> dict:
    req: dict[str, Any] = {
        "coin": coin, "is_buy": is_buy, "sz": sz, "limit_px": px, "reduce_only": reduce_only,
        "order_type": {"trigger": {"triggerPx": trigger_px, "isMarket": is_market, "tpsl": tpsl}},
    }
    if cloid is not None:
        req["cloid"] = Cloid(cloid)
    return sdk.order_request_to_order_wire(req, ASSETS.index(coin))


STOP_3700 = trigger_wire("ETH", False, 1.0, 3_700, 3_700, "sl")


def place(client: Client, wires: list[dict], grouping: str = "na") -> list[Any]:
    body = client.send(sdk.order_wires_to_order_action(wires, None, grouping))  # type: ignore[arg-type]
    assert body["status"] == "ok", body
    return body["response"]["data"]["statuses"]


def statuses_of(venue: Venue, user: str, oid: int) -> list[str]:
    return [u["status"] for ch, who, payload in venue.events if ch == "orderUpdates" and who == user
            for u in payload if u["order"]["oid"] == oid]


@pytest.fixture
def venue() -> Venue:
    return Venue()


@pytest.fixture
def alice(venue: Venue) -> Client:
    return Client(venue)


def test_stop_market_is_listed_then_fires_below_and_closes_the_long(venue: Venue, alice: Client) -> None:
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    [status] = place(alice, [trigger_wire("ETH", False, 1.0, 3_800, 3_800, "sl", cloid=CLOID)])
    oid = status["resting"]["oid"]
    [listed] = venue.info("frontendOpenOrders", alice.address)
    assert (listed["orderType"], listed["triggerCondition"], listed["isTrigger"], listed["triggerPx"]) == (
        "Stop Market", "Price below 3800.0", True, "3800.0")
    assert listed["reduceOnly"] is True and listed["tif"] is None and listed["cloid"] == CLOID
    assert [o["oid"] for o in venue.info("openOrders", alice.address)] == [oid]
    venue.tick(ETH=3_850.0)
    assert alice.position("ETH") is not None
    venue.tick(ETH=3_790.0)
    assert alice.position("ETH") is None
    fill = venue.info("userFills", alice.address)[0]
    assert fill["oid"] == oid and fill["crossed"] is True and fill["dir"] == "Close Long"
    assert float(fill["px"]) == pytest.approx(3_790 * 0.9999)  # the best bid at the moment it fired
    assert statuses_of(venue, alice.address, oid) == ["open", "triggered", "filled"]
    assert venue.info("frontendOpenOrders", alice.address) == []


def test_stop_on_a_short_fires_above(venue: Venue, alice: Client) -> None:
    alice.order("ETH", False, 1.0, 3_900, "Ioc")
    place(alice, [trigger_wire("ETH", True, 1.0, 4_300, 4_200, "sl")])
    assert venue.info("frontendOpenOrders", alice.address)[0]["triggerCondition"] == "Price above 4200.0"
    venue.tick(ETH=4_150.0)
    assert alice.position("ETH") is not None
    venue.tick(ETH=4_210.0)
    assert alice.position("ETH") is None


def test_take_profit_limit_rests_after_firing_and_fills_as_maker(venue: Venue, alice: Client) -> None:
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    [status] = place(alice, [trigger_wire("ETH", False, 1.0, 4_250, 4_200, "tp", is_market=False)])
    oid = status["resting"]["oid"]
    assert venue.info("frontendOpenOrders", alice.address)[0]["orderType"] == "Take Profit Limit"
    venue.tick(ETH=4_210.0)  # fires; its 4,250 limit is above the bid, so it rests
    assert statuses_of(venue, alice.address, oid) == ["open", "triggered"]
    assert alice.position("ETH") is not None
    venue.tick(ETH=4_250.0)
    fill = venue.info("userFills", alice.address)[0]
    assert (fill["oid"], fill["px"], fill["crossed"]) == (oid, "4250.0", False)
    assert alice.position("ETH") is None


def test_normal_tpsl_children_wait_for_the_parent_fill(venue: Venue, alice: Client) -> None:
    wires = [Client.order_wire("ETH", True, 1.0, 3_900, "Gtc"),
             trigger_wire("ETH", False, 1.0, 3_700, 3_700, "sl"),
             trigger_wire("ETH", False, 1.0, 4_500, 4_400, "tp", is_market=False)]
    statuses = place(alice, wires, "normalTpsl")
    assert "resting" in statuses[0] and statuses[1:] == ["waitingForFill", "waitingForFill"]
    tp_oid = max(o["oid"] for o in venue.info("openOrders", alice.address))
    venue.tick(ETH=3_950.0)
    assert len(venue.info("openOrders", alice.address)) == 3
    venue.tick(ETH=3_900.0)  # the parent fills
    assert alice.position("ETH")["szi"] == "1.0"
    venue.tick(ETH=3_650.0)  # the stop fires and closes the position; its sibling goes with it
    assert alice.position("ETH") is None
    assert venue.info("openOrders", alice.address) == []
    assert statuses_of(venue, alice.address, tp_oid)[-1] == "siblingFilledCanceled"


def test_normal_tpsl_children_die_with_an_unfilled_parent(venue: Venue, alice: Client) -> None:
    wires = [Client.order_wire("ETH", True, 1.0, 3_900, "Gtc"), STOP_3700]
    parent_oid = place(alice, wires, "normalTpsl")[0]["resting"]["oid"]
    alice.cancel("ETH", parent_oid)
    venue.tick(ETH=3_950.0)
    assert venue.info("openOrders", alice.address) == []


def test_filled_parent_answers_waiting_for_trigger(venue: Venue, alice: Client) -> None:
    wires = [Client.order_wire("ETH", True, 1.0, 4_100, "Ioc"), STOP_3700]
    statuses = place(alice, wires, "normalTpsl")
    assert "filled" in statuses[0] and statuses[1] == "waitingForTrigger"


def test_position_tpsl_closes_the_whole_position_and_dies_with_it(venue: Venue, alice: Client) -> None:
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    place(alice, [trigger_wire("ETH", False, 1.0, 3_700, 3_700, "sl")], "positionTpsl")
    assert venue.info("frontendOpenOrders", alice.address)[0]["isPositionTpsl"] is True
    alice.order("ETH", True, 0.5, 4_100, "Ioc")  # the position grows after the stop was placed
    venue.tick(ETH=3_690.0)
    assert alice.position("ETH") is None
    alice.order("ETH", True, 1.0, 3_800, "Ioc")
    place(alice, [trigger_wire("ETH", False, 1.0, 3_500, 3_500, "sl")], "positionTpsl")
    alice.order("ETH", False, 1.0, 3_600, "Ioc", reduce_only=True)  # closed by hand
    venue.tick(ETH=3_700.0)
    assert venue.info("openOrders", alice.address) == []


def test_tpsl_needs_reduce_only_and_a_position_and_a_flat_stop_is_cancelled(
    venue: Venue, alice: Client
) -> None:
    wire = trigger_wire("ETH", False, 1.0, 3_700, 3_700, "sl", reduce_only=False)
    refused = [{"error": "TP/SL orders of a tpsl grouping must be reduce only."}]
    assert place(alice, [wire], "positionTpsl") == refused
    assert place(alice, [STOP_3700]) == [{"error": "Reduce only order would increase position. asset=1"}]
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    [status] = place(alice, [STOP_3700])
    alice.order("ETH", False, 1.0, 3_900, "Ioc")  # closed by hand: the stop has nothing left to reduce
    venue.tick(ETH=3_650.0)
    assert statuses_of(venue, alice.address, status["resting"]["oid"])[-1] == "reduceOnlyCanceled"


def test_trigger_orders_cancel_by_oid_and_cloid(venue: Venue, alice: Client) -> None:
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    a = place(alice, [trigger_wire("ETH", False, 1.0, 3_700, 3_700, "sl")])[0]["resting"]["oid"]
    place(alice, [trigger_wire("ETH", False, 1.0, 4_500, 4_400, "tp", cloid=CLOID)])
    assert alice.cancel("ETH", a)["response"]["data"]["statuses"] == ["success"]
    assert alice.cancel_by_cloid("ETH", CLOID)["response"]["data"]["statuses"] == ["success"]
    venue.tick(ETH=3_600.0)
    assert alice.position("ETH") is not None


def test_modify_replaces_the_order_keeping_its_cloid(venue: Venue, alice: Client) -> None:
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    [placed] = place(alice, [trigger_wire("ETH", False, 1.0, 3_500, 3_500, "sl", cloid=CLOID)])
    old = placed["resting"]["oid"]
    new_wire = trigger_wire("ETH", False, 1.0, 3_900, 3_900, "sl", cloid=CLOID)
    assert alice.send({"type": "modify", "oid": CLOID, "order": new_wire}) == {
        "status": "ok", "response": {"type": "default"}}
    [listed] = venue.info("frontendOpenOrders", alice.address)
    assert listed["oid"] != old and listed["triggerPx"] == "3900.0" and listed["cloid"] == CLOID
    assert venue.info("orderStatus", alice.address, oid=old)["order"]["status"] == "canceled"
    batch = alice.send({"type": "batchModify", "modifies": [{"oid": old, "order": new_wire}]})
    assert batch["response"]["data"]["statuses"] == [{"error": "Cannot modify canceled or filled order"}]
    venue.tick(ETH=3_890.0)
    assert alice.position("ETH") is None


def test_batch_modify_moves_a_resting_limit(venue: Venue, alice: Client) -> None:
    oid = alice.order("ETH", True, 0.1, 3_800, "Gtc")["resting"]["oid"]
    moved = Client.order_wire("ETH", True, 0.2, 3_850, "Gtc")
    body = alice.send({"type": "batchModify", "modifies": [{"oid": oid, "order": moved}]})
    [status] = body["response"]["data"]["statuses"]
    [listed] = venue.info("openOrders", alice.address)
    assert listed["oid"] == status["resting"]["oid"] != oid
    assert (listed["limitPx"], listed["sz"]) == ("3850.0", "0.2")
