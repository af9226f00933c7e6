"""Liquidation: an account whose value falls below its maintenance margin has its open orders
cancelled (liquidatedCanceled) and its positions closed against the book, each fill tagged with the
venue's liquidation record; healthy accounts are untouched."""

from __future__ import annotations

import pytest

from tests.unit.test_sim_exchange_support import Client, Venue


@pytest.fixture
def venue() -> Venue:
    return Venue(fund_any_usd=None)


def test_underwater_account_is_liquidated_with_the_venues_records(venue: Venue) -> None:
    alice = Client(venue, deposit=1_000.0)
    healthy = Client(venue, deposit=100_000.0)
    alice.update_leverage("ETH", 25)
    assert "filled" in alice.order("ETH", True, 6.0, 4_100, "Ioc")  # $24k on $1k: 24x
    resting = alice.order("ETH", True, 0.1, 3_000, "Gtc")["resting"]["oid"]
    assert "filled" in healthy.order("ETH", True, 1.0, 4_100, "Ioc")
    venue.tick(ETH=3_900.0)  # -$600: value ~$390, below the 1/50 maintenance margin of ~$470
    assert alice.position("ETH") is None
    fill = venue.info("userFills", alice.address)[0]
    assert fill["liquidation"] == {"liquidatedUser": alice.address, "markPx": "3900.0", "method": "market"}
    assert fill["dir"] == "Close Long" and fill["crossed"] is True and fill["side"] == "A"
    assert venue.info("orderStatus", alice.address, oid=resting)["order"]["status"] == "liquidatedCanceled"
    assert venue.info("openOrders", alice.address) == []
    assert healthy.position("ETH") is not None
    updates = [u["status"] for ch, who, p in venue.events if ch == "orderUpdates" and who == alice.address
               for u in p]
    assert "liquidatedCanceled" in updates


def test_account_above_maintenance_is_not_liquidated(venue: Venue) -> None:
    bob = Client(venue, deposit=1_000.0)
    assert "filled" in bob.order("ETH", True, 4.0, 4_100, "Ioc")  # 16x
    venue.tick(ETH=3_850.0)  # -$600: value ~$400 > maintenance ~$308
    assert bob.position("ETH") is not None


def test_gap_below_two_thirds_of_maintenance_goes_to_the_backstop(venue: Venue) -> None:
    alice = Client(venue, deposit=1_000.0)
    alice.update_leverage("ETH", 25)
    assert "filled" in alice.order("ETH", True, 6.0, 4_100, "Ioc")
    venue.tick(ETH=3_850.0)  # -$900 at once: value ~$87 < 2/3 of the ~$462 maintenance margin
    assert alice.position("ETH") is None
    fill = venue.info("userFills", alice.address)[0]
    assert fill["liquidation"]["method"] == "backstop" and fill["px"] == "3850.0"
    assert alice.state()["marginSummary"]["accountValue"] == "0.0"
