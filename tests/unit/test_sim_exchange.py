"""Exchange core: order placement, matching, rejections with the venue's texts, fees, funding,
positions and the user /info answers — driven by actions signed with the official SDK's signer."""

from __future__ import annotations

import pytest

from simulator import venue_vocab as vt
from tests.unit.test_sim_exchange_support import MAKER, T0_MS, TAKER, Client, Venue

CLOID = "0x" + "ab" * 16


BAND = "Order price cannot be more than 80% away from the reference price"


@pytest.fixture
def venue() -> Venue:
    return Venue()


@pytest.fixture
def alice(venue: Venue) -> Client:
    return Client(venue)


def test_ioc_buy_fills_at_best_ask_with_taker_fee(venue: Venue, alice: Client) -> None:
    status = alice.order("BTC", True, 0.01, 101_000, "Ioc")
    assert status["filled"]["totalSz"] == "0.01"
    assert float(status["filled"]["avgPx"]) == pytest.approx(100_010.0)  # mid + 1 bp half-spread
    fill = venue.info("userFills", alice.address)[0]
    assert (fill["side"], fill["dir"], fill["crossed"], fill["startPosition"]) == (
        "B",
        "Open Long",
        True,
        "0.0",
    )
    assert float(fill["fee"]) == pytest.approx(100_010.0 * 0.01 * TAKER)
    assert fill["oid"] == status["filled"]["oid"] and fill["feeToken"] == "USDC"
    pos = alice.position("BTC")
    assert pos is not None and pos["szi"] == "0.01" and float(pos["entryPx"]) == pytest.approx(100_010.0)
    account_value = float(alice.state()["marginSummary"]["accountValue"])
    assert account_value == pytest.approx(10_000 - 0.01 * 10.0 - float(fill["fee"]))  # uPnL at mid, minus fee


def test_large_ioc_walks_the_book_with_size_dependent_slippage(venue: Venue, alice: Client) -> None:
    venue.core.fund(alice.address)
    small = alice.order("ETH", True, 1.0, 4_100, "Ioc")
    big = alice.order("ETH", True, 30.0, 4_100, "Ioc")  # 50k USD per level: walks several levels
    assert float(big["filled"]["avgPx"]) > float(small["filled"]["avgPx"])
    big_fills = [f for f in venue.info("userFills", alice.address) if f["oid"] == big["filled"]["oid"]]
    assert len(big_fills) > 1 and len({f["hash"] for f in big_fills}) == 1
    assert sum(float(f["sz"]) for f in big_fills) == pytest.approx(30.0)


def test_ioc_that_cannot_cross_is_rejected_and_leaves_no_position(venue: Venue, alice: Client) -> None:
    status = alice.order("BTC", True, 0.01, 99_000, "Ioc", cloid=CLOID)
    assert status == {"error": vt.order_error(vt.RejectKind.IOC_CANCEL, 0)}
    assert status["error"] == "Order could not immediately match against any resting orders. asset=0"
    assert alice.position("BTC") is None
    assert venue.info("orderStatus", alice.address, oid=CLOID)["order"]["status"] == "iocCancelRejected"


def test_gtc_rests_then_fills_as_maker_when_mid_crosses(venue: Venue, alice: Client) -> None:
    status = alice.order("BTC", True, 0.01, 99_000, "Gtc", cloid=CLOID)
    oid = status["resting"]["oid"]
    assert status == {"resting": {"oid": oid, "cloid": CLOID}}
    [open_order] = venue.info("openOrders", alice.address)
    assert (open_order["oid"], open_order["limitPx"], open_order["sz"], open_order["side"]) == (
        oid,
        "99000.0",
        "0.01",
        "B",
    )
    assert venue.info("frontendOpenOrders", alice.address)[0]["tif"] == "Gtc"
    venue.tick(BTC=99_500.0)
    assert venue.info("userFills", alice.address) == []
    venue.tick(BTC=98_990.0)
    [fill] = venue.info("userFills", alice.address)
    assert (fill["px"], fill["crossed"], fill["cloid"]) == ("99000.0", False, CLOID)
    assert float(fill["fee"]) == pytest.approx(99_000 * 0.01 * MAKER)
    assert venue.info("openOrders", alice.address) == []
    by_cloid = venue.info("orderStatus", alice.address, oid=CLOID)
    assert by_cloid["status"] == "order" and by_cloid["order"]["status"] == "filled"
    assert by_cloid["order"]["order"]["oid"] == oid
    assert venue.info("orderStatus", alice.address, oid=oid) == by_cloid
    channels = [(ch, payload) for ch, user, payload in venue.events if user == alice.address]
    assert ("userFills", {"user": alice.address, "fills": [fill]}) in channels
    assert [p[0]["status"] for ch, p in channels if ch == "orderUpdates"] == ["open", "filled"]


