"""Account identity on the strict venue (the default): only funded accounts act, unknown signers and
never-funded accounts get the venue's refusals, agents act for the master that approved them and
have no account of their own; fund-any keeps the old kindness."""

from __future__ import annotations

import eth_account
import pytest
from hyperliquid.utils import signing as sdk

from simulator import venue_vocab as vt
from simulator.cli import parse_options
from tests.unit.test_sim_exchange_support import Client, Venue


@pytest.fixture
def strict() -> Venue:
    return Venue(fund_any_usd=None)


def approve(venue: Venue, master: Client, agent_address: str) -> dict:
    nonce = master.next_nonce()
    action = {
        "type": "approveAgent",
        "agentAddress": agent_address,
        "agentName": "bot",
        "nonce": nonce,
    }
    sig = sdk.sign_agent(master.wallet, action, venue.is_mainnet)
    status, body = master.post(
        {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None, "expiresAfter": None}
    )
    assert status == 200
    return body


def ioc_buy(client: Client) -> dict:
    """The whole answer to one marketable ETH buy (not asserting it was accepted)."""
    return client.send(sdk.order_wires_to_order_action([Client.order_wire("ETH", True, 0.01, 4_100, "Ioc")]))


def test_unknown_signer_is_refused_and_a_query_does_not_fund_it(strict: Venue) -> None:
    stranger = Client(strict, register=False)
    refusal = {"status": "err", "response": f"User or API Wallet {stranger.address} does not exist."}
    assert stranger.send({"type": "scheduleCancel"}) == refusal
    state = strict.info("clearinghouseState", stranger.address)
    assert state["marginSummary"]["accountValue"] == "0.0" and state["assetPositions"] == []
    assert ioc_buy(stranger) == refusal  # still unknown after the query


def test_account_without_deposit_must_deposit(strict: Venue) -> None:
    empty = Client(strict, deposit=0.0)
    body = empty.send({"type": "scheduleCancel"})
    assert body == {"status": "err", "response": vt.must_deposit(empty.address)}
    assert vt.must_deposit(empty.address) == f"Must deposit before performing actions. User: {empty.address}"


def test_funded_account_trades_with_exactly_its_deposit(strict: Venue) -> None:
    alice = Client(strict, deposit=2_500.0)
    assert strict.info("clearinghouseState", alice.address)["marginSummary"]["accountValue"] == "2500.0"
    assert "filled" in alice.order("ETH", True, 0.01, 4_100, "Ioc")
    strict.core.fund(alice.address, 500.0)  # a second deposit adds up
    value = float(strict.info("clearinghouseState", alice.address)["marginSummary"]["accountValue"])
    assert 2_990 < value < 3_000  # 3,000 deposited, less the taker fee and the spread


def test_approved_agent_trades_for_the_master_and_has_no_account(strict: Venue) -> None:
    master = Client(strict, deposit=5_000.0)
    agent = Client(strict, register=False)
    assert ioc_buy(agent)["response"].endswith(" does not exist.")
    assert approve(strict, master, agent.wallet.address) == {"status": "ok", "response": {"type": "default"}}
    assert "filled" in agent.order("ETH", True, 0.01, 4_100, "Ioc")
    positions = strict.info("clearinghouseState", master.address)["assetPositions"]
    assert [(p["position"]["coin"], p["position"]["szi"]) for p in positions] == [("ETH", "0.01")]
    own = strict.info("clearinghouseState", agent.address)
    assert own["assetPositions"] == [] and own["marginSummary"]["accountValue"] == "0.0"
    assert strict.info("userFills", agent.address) == []
    with pytest.raises(ValueError, match="agent"):
        strict.core.fund(agent.address, 100.0)


def test_user_role_names_users_agents_with_their_master_and_missing(strict: Venue) -> None:
    master = Client(strict, deposit=1_000.0)
    agent = Client(strict, register=False)
    stranger = eth_account.Account.create()
    assert approve(strict, master, agent.wallet.address)["status"] == "ok"
    assert strict.info("userRole", master.address) == {"role": "user"}
    assert strict.info("userRole", agent.address) == {"role": "agent", "data": {"user": master.address}}
    assert strict.info("userRole", stranger.address) == {"role": "missing"}
    fund_any = Venue(fund_any_usd=1_000.0)  # like any user query, it funds an address on first sight
    assert fund_any.info("userRole", stranger.address) == {"role": "user"}


def test_unfunded_master_cannot_approve_an_agent(strict: Venue) -> None:
    master = Client(strict, register=False)
    agent = eth_account.Account.create()
    body = approve(strict, master, agent.address)
    assert body == {"status": "err", "response": vt.must_deposit(master.address)}


def test_fund_any_funds_on_first_query_but_never_an_agent() -> None:
    venue = Venue(fund_any_usd=1_000.0)
    master = Client(venue, register=False)
    assert venue.info("clearinghouseState", master.address)["marginSummary"]["accountValue"] == "1000.0"
    agent = Client(venue, register=False)
    assert approve(venue, master, agent.wallet.address)["status"] == "ok"
    assert venue.info("clearinghouseState", agent.address)["marginSummary"]["accountValue"] == "0.0"
    assert "filled" in agent.order("ETH", True, 0.01, 4_100, "Ioc")


def test_cli_funding_flags() -> None:
    addr = "0x" + "Ab" * 20
    opts = parse_options(["--fund", f"{addr}=1500", "--fund", f"{'0x' + '01' * 20}=0"])
    assert opts.funded == ((addr.lower(), 1500.0), ("0x" + "01" * 20, 0.0)) and opts.fund_any_usd is None
    assert parse_options(["--fund-any", "10000"]).fund_any_usd == 10_000.0
    bad_flags = (["--fund", "0x12=5"], ["--fund", f"{addr}=lots"], ["--fund", f"{addr}=-1"],
                 ["--fund-any", "-5"])
    for bad in bad_flags:
        with pytest.raises(SystemExit) as exc:
            parse_options(bad)
        assert exc.value.code == 2
