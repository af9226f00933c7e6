"""Exchange core authentication and account-level actions: signatures (mainnet and testnet), unknown
signers, nonce replay and window, approved agents, scheduleCancel, malformed bodies, post count."""

from __future__ import annotations

import copy
from collections.abc import Callable

import eth_account
import pytest
from hyperliquid.utils import signing as sdk

from simulator import venue_vocab as vt
from tests.unit.test_sim_exchange_support import T0_MS, Client, Venue

DAY_MS = 86_400_000


@pytest.mark.parametrize("is_mainnet", [True, False])
def test_signed_order_accepted_on_matching_network(is_mainnet: bool) -> None:
    venue = Venue(is_mainnet=is_mainnet)
    client = Client(venue)
    assert "resting" in client.order("BTC", True, 0.01, 99_000, "Gtc")


def test_order_signed_for_other_network_is_refused_as_unknown_signer() -> None:
    venue = Venue(is_mainnet=True)
    client = Client(venue)
    action = sdk.order_wires_to_order_action([Client.order_wire("BTC", True, 0.01, 99_000)])
    nonce = client.next_nonce()
    sig = sdk.sign_l1_action(client.wallet, action, None, nonce, None, False)  # testnet source "b"
    status, body = client.post(
        {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None, "expiresAfter": None}
    )
    assert status == 200 and body["status"] == "err"
    assert body["response"].startswith("User or API Wallet 0x") and body["response"].endswith(
        " does not exist."
    )
    assert client.address not in body["response"]


def test_tampered_action_is_refused_and_places_nothing(venue: Venue) -> None:
    client = Client(venue)
    signed = client.signed(sdk.order_wires_to_order_action([Client.order_wire("BTC", True, 0.01, 99_000)]))
    tampered = copy.deepcopy(signed)
    tampered["action"]["orders"][0]["s"] = "0.02"
    status, body = client.post(tampered)
    assert status == 200 and body["status"] == "err" and "does not exist." in body["response"]
    assert venue.info("openOrders", client.address) == []


def test_tampered_signature_bytes_are_refused(venue: Venue) -> None:
    client = Client(venue)
    signed = client.signed({"type": "scheduleCancel"})
    r = int(signed["signature"]["r"], 16)
    signed["signature"]["r"] = hex(r ^ 1)
    _status, body = client.post(signed)
    assert body["status"] == "err"
    assert body["response"] == vt.BAD_SIGNATURE or body["response"].endswith(" does not exist.")


def test_unrecoverable_signature_gets_invalid_signature_text(venue: Venue) -> None:
    client = Client(venue)
    signed = client.signed({"type": "scheduleCancel"})
    signed["signature"] = {"r": "0x0", "s": "0x0", "v": 27}
    assert client.post(signed) == (200, {"status": "err", "response": "Invalid signature."})


def test_wallet_never_seen_by_the_venue_is_unknown(venue: Venue) -> None:
    stranger = Client(venue, register=False)
    body = stranger.send({"type": "scheduleCancel"})
    assert body == {"status": "err", "response": f"User or API Wallet {stranger.address} does not exist."}
    venue.info("clearinghouseState", stranger.address)  # first appearance funds the address
    assert stranger.send({"type": "scheduleCancel"})["status"] == "ok"
    assert venue.info("clearinghouseState", stranger.address)["marginSummary"]["accountValue"] == "10000.0"


def test_replayed_nonce_is_refused_and_not_executed_twice(venue: Venue) -> None:
    client = Client(venue)
    signed = client.signed(
        sdk.order_wires_to_order_action([Client.order_wire("BTC", True, 0.01, 101_000, "Ioc")])
    )
    assert client.post(signed)[1]["status"] == "ok"
    replay = client.post(signed)
    assert replay == (200, {"status": "err", "response": f"Invalid nonce: duplicate nonce {signed['nonce']}"})
    assert len(venue.info("userFills", client.address)) == 1