@pytest.mark.parametrize(
    ("coin", "is_buy", "sz", "px", "tif", "expected"),
    [
        ("BTC", True, 0.01, 99_000.5, "Gtc", "Order has invalid price."),  # 6 significant figures
        ("ETH", True, 0.01, 3_999.123, "Gtc", "Order has invalid price."),  # 3 decimals > 6 - 4
        ("ETH", True, 0.01, 7_300, "Gtc", BAND),
        ("ETH", False, 1.0, 790, "Gtc", BAND),
        ("BTC", True, 0.000001, 99_000, "Gtc", "Order has invalid size."),
        ("DOGE", True, 100.5, 0.19, "Gtc", "Order has invalid size."),
        ("BTC", True, 0.00009, 99_000, "Gtc", "Order must have minimum value of $10. asset=0"),
        ("DOGE", False, 49, 0.2, "Gtc", "Order must have minimum value of $10. asset=2"),
        ("BTC", True, 3.0, 99_000, "Gtc", "Insufficient margin to place order. asset=0"),
        (
            "BTC",
            False,
            0.01,
            99_000,
            "Alo",
            "Post only order would have immediately matched, bbo was 99990.0@100010.0. asset=0",
        ),
    ],
)
def test_order_rejections_use_venue_texts(
    alice: Client, coin: str, is_buy: bool, sz: float, px: float, tif: str, expected: str
) -> None:
    assert alice.order(coin, is_buy, sz, px, tif) == {"error": expected}
    assert alice.position(coin) is None


def test_reduce_only_without_position_or_same_side_is_rejected(alice: Client) -> None:
    text = "Reduce only order would increase position. asset=0"
    assert alice.order("BTC", False, 0.01, 90_000, "Ioc", reduce_only=True) == {"error": text}
    alice.order("BTC", True, 0.01, 101_000, "Ioc")
    assert alice.order("BTC", True, 0.01, 101_000, "Ioc", reduce_only=True) == {"error": text}


def test_reduce_only_larger_than_position_closes_without_flipping(venue: Venue, alice: Client) -> None:
    alice.order("BTC", True, 0.01, 101_000, "Ioc")
    venue.tick(BTC=102_000.0)
    status = alice.order("BTC", False, 0.05, 95_000, "Ioc", reduce_only=True)
    assert status["filled"]["totalSz"] == "0.01"
    assert alice.position("BTC") is None
    close = venue.info("userFills", alice.address)[0]
    assert close["dir"] == "Close Long" and close["startPosition"] == "0.01"
    exit_px = float(close["px"])
    assert float(close["closedPnl"]) == pytest.approx((exit_px - 100_010.0) * 0.01)


def test_flip_reports_long_to_short_and_new_entry(venue: Venue, alice: Client) -> None:
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    alice.order("ETH", False, 3.0, 3_900, "Ioc")
    assert venue.info("userFills", alice.address)[0]["dir"] == "Long > Short"
    pos = alice.position("ETH")
    assert pos is not None and pos["szi"] == "-2.0"
    assert float(pos["entryPx"]) == pytest.approx(3_999.6)


def test_duplicate_cloid_is_refused(alice: Client) -> None:
    assert "resting" in alice.order("BTC", True, 0.01, 99_000, "Gtc", cloid=CLOID)
    assert alice.order("BTC", True, 0.01, 98_000, "Gtc", cloid=CLOID) == {"error": "Duplicate cloid."}


