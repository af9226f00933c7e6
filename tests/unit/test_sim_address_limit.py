"""The per-address request budget: buffer + 1 request per USDC traded, then 1 request per 10 s; a
batch of n counts n; refusals use nothing; cancels get the larger cap; agents spend their master's
budget; userRateLimit reports it."""

from __future__ import annotations

import eth_account
from hyperliquid.utils import signing as sdk

from simulator import venue_vocab as vt
from simulator.address_limit import AddressLimits
from tests.unit.test_sim_exchange_support import Client, Venue


def leverage(client: Client, value: int = 5) -> dict:
    return client.send({"type": "updateLeverage", "asset": 1, "isCross": True, "leverage": value})


def test_budget_runs_out_then_one_request_per_10_seconds() -> None:
    venue = Venue(initial_requests=3)
    alice = Client(venue)
    assert [leverage(alice)["status"] for _ in range(4)] == ["ok"] * 4  # 3 + the first throttled pass
    refused = leverage(alice)
    assert refused == {
        "status": "err",
        "response": "Too many cumulative requests sent (5 > 3) for cumulative volume traded $0. "
        "Place taker orders to free up 1 request per USDC traded.",
    }
    assert venue.info("userRateLimit", alice.address) == {
        "cumVlm": "0.0", "nRequestsUsed": 4, "nRequestsCap": 3, "nRequestsSurplus": 0,
    }
    venue.wall_ms += 9_999
    assert leverage(alice)["status"] == "err"  # refusals do not restart the window...
    venue.wall_ms += 1
    assert leverage(alice)["status"] == "ok"  # ...so the pass comes 10 s after the last one
    assert venue.info("userRateLimit", alice.address)["nRequestsUsed"] == 5
    assert leverage(alice)["response"].startswith("Too many cumulative requests sent (6 > 3)")


def test_batch_counts_its_length_and_trading_earns_requests() -> None:
    venue = Venue(initial_requests=3)
    alice = Client(venue)
    statuses = alice.bulk([Client.order_wire("ETH", True, 0.01, 3_000 + i) for i in range(3)])
    assert all("resting" in s for s in statuses)
    assert venue.info("userRateLimit", alice.address)["nRequestsUsed"] == 3
    assert leverage(alice)["status"] == "ok"  # throttled pass
    assert leverage(alice)["status"] == "err"
    alice.venue.wall_ms += 10_000
    assert "filled" in alice.order("ETH", True, 0.02, 4_100, "Ioc")  # ~$80 traded
    limit = venue.info("userRateLimit", alice.address)
    assert 80.0 < float(limit["cumVlm"]) < 81.0 and limit["nRequestsCap"] == 3 + int(float(limit["cumVlm"]))
    assert [leverage(alice)["status"] for _ in range(5)] == ["ok"] * 5


def test_cancels_have_a_larger_cap() -> None:
    venue = Venue(initial_requests=2)
    alice = Client(venue)
    oids = [s["resting"]["oid"] for s in alice.bulk([Client.order_wire("ETH", True, 0.01, 3_000 + i)
                                                      for i in range(2)])]
    assert leverage(alice)["status"] == "ok"  # throttled pass: 3 used of 2
    assert leverage(alice)["status"] == "err"
    assert alice.cancel("ETH", oids[0])["status"] == "ok"  # cancel cap min(2 + 100,000, 2 × 2) = 4
    assert alice.cancel("ETH", oids[1])["response"].startswith("Too many cumulative requests sent (5 > 4)")
    assert [o["oid"] for o in venue.info("openOrders", alice.address)] == [oids[1]]


def test_agent_spends_its_masters_budget() -> None:
    venue = Venue(initial_requests=2)
    master = Client(venue)
    agent = Client(venue, wallet=eth_account.Account.create(), register=False)
    nonce = master.next_nonce()
    action = {"type": "approveAgent", "agentAddress": agent.wallet.address, "agentName": "", "nonce": nonce}
    sig = sdk.sign_agent(master.wallet, action, venue.is_mainnet)
    body = {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None, "expiresAfter": None}
    assert master.post(body)[1]["status"] == "ok"
    assert leverage(agent)["status"] == "ok" and leverage(master)["status"] == "ok"
    assert venue.info("userRateLimit", master.address)["nRequestsUsed"] == 2
    assert venue.info("userRateLimit", agent.address)["nRequestsUsed"] == 0


def test_text_and_cap_arithmetic() -> None:
    limits = AddressLimits(10_000)
    assert limits.cap(87_457.46) == 97_457
    assert vt.too_many_requests(97_460, 97_457, 87_457.46).startswith(
        "Too many cumulative requests sent (97460 > 97457) for cumulative volume traded $87457.46."
    )


def test_reserved_requests_raise_the_cap_and_cost_usdc() -> None:
    venue = Venue(fund_any_usd=None, initial_requests=2)
    alice = Client(venue, deposit=100.0)
    assert alice.send({"type": "reserveRequestWeight", "weight": 1_000}) == {
        "status": "ok", "response": {"type": "default"}}
    limit = venue.info("userRateLimit", alice.address)
    assert (limit["nRequestsUsed"], limit["nRequestsCap"]) == (1, 1_002)
    assert venue.info("clearinghouseState", alice.address)["marginSummary"]["accountValue"] == "99.5"
    assert [alice.send({"type": "noop"})["status"] for _ in range(5)] == ["ok"] * 5
    assert alice.send({"type": "reserveRequestWeight", "weight": 1_000_000}) == {
        "status": "err", "response": vt.RESERVE_INSUFFICIENT}
