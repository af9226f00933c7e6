"""Rejections the venue makes that the simulator used to let through: a batch that fails on its
payload alone gets one error and places nothing; the 80% price band against the reference price;
the 1,000 open-order cap (one more per 5M USDC traded)."""

from __future__ import annotations

import pytest
from hyperliquid.utils import signing as sdk

from tests.unit.test_sim_exchange_support import Client, Venue

CLOID = "0x" + "00" * 15 + "2a"
BAND = "Order price cannot be more than 80% away from the reference price"


@pytest.fixture
def venue() -> Venue:
    return Venue()


@pytest.fixture
def alice(venue: Venue) -> Client:
    return Client(venue)


def test_one_invalid_price_refuses_the_whole_batch(venue: Venue, alice: Client) -> None:
    statuses = alice.bulk([
        Client.order_wire("ETH", True, 0.01, 3_990, "Gtc"),
        Client.order_wire("ETH", True, 0.01, 3_990.123, "Gtc"),  # 3 decimals: ETH allows 6 - 4 = 2
        Client.order_wire("BTC", True, 0.01, 99_000, "Gtc"),
    ])
    assert statuses == [{"error": "Order has invalid price."}]
    assert venue.info("openOrders", alice.address) == []


def test_invalid_trigger_price_and_empty_batch_are_refused_whole(venue: Venue, alice: Client) -> None:
    stop = Client.order_wire("ETH", False, 0.01, 3_500, "Gtc", reduce_only=True)
    stop["t"] = {"trigger": {"isMarket": True, "triggerPx": "3500.001", "tpsl": "sl"}}
    assert alice.bulk([stop]) == [{"error": "Order has invalid price."}]
    body = alice.send(sdk.order_wires_to_order_action([]))
    assert body["response"]["data"]["statuses"] == [{"error": "Order batch is empty."}]


def test_price_band_is_per_order_and_recorded_as_oracle_rejected(venue: Venue, alice: Client) -> None:
    statuses = alice.bulk([
        Client.order_wire("ETH", True, 0.01, 7_201, "Gtc", cloid=CLOID),  # > 1.8 x the 4,000 reference
        Client.order_wire("ETH", True, 0.01, 7_199, "Ioc"),  # inside the band: fills at the ask
    ])
    assert statuses[0] == {"error": BAND} and "filled" in statuses[1]
    status = venue.info("orderStatus", alice.address, oid=CLOID)
    assert status["order"]["status"] == "oracleRejected"


def test_open_order_cap_is_1000_plus_one_per_5m_traded(venue: Venue, alice: Client) -> None:
    wires = [Client.order_wire("ETH", True, 0.01, 3_000, "Gtc") for _ in range(1_000)]
    assert all("resting" in s for s in alice.bulk(wires))
    refused = alice.order("ETH", True, 0.01, 3_000, "Gtc")
    assert refused == {"error": "Too many open orders: the simulator's open-order cap is reached. asset=1"}
    venue.core.fund(alice.address, 0.0, volume_usd=5_000_000.0)
    assert "resting" in alice.order("ETH", True, 0.01, 3_000, "Gtc")
    assert "error" in alice.order("ETH", True, 0.01, 3_000, "Gtc")
    assert len(venue.info("openOrders", alice.address)) == 1_001
