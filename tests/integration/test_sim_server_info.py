"""The /info types the simulator used to answer with HTTP 422, over real HTTP with the official SDK
where it has a method: perpDexs, spotMetaAndAssetCtxs, userFees, historicalOrders,
userNonFundingLedgerUpdates (deposits), userRateLimit, recentTrades, predictedFundings,
activeAssetData, userAbstraction; and l2Book aggregated to nSigFigs."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import eth_account
from hyperliquid.exchange import Exchange

from tests.fixtures.sim_fixtures import SimulatorProcess

COIN = "ETH"
START_MS = 1_764_000_000_000


def ok(sim: SimulatorProcess, body: dict[str, Any]) -> Any:
    resp = sim.info(body)
    assert resp.status_code == 200, resp.text
    return resp.json()


def test_new_info_types_answer_in_the_venue_shapes(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    wallet = eth_account.Account.create()
    address = wallet.address.lower()
    sim = simulator_factory("--speed", "0", "--start-ms", str(START_MS), "--rate-limit-per-min", "0",
                            "--fund", f"{address}=2500")
    exchange = Exchange(wallet, sim.base_url)
    info = exchange.info
    mid = float(info.all_mids()[COIN])
    szd = info.asset_to_sz_decimals[info.name_to_asset(COIN)]
    sz = round(30 / mid, szd)
    filled = exchange.market_open(COIN, True, sz)["response"]["data"]["statuses"][0]["filled"]
    below = round(float(f"{mid * 0.9:.5g}"), 6 - szd)
    resting = exchange.order(COIN, True, sz, below, {"limit": {"tif": "Gtc"}})
    rest_oid = resting["response"]["data"]["statuses"][0]["resting"]["oid"]

    assert info.perp_dexs() == [None]
    assert info.spot_meta_and_asset_ctxs() == [{"universe": [], "tokens": []}, []]
    fees = info.user_fees(address)
    assert (fees["userCrossRate"], fees["userAddRate"]) == ("0.00045", "0.00015")
    history = info.historical_orders(address)
    assert [(h["order"]["oid"], h["status"]) for h in history] == [
        (rest_oid, "open"), (filled["oid"], "filled")]
    assert history[0]["order"]["orderType"] == "Limit"
    [deposit] = info.user_non_funding_ledger_updates(address, 0)
    assert deposit["delta"] == {"type": "deposit", "usdc": "2500.0"} and deposit["time"] == START_MS
    limit = info.user_rate_limit(address)
    assert limit["nRequestsUsed"] == 2 and limit["nRequestsCap"] == 10_000 + int(float(limit["cumVlm"]))

    [trade] = ok(sim, {"type": "recentTrades", "coin": COIN})
    assert trade["tid"] and trade["side"] == "B" and trade["users"][0] == address
    predicted = dict(ok(sim, {"type": "predictedFundings"}))
    [[venue, funding]] = predicted[COIN]
    assert venue == "HlPerp" and funding["fundingIntervalHours"] == 1
    assert funding["nextFundingTime"] > START_MS
    active = ok(sim, {"type": "activeAssetData", "user": address, "coin": COIN})
    assert active["coin"] == COIN and active["leverage"]["value"] >= 1
    assert float(active["availableToTrade"][0]) > 0 and float(active["maxTradeSzs"][0]) > 0
    assert ok(sim, {"type": "userAbstraction", "user": address}) == "default"


def test_l2_book_aggregates_to_n_significant_figures(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    sim = simulator_factory("--speed", "0", "--start-ms", str(START_MS), "--rate-limit-per-min", "0")
    full = ok(sim, {"type": "l2Book", "coin": COIN})
    mid = (float(full["levels"][0][0]["px"]) + float(full["levels"][1][0]["px"])) / 2
    for n_sig in (2, 3):
        book = ok(sim, {"type": "l2Book", "coin": COIN, "nSigFigs": n_sig})
        bids, asks = ([float(lv["px"]) for lv in side] for side in book["levels"])
        assert 1 <= len(bids) <= 20 and 1 <= len(asks) <= 20
        assert all(len(f"{Decimal(str(p)).normalize():e}".split("e")[0].replace(".", "")) <= n_sig
                   for p in bids + asks)
        assert bids == sorted(bids, reverse=True) and asks == sorted(asks) and bids[0] <= mid <= asks[0]
        assert float(book["levels"][0][0]["sz"]) >= float(full["levels"][0][0]["sz"])
    assert sim.info({"type": "l2Book", "coin": COIN, "nSigFigs": 7}).status_code == 422