@pytest.mark.parametrize(
    ("offset_ms", "text"),
    [(-2 * DAY_MS, vt.nonce_too_old), (DAY_MS, vt.nonce_too_new)],
)
def test_nonce_outside_window_is_refused(venue: Venue, offset_ms: int, text: Callable[[int], str]) -> None:
    client = Client(venue)
    nonce = venue.wall_ms + offset_ms
    assert client.send({"type": "scheduleCancel"}, nonce=nonce) == {"status": "err", "response": text(nonce)}


def test_nonce_window_follows_the_venue_wall_clock(venue: Venue) -> None:
    client = Client(venue)
    stale = venue.wall_ms
    venue.wall_ms += 3 * DAY_MS
    assert client.send({"type": "scheduleCancel"}, nonce=stale)["response"] == vt.nonce_too_old(stale)


def test_nonce_below_the_100_highest_is_refused(venue: Venue) -> None:
    client = Client(venue)
    for i in range(100):
        assert client.send({"type": "scheduleCancel"}, nonce=T0_MS + 100 + i)["status"] == "ok"
    assert client.send({"type": "scheduleCancel"}, nonce=T0_MS + 50) == {
        "status": "err",
        "response": vt.nonce_too_low(T0_MS + 50),
    }


def _approve(venue: Venue, master: Client, agent_address: str, name: str | None = None) -> tuple[int, object]:
    nonce = master.next_nonce()
    action = {"type": "approveAgent", "agentAddress": agent_address, "agentName": name or "", "nonce": nonce}
    sig = sdk.sign_agent(master.wallet, action, venue.is_mainnet)
    if name is None:
        del action["agentName"]  # as Exchange.approve_agent does
    return master.post(
        {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None, "expiresAfter": None}
    )


@pytest.mark.parametrize("name", [None, "bot-1"])
def test_approved_agent_trades_for_its_master(venue: Venue, name: str | None) -> None:
    master = Client(venue)
    agent = Client(venue, wallet=eth_account.Account.create(), register=False)
    assert _approve(venue, master, agent.wallet.address, name) == (
        200,
        {"status": "ok", "response": {"type": "default"}},
    )
    status = agent.order("ETH", True, 1.0, 4_100, "Ioc")
    assert status["filled"]["totalSz"] == "1.0"
    assert master.position("ETH") is not None
    assert venue.info("userFills", master.address)[0]["oid"] == status["filled"]["oid"]


def test_unapproved_agent_is_refused(venue: Venue) -> None:
    Client(venue)
    agent = Client(venue, register=False)
    assert (
        agent.send({"type": "scheduleCancel"})["response"]
        == f"User or API Wallet {agent.address} does not exist."
    )


def test_approve_agent_signed_for_other_chain_is_refused() -> None:
    venue = Venue(is_mainnet=True)
    master = Client(venue)
    nonce = master.next_nonce()
    action = {
        "type": "approveAgent",
        "agentAddress": eth_account.Account.create().address,
        "agentName": "",
        "nonce": nonce,
    }
    sig = sdk.sign_agent(master.wallet, action, False)
    body = {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None, "expiresAfter": None}
    assert master.post(body) == (200, {"status": "err", "response": vt.WRONG_CHAIN})


def test_schedule_cancel_too_early_is_refused(venue: Venue) -> None:
    client = Client(venue)
    assert client.schedule_cancel(venue.wall_ms + 4_999) == {
        "status": "err",
        "response": vt.SCHEDULE_CANCEL_TOO_EARLY,
    }


