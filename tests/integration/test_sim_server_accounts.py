"""Account identity over real HTTP with the official SDK as the client: a strict simulator (the
default) trades only for funded accounts (--fund, the loopback admin fund call) and for the agent
wallets their masters approved."""

from __future__ import annotations

from collections.abc import Callable

import eth_account
from hyperliquid.exchange import Exchange
from hyperliquid.info import Info

from tests.fixtures.sim_fixtures import SimulatorProcess

COIN = "ETH"


def _sz(info: Info, usd: float) -> float:
    mid = float(info.all_mids()[COIN])
    return round(usd / mid, info.asset_to_sz_decimals[info.name_to_asset(COIN)])


def test_strict_venue_trades_only_for_funded_accounts_and_approved_agents(
    simulator_factory: Callable[..., SimulatorProcess],
) -> None:
    master = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--rate-limit-per-min", "0", "--fund", f"{master.address}=5000")
    info = Info(sim.base_url, skip_ws=True)
    assert info.user_state(master.address)["marginSummary"]["accountValue"] == "5000.0"

    stranger = eth_account.Account.create()
    refused = Exchange(stranger, sim.base_url).market_open(COIN, True, _sz(info, 50))
    unknown = f"User or API Wallet {stranger.address.lower()} does not exist."
    assert refused == {"status": "err", "response": unknown}
    # a query funds nothing
    assert info.user_state(stranger.address)["marginSummary"]["accountValue"] == "0.0"

    approved, agent_key = Exchange(master, sim.base_url).approve_agent("bot")
    assert approved == {"status": "ok", "response": {"type": "default"}}
    agent = eth_account.Account.from_key(agent_key)
    as_agent = Exchange(agent, sim.base_url, account_address=master.address)
    filled = as_agent.market_open(COIN, True, _sz(info, 50))
    assert "filled" in filled["response"]["data"]["statuses"][0], filled
    positions = info.user_state(master.address)["assetPositions"]
    assert [p["position"]["coin"] for p in positions] == [COIN]
    agent_state = info.user_state(agent.address)
    assert agent_state["assetPositions"] == [] and agent_state["marginSummary"]["accountValue"] == "0.0"

    sim.fund(stranger.address, 1_000.0)
    now_funded = Exchange(stranger, sim.base_url).market_open(COIN, False, _sz(info, 50))
    assert "filled" in now_funded["response"]["data"]["statuses"][0], now_funded


def test_account_funded_with_nothing_must_deposit(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    wallet = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--fund", f"{wallet.address}=0")
    answer = Exchange(wallet, sim.base_url).schedule_cancel(None)
    assert answer == {
        "status": "err",
        "response": f"Must deposit before performing actions. User: {wallet.address.lower()}",
    }


def test_address_request_budget_over_http(simulator_factory: Callable[..., SimulatorProcess]) -> None:
    wallet = eth_account.Account.create()
    sim = simulator_factory("--speed", "0", "--rate-limit-per-min", "0", "--fund", f"{wallet.address}=1000",
                            "--address-request-buffer", "2")
    exchange = Exchange(wallet, sim.base_url)
    answers = [exchange.update_leverage(5, COIN) for _ in range(4)]
    assert [a["status"] for a in answers] == ["ok", "ok", "ok", "err"]  # 2 + one throttled pass
    assert answers[3]["response"].startswith("Too many cumulative requests sent (4 > 2) for cumulative")
    assert exchange.info.user_rate_limit(wallet.address) == {
        "cumVlm": "0.0", "nRequestsUsed": 3, "nRequestsCap": 2, "nRequestsSurplus": 0,
    }