def test_batch_statuses_follow_order_and_margin_is_consumed_in_sequence(venue: Venue, alice: Client) -> None:
    wires = [
        Client.order_wire("BTC", True, 0.01, 99_000, "Gtc"),
        Client.order_wire("BTC", True, 0.00009, 99_000, "Gtc"),
        Client.order_wire("ETH", True, 0.5, 4_100, "Ioc"),
        Client.order_wire("BTC", True, 1.99, 99_000, "Gtc"),  # 1.99 x 100k mid / 20x = 9.95k > ~9.85k free
    ]
    statuses = alice.bulk(wires)
    assert "resting" in statuses[0]
    assert statuses[1] == {"error": "Order must have minimum value of $10. asset=0"}
    assert statuses[2]["filled"]["totalSz"] == "0.5"
    assert statuses[3] == {"error": "Insufficient margin to place order. asset=0"}
    assert len(venue.info("openOrders", alice.address)) == 1


def test_cancel_and_cancel_by_cloid_then_missing_order_text(venue: Venue, alice: Client) -> None:
    oid = alice.order("BTC", True, 0.01, 99_000, "Gtc")["resting"]["oid"]
    alice.order("ETH", False, 0.01, 4_500, "Gtc", cloid=CLOID)
    ok = {"status": "ok", "response": {"type": "cancel", "data": {"statuses": ["success"]}}}
    assert alice.cancel("BTC", oid) == ok
    assert alice.cancel_by_cloid("ETH", CLOID) == ok
    missing = "Order was never placed, already canceled, or filled. asset=0"
    assert alice.cancel("BTC", oid)["response"]["data"]["statuses"] == [{"error": missing}]
    assert alice.cancel_by_cloid("ETH", CLOID)["response"]["data"]["statuses"] == [
        {"error": "Order was never placed, already canceled, or filled. asset=1"}
    ]
    assert venue.info("openOrders", alice.address) == []
    assert venue.info("orderStatus", alice.address, oid=oid)["order"]["status"] == "canceled"


def test_order_status_unknown_oid_and_other_users_order(venue: Venue, alice: Client) -> None:
    oid = alice.order("BTC", True, 0.01, 99_000, "Gtc")["resting"]["oid"]
    bob = Client(venue)
    assert venue.info("orderStatus", bob.address, oid=oid) == {"status": "unknownOid"}
    assert venue.info("orderStatus", alice.address, oid=123) == {"status": "unknownOid"}
    assert venue.info("orderStatus", alice.address, oid="0x" + "00" * 16) == {"status": "unknownOid"}


def test_update_leverage_changes_margin_and_respects_max(alice: Client) -> None:
    assert alice.update_leverage("BTC", 5) == {"status": "ok", "response": {"type": "default"}}
    alice.order("BTC", True, 0.01, 101_000, "Ioc")
    pos = alice.position("BTC")
    assert pos is not None and pos["leverage"] == {"type": "cross", "value": 5}
    assert float(pos["marginUsed"]) == pytest.approx(1_000.0 / 5)
    assert alice.update_leverage("BTC", 41) == {"status": "err", "response": "Invalid leverage value."}
    assert alice.update_leverage("BTC", 3, is_cross=False) == {
        "status": "err",
        "response": "Cannot switch leverage type with open position.",
    }
    assert alice.update_leverage("ETH", 3, is_cross=False)["status"] == "ok"


def test_hourly_funding_longs_pay_positive_rate(venue: Venue, alice: Client) -> None:
    alice.order("BTC", True, 0.01, 101_000, "Ioc")  # rate +0.0001: long pays
    alice.order("ETH", False, 1.0, 3_900, "Ioc")  # rate -0.00005: short pays
    before = float(alice.state()["marginSummary"]["accountValue"])
    venue.market.clock_ms = T0_MS + 30 * 60_000
    venue.tick()
    assert venue.info("userFunding", alice.address) == []
    venue.market.clock_ms = T0_MS + 3_600_000 + 5
    venue.tick()
    fundings = venue.info("userFunding", alice.address)
    assert [f["delta"]["coin"] for f in fundings] == ["BTC", "ETH"]
    btc = fundings[0]
    assert btc["time"] == T0_MS + 3_600_000 and btc["delta"]["type"] == "funding"
    assert float(btc["delta"]["usdc"]) == pytest.approx(-0.01 * 100_000 * 0.0001)
    assert float(fundings[1]["delta"]["usdc"]) == pytest.approx(-1.0 * 4_000 * 0.00005)
    after = float(alice.state()["marginSummary"]["accountValue"])
    assert after == pytest.approx(before - 0.1 - 0.2)
    pos = alice.position("BTC")
    assert pos is not None and float(pos["cumFunding"]["allTime"]) == pytest.approx(0.1)
    assert any(ch == "userFundings" for ch, _, _ in venue.events)


