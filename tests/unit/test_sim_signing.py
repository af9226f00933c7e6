"""Venue-side signature recovery and nonce rules, checked against the official SDK's signer."""

from __future__ import annotations

import eth_account
import pytest
from hyperliquid.utils import signing as sdk

from simulator import venue_vocab as vt
from simulator.signing import (
    APPROVE_AGENT_PRIMARY,
    APPROVE_AGENT_TYPES,
    NONCE_FUTURE_WINDOW_MS,
    NONCE_PAST_WINDOW_MS,
    NonceBook,
    SignatureError,
    l1_action_hash,
    recover_l1_signer,
    recover_user_signed,
)

NOW = 1_764_000_000_000
ORDER_ACTION = {
    "type": "order",
    "orders": [
        {
            "a": 0,
            "b": True,
            "p": "100010",
            "s": "0.01",
            "r": False,
            "t": {"limit": {"tif": "Ioc"}},
            "c": "0x" + "12" * 16,
        }
    ],
    "grouping": "na",
}


@pytest.mark.parametrize("vault", [None, "0x" + "ab" * 20])
@pytest.mark.parametrize("expires", [None, NOW + 60_000])
def test_l1_action_hash_matches_sdk_hash(vault: str | None, expires: int | None) -> None:
    assert l1_action_hash(ORDER_ACTION, vault, NOW, expires) == sdk.action_hash(
        ORDER_ACTION, vault, NOW, expires
    )


@pytest.mark.parametrize("is_mainnet", [True, False])
def test_recover_l1_signer_sdk_signature_recovers_wallet(is_mainnet: bool) -> None:
    wallet = eth_account.Account.create()
    sig = sdk.sign_l1_action(wallet, ORDER_ACTION, None, NOW, None, is_mainnet)
    assert recover_l1_signer(ORDER_ACTION, sig, NOW, None, None, is_mainnet) == wallet.address.lower()


def test_recover_l1_signer_other_network_source_recovers_other_address() -> None:
    wallet = eth_account.Account.create()
    sig = sdk.sign_l1_action(wallet, ORDER_ACTION, None, NOW, None, True)
    assert recover_l1_signer(ORDER_ACTION, sig, NOW, None, None, False) != wallet.address.lower()


def test_recover_l1_signer_changed_action_or_nonce_recovers_other_address() -> None:
    wallet = eth_account.Account.create()
    sig = sdk.sign_l1_action(wallet, ORDER_ACTION, None, NOW, None, False)
    changed = {**ORDER_ACTION, "orders": [{**ORDER_ACTION["orders"][0], "s": "0.02"}]}
    assert recover_l1_signer(changed, sig, NOW, None, None, False) != wallet.address.lower()
    assert recover_l1_signer(ORDER_ACTION, sig, NOW + 1, None, None, False) != wallet.address.lower()


def test_recover_l1_signer_key_order_matters_like_msgpack() -> None:
    wallet = eth_account.Account.create()
    sig = sdk.sign_l1_action(wallet, ORDER_ACTION, None, NOW, None, False)
    reordered = {"grouping": "na", "type": "order", "orders": ORDER_ACTION["orders"]}
    assert recover_l1_signer(reordered, sig, NOW, None, None, False) != wallet.address.lower()


@pytest.mark.parametrize(
    "signature",
    [{"r": "0x0", "s": "0x0", "v": 27}, {"r": "zz", "s": "0x1", "v": 27}, {"r": "0x1"}, "not-a-dict"],
)
def test_recover_l1_signer_unrecoverable_signature_raises(signature: object) -> None:
    with pytest.raises(SignatureError):
        recover_l1_signer(ORDER_ACTION, signature, NOW, None, None, False)


@pytest.mark.parametrize("is_mainnet", [True, False])
def test_recover_user_signed_approve_agent_recovers_master(is_mainnet: bool) -> None:
    master = eth_account.Account.create()
    agent = eth_account.Account.create()
    action = {"type": "approveAgent", "agentAddress": agent.address, "agentName": "", "nonce": NOW}
    sig = sdk.sign_agent(master, action, is_mainnet)
    message = {k: action[k] for k in ("hyperliquidChain", "agentAddress", "agentName", "nonce")}
    signer = recover_user_signed(
        message, sig, APPROVE_AGENT_TYPES, APPROVE_AGENT_PRIMARY, action["signatureChainId"]
    )
    assert signer == master.address.lower()


def test_nonce_book_accepts_fresh_then_refuses_duplicate() -> None:
    book = NonceBook()
    assert book.check("0xa", NOW, NOW) is None
    book.record("0xa", NOW)
    assert book.check("0xa", NOW, NOW) == vt.duplicate_nonce(NOW)
    assert book.check("0xb", NOW, NOW) is None  # nonces are per signer


def test_nonce_book_window_bounds() -> None:
    book = NonceBook()
    assert book.check("0xa", NOW - NONCE_PAST_WINDOW_MS, NOW) == vt.nonce_too_old(NOW - NONCE_PAST_WINDOW_MS)
    assert book.check("0xa", NOW - NONCE_PAST_WINDOW_MS + 1, NOW) is None
    assert book.check("0xa", NOW + NONCE_FUTURE_WINDOW_MS, NOW) == vt.nonce_too_new(
        NOW + NONCE_FUTURE_WINDOW_MS
    )
    assert book.check("0xa", NOW + NONCE_FUTURE_WINDOW_MS - 1, NOW) is None


def test_nonce_book_after_100_nonces_refuses_below_smallest_kept() -> None:
    book = NonceBook()
    for i in range(100):
        book.record("0xa", NOW + 10 + i)
    assert book.check("0xa", NOW + 5, NOW) == vt.nonce_too_low(NOW + 5)
    assert book.check("0xa", NOW + 200, NOW) is None
    book.record("0xa", NOW + 200)  # evicts NOW + 10, the smallest
    assert book.check("0xa", NOW + 10, NOW) == vt.nonce_too_low(NOW + 10)
    assert book.check("0xa", NOW + 150, NOW) is None  # out-of-order but above the smallest kept