def test_schedule_cancel_cancels_all_open_orders_when_due(venue: Venue) -> None:
    client = Client(venue)
    other = Client(venue)
    client.order("BTC", True, 0.01, 99_000, "Gtc")
    client.order("ETH", False, 0.01, 4_500, "Gtc", cloid="0x" + "cd" * 16)
    other.order("BTC", True, 0.01, 99_000, "Gtc")
    assert client.schedule_cancel(venue.wall_ms + 10_000) == {"status": "ok", "response": {"type": "default"}}
    venue.wall_ms += 9_000
    venue.tick()
    assert len(venue.info("openOrders", client.address)) == 2
    venue.wall_ms += 1_000
    venue.tick()
    assert venue.info("openOrders", client.address) == []
    assert len(venue.info("openOrders", other.address)) == 1
    status = venue.info("orderStatus", client.address, oid="0x" + "cd" * 16)
    assert status["order"]["status"] == "scheduledCancel"


def test_schedule_cancel_without_time_unsets_it(venue: Venue) -> None:
    client = Client(venue)
    client.order("BTC", True, 0.01, 99_000, "Gtc")
    client.schedule_cancel(venue.wall_ms + 10_000)
    assert client.schedule_cancel(None)["status"] == "ok"
    venue.wall_ms += 60_000
    venue.tick()
    assert len(venue.info("openOrders", client.address)) == 1


@pytest.mark.parametrize(
    "body",
    [
        "not a dict",
        {"action": {"type": "order"}, "nonce": "1", "signature": {}},
        {"action": [], "nonce": 1, "signature": {}},
        {"action": {"type": "order"}, "nonce": 1},
    ],
)
def test_malformed_bodies_get_422_text_and_are_counted(venue: Venue, body: object) -> None:
    assert venue.core.handle_exchange(body, T0_MS) == (422, vt.MALFORMED_REQUEST)  # type: ignore[arg-type]
    assert venue.core.exchange_post_count() == 1


def test_malformed_order_wire_refuses_whole_batch_before_execution(venue: Venue) -> None:
    client = Client(venue)
    good = Client.order_wire("BTC", True, 0.01, 101_000, "Ioc")
    bad = {**good, "b": "yes"}
    status, body = client.post(client.signed({"type": "order", "orders": [good, bad], "grouping": "na"}))
    assert (status, body) == (422, vt.MALFORMED_REQUEST)
    assert venue.info("userFills", client.address) == []


def test_exchange_post_count_counts_every_body(venue: Venue) -> None:
    client = Client(venue)
    client.order("BTC", True, 0.01, 99_000, "Gtc")
    client.send({"type": "scheduleCancel"}, nonce=1)
    venue.core.handle_exchange({}, T0_MS)
    assert venue.core.exchange_post_count() == 3


def test_unknown_action_type_is_refused(venue: Venue) -> None:
    client = Client(venue)
    assert client.send({"type": "usdSend"}) == {"status": "err", "response": vt.UNKNOWN_ACTION}


@pytest.fixture
def venue() -> Venue:
    return Venue()


@pytest.mark.parametrize(("delta_ms", "ok"), [(-1, False), (60_000, True)])
def test_expires_after_is_signed_and_enforced(venue: Venue, delta_ms: int, ok: bool) -> None:
    client = Client(venue)
    nonce = client.next_nonce()
    expires = venue.wall_ms + delta_ms
    action = {"type": "scheduleCancel"}
    sig = sdk.sign_l1_action(client.wallet, action, None, nonce, expires, venue.is_mainnet)
    body = {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": None, "expiresAfter": expires}
    expected = (
        {"status": "ok", "response": {"type": "default"}}
        if ok
        else {"status": "err", "response": vt.action_expired(expires)}
    )
    assert client.post(body) == (200, expected)


def test_vault_actions_are_refused(venue: Venue) -> None:
    client = Client(venue)
    vault = "0x" + "ab" * 20
    nonce = client.next_nonce()
    action = {"type": "scheduleCancel"}
    sig = sdk.sign_l1_action(client.wallet, action, vault, nonce, None, venue.is_mainnet)
    body = {"action": action, "nonce": nonce, "signature": sig, "vaultAddress": vault, "expiresAfter": None}
    assert client.post(body) == (200, {"status": "err", "response": vt.VAULT_UNSUPPORTED})
