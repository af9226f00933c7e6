"""Account abstraction modes: a standard account keeps its USDC in the perp clearinghouse; a unified
account's USDC is in spotClearinghouseState and the perp accountValue is not its equity (0 when
flat), while margin checks still use the whole balance."""

from __future__ import annotations

import pytest

from tests.unit.test_sim_exchange_support import Client, Venue


@pytest.fixture
def venue() -> Venue:
    return Venue(fund_any_usd=None)


def test_unified_account_holds_usdc_in_spot_and_reports_no_perp_equity(venue: Venue) -> None:
    alice = Client(venue, register=False)
    venue.core.fund(alice.address, 5_000.0, unified=True)
    assert venue.info("userAbstraction", alice.address) == "unifiedAccount"
    perp = venue.info("clearinghouseState", alice.address)
    assert (perp["marginSummary"]["accountValue"], perp["withdrawable"]) == ("0.0", "0.0")
    assert venue.info("spotClearinghouseState", alice.address) == {"balances": [
        {"coin": "USDC", "token": 0, "total": "5000.0", "hold": "0.0", "entryNtl": "0.0"}]}

    assert "filled" in alice.order("ETH", True, 10.0, 4_100, "Ioc")  # $40k at 20x: needs the spot USDC
    alice.order("ETH", True, 1.0, 3_000, "Gtc")
    [usdc] = venue.info("spotClearinghouseState", alice.address)["balances"]
    assert float(usdc["total"]) == pytest.approx(5_000 - 40_004 * 0.00045, abs=0.01)
    assert float(usdc["hold"]) == pytest.approx(10 * 4_000 / 20 + 3_000 / 20, rel=1e-3)
    venue.tick(ETH=4_100.0)
    perp = venue.info("clearinghouseState", alice.address)
    upnl = float(perp["assetPositions"][0]["position"]["unrealizedPnl"])
    assert float(perp["marginSummary"]["accountValue"]) == pytest.approx(upnl) and upnl > 900


def test_standard_account_keeps_usdc_in_perp(venue: Venue) -> None:
    bob = Client(venue, deposit=5_000.0)
    assert venue.info("userAbstraction", bob.address) == "default"
    assert venue.info("clearinghouseState", bob.address)["marginSummary"]["accountValue"] == "5000.0"
    assert venue.info("spotClearinghouseState", bob.address) == {"balances": []}