def test_clearinghouse_state_has_the_venue_shape(alice: Client) -> None:
    alice.order("ETH", True, 1.0, 4_100, "Ioc")
    state = alice.state()
    assert set(state) >= {
        "marginSummary",
        "crossMarginSummary",
        "crossMaintenanceMarginUsed",
        "withdrawable",
        "assetPositions",
        "time",
    }
    assert set(state["marginSummary"]) == {"accountValue", "totalNtlPos", "totalRawUsd", "totalMarginUsed"}
    entry = state["assetPositions"][0]
    assert entry["type"] == "oneWay"
    assert set(entry["position"]) == {
        "coin",
        "szi",
        "leverage",
        "entryPx",
        "positionValue",
        "unrealizedPnl",
        "returnOnEquity",
        "liquidationPx",
        "marginUsed",
        "maxLeverage",
        "cumFunding",
    }
    assert float(state["withdrawable"]) == pytest.approx(
        float(state["marginSummary"]["accountValue"]) - float(state["marginSummary"]["totalMarginUsed"])
    )


def test_liquidation_px_for_highly_levered_short_is_above_mid() -> None:
    small = Venue(fund_any_usd=200.0)
    poor = Client(small)
    poor.order("ETH", False, 1.0, 3_900, "Ioc")  # 4k notional on 200 USD
    pos = poor.position("ETH")
    assert pos is not None and pos["liquidationPx"] is not None
    assert 4_000 < float(pos["liquidationPx"]) < 4_000 * 1.06


def test_user_fills_by_time_filters_and_returns_newest_first(venue: Venue, alice: Client) -> None:
    alice.order("BTC", True, 0.01, 101_000, "Ioc")
    venue.market.clock_ms = T0_MS + 10_000
    alice.order("BTC", True, 0.01, 101_000, "Ioc")
    fills = venue.info("userFillsByTime", alice.address, startTime=T0_MS, endTime=T0_MS + 20_000)
    assert [f["time"] for f in fills] == [T0_MS + 10_000, T0_MS]
    assert venue.info("userFillsByTime", alice.address, startTime=T0_MS + 1) == fills[:1]
    assert len({f["tid"] for f in fills}) == 2


def test_same_inputs_give_same_oids_tids_and_hashes() -> None:
    def run() -> list[dict]:
        venue = Venue()
        client = Client(venue, wallet=_fixed_wallet())
        client.order("BTC", True, 0.01, 101_000, "Ioc")
        client.order("ETH", True, 0.5, 3_990, "Gtc", cloid=CLOID)
        venue.tick(ETH=3_980.0)
        return venue.info("userFills", client.address)

    assert run() == run()


def test_unknown_info_type_returns_none(venue: Venue) -> None:
    assert venue.core.handle_user_info({"type": "meta"}, T0_MS) is None


def _fixed_wallet():
    import eth_account

    return eth_account.Account.from_key("0x" + "11" * 32)


def test_resting_order_without_margin_when_reached_is_margin_canceled(venue: Venue, alice: Client) -> None:
    oid = alice.order("BTC", True, 1.5, 90_000, "Gtc")["resting"]["oid"]  # 1.5 x 100k / 20x = 7.5k: fits
    assert alice.update_leverage("BTC", 5)["status"] == "ok"  # now it would need 27k
    venue.tick(BTC=89_990.0)
    assert venue.info("userFills", alice.address) == []
    assert venue.info("orderStatus", alice.address, oid=oid)["order"]["status"] == "marginCanceled"
    assert venue.info("openOrders", alice.address) == []


def test_spot_state_is_empty_and_bad_user_is_not_answered(venue: Venue, alice: Client) -> None:
    assert venue.info("spotClearinghouseState", alice.address) == {"balances": []}
    assert venue.core.handle_user_info({"type": "openOrders", "user": "nobody"}, T0_MS) is None
    assert venue.core.handle_user_info({"type": "openOrders"}, T0_MS) is None
