"""ActionSigner, nonces, cloids, secrets and the venue's precision rules (engine.venue.exchange_client).

Signatures are checked the way the venue (and the official SDK) checks them: recover the signer
from the JSON body with `hyperliquid.utils.signing.recover_agent_or_user_from_l1_action`.
"""

from __future__ import annotations

import itertools
import json
import pickle
import threading
from collections.abc import Callable
from typing import Any

import pytest
import requests
from eth_account import Account
from hyperliquid.utils import signing
from hyperliquid.utils.types import Cloid
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.enums import ExchangeActionType, RoundDirection, Tif
from engine.venue.exchange_client import (
    ActionSigner,
    ExchangeTransport,
    NonceSource,
    OrderSpec,
    SignedAction,
    SigningKey,
    aggressive_limit_price,
    cloid_for,
    is_valid_cloid,
    is_valid_price,
    is_valid_size,
    max_price_decimals,
    round_price,
    round_size,
    validate_cloid,
)

SECRET = "0x" + "4f" * 32


def make_signer(*, is_mainnet: bool = False, clock: list[int] | None = None) -> ActionSigner:
    source = NonceSource(lambda: clock[0]) if clock is not None else None
    return ActionSigner(SigningKey.from_hex(SECRET), is_mainnet=is_mainnet, nonces=source)


def recover(body: bytes, *, is_mainnet: bool = False) -> str:
    payload = json.loads(body)
    return signing.recover_agent_or_user_from_l1_action(
        payload["action"],
        payload["signature"],
        payload["vaultAddress"],
        payload["nonce"],
        payload["expiresAfter"],
        is_mainnet,
    )


# --- signing ------------------------------------------------------------------------------------


def test_signed_order_batch_recovers_to_the_signer_address() -> None:
    signer = make_signer()
    orders = [
        OrderSpec(asset=0, is_buy=True, limit_px=65000.0, sz=0.001, tif=Tif.GTC, cloid=cloid_for("intent-1")),
        OrderSpec(asset=3, is_buy=False, limit_px=1.0357, sz=208.7, reduce_only=True, tif=Tif.IOC),
    ]
    signed = signer.sign_orders(orders)
    assert recover(signed.body) == signer.address == Account.from_key(SECRET).address
    assert signed.action_type is ExchangeActionType.ORDER and signed.batch_len == 2
    assert signed.cloids == (cloid_for("intent-1"), None)


def test_signed_order_body_equals_what_the_sdk_builds_for_the_same_nonce() -> None:
    clock = [1_700_000_000_000]
    signer = make_signer(clock=clock)
    cloid = cloid_for("intent-7")
    signed = signer.sign_orders(
        [OrderSpec(asset=1, is_buy=True, limit_px=1903.9, sz=0.05, tif=Tif.ALO, cloid=cloid)]
    )
    wire = signing.order_request_to_order_wire(
        {
            "coin": "ETH",
            "is_buy": True,
            "sz": 0.05,
            "limit_px": 1903.9,
            "order_type": {"limit": {"tif": "Alo"}},
            "reduce_only": False,
            "cloid": Cloid(cloid),
        },
        1,
    )
    action = signing.order_wires_to_order_action([wire], None, "na")
    sdk_sig = signing.sign_l1_action(Account.from_key(SECRET), action, None, clock[0], None, False)
    assert signed.payload() == {
        "action": action,
        "nonce": clock[0],
        "signature": sdk_sig,
        "vaultAddress": None,
        "expiresAfter": None,
    }
    assert list(signed.payload()["action"]["orders"][0]) == ["a", "b", "p", "s", "r", "t", "c"]


def test_signature_is_network_specific_and_tampering_changes_the_signer() -> None:
    signer = make_signer(is_mainnet=False)
    signed = signer.sign_orders([OrderSpec(asset=0, is_buy=True, limit_px=100.0, sz=1.0)])
    assert recover(signed.body, is_mainnet=True) != signer.address
    payload = signed.payload()
    payload["action"]["orders"][0]["p"] = "101"
    tampered = json.dumps(payload).encode()
    assert recover(tampered) != signer.address


def test_for_base_url_signs_mainnet_only_for_the_mainnet_url() -> None:
    key = SigningKey.from_hex(SECRET)
    assert ActionSigner.for_base_url(key, "https://api.hyperliquid.xyz/").is_mainnet
    assert not ActionSigner.for_base_url(key, "http://127.0.0.1:9999").is_mainnet


@pytest.mark.parametrize(
    ("build", "expected_action"),
    [
        (
            lambda s: s.sign_cancels([(0, 123), (5, 456)]),
            {"type": "cancel", "cancels": [{"a": 0, "o": 123}, {"a": 5, "o": 456}]},
        ),
        (
            lambda s: s.sign_cancels_by_cloid([(2, "0x" + "ab" * 16)]),
            {"type": "cancelByCloid", "cancels": [{"asset": 2, "cloid": "0x" + "ab" * 16}]},
        ),
        (
            lambda s: s.sign_update_leverage(4, 7, is_cross=False),
            {"type": "updateLeverage", "asset": 4, "isCross": False, "leverage": 7},
        ),
        (
            lambda s: s.sign_schedule_cancel(1_700_000_060_000),
            {"type": "scheduleCancel", "time": 1_700_000_060_000},
        ),
        (lambda s: s.sign_schedule_cancel(None), {"type": "scheduleCancel"}),
    ],
    ids=["cancel", "cancelByCloid", "updateLeverage", "scheduleCancel", "scheduleCancel-clear"],
)
def test_signed_actions_have_the_sdk_shape_and_recover(
    build: Callable[[ActionSigner], SignedAction], expected_action: dict[str, Any]
) -> None:
    signer = make_signer()
    signed = build(signer)
    payload = signed.payload()
    assert payload["action"] == expected_action
    assert list(payload["action"]) == list(expected_action)  # key order matters for the msgpack hash
    assert str(signed.action_type) == expected_action["type"]
    assert recover(signed.body) == signer.address


@pytest.mark.parametrize(
    "bad",
    [
        lambda s: s.sign_orders([]),
        lambda s: s.sign_cancels([]),
        lambda s: s.sign_cancels([(0, -1)]),
        lambda s: s.sign_cancels_by_cloid([(0, "0x12")]),
        lambda s: s.sign_update_leverage(0, 0),
        lambda s: s.sign_update_leverage(0, 2.5),
        lambda s: s.sign_orders([OrderSpec(asset=0, is_buy=True, limit_px=0.123456789, sz=1.0)]),
        lambda s: s.sign_orders([OrderSpec(asset=0, is_buy=True, limit_px=1.0, sz=1.0)], grouping="all"),
    ],
)
def test_signer_refuses_malformed_actions(bad: Callable[[ActionSigner], SignedAction]) -> None:
    with pytest.raises(ValueError):
        bad(make_signer())


@pytest.mark.parametrize(
    "kwargs",
    [
        {"limit_px": float("nan")},
        {"limit_px": -1.0},
        {"sz": 0.0},
        {"sz": float("inf")},
        {"asset": -1},
        {"asset": True},
        {"cloid": "0x" + "AB" * 16},
        {"cloid": "abc"},
        {"tif": "Fok"},
    ],
)
def test_order_spec_rejects_bad_fields(kwargs: dict) -> None:
    base = {"asset": 0, "is_buy": True, "limit_px": 10.0, "sz": 1.0}
    with pytest.raises(ValueError):
        OrderSpec(**{**base, **kwargs})


def test_signer_holds_no_transport() -> None:
    signer = make_signer()
    assert not any(isinstance(v, requests.Session | ExchangeTransport) for v in vars(signer).values())


# --- nonces -------------------------------------------------------------------------------------


def test_nonces_strictly_increase_for_rapid_signing() -> None:
    signer = make_signer()
    nonces = [signer.sign_schedule_cancel(None).nonce for _ in range(50)]
    assert all(b > a for a, b in itertools.pairwise(nonces))


def test_nonces_bump_when_the_clock_stalls_or_steps_back() -> None:
    clock = [1000]
    source = NonceSource(lambda: clock[0])
    first = [source.next() for _ in range(3)]
    clock[0] = 900
    second = source.next()
    clock[0] = 5000
    assert first == [1000, 1001, 1002] and second == 1003 and source.next() == 5000


def test_nonces_are_unique_and_increasing_across_threads() -> None:
    source = NonceSource(lambda: 1_700_000_000_000)
    per_thread: list[list[int]] = [[] for _ in range(8)]
    barrier = threading.Barrier(8)

    def worker(out: list[int]) -> None:
        barrier.wait()
        out.extend(source.next() for _ in range(500))

    threads = [threading.Thread(target=worker, args=(out,)) for out in per_thread]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    everything = [n for out in per_thread for n in out]
    assert len(set(everything)) == 4000
    assert all(all(b > a for a, b in itertools.pairwise(out)) for out in per_thread)


# --- cloids and secrets -------------------------------------------------------------------------


def test_cloid_for_is_deterministic_valid_and_accepted_by_the_sdk() -> None:
    a = cloid_for("2026-11-25T09:00Z|BTC|OPEN|1")
    assert a == cloid_for("2026-11-25T09:00Z|BTC|OPEN|1")
    assert a != cloid_for("2026-11-25T09:00Z|BTC|OPEN|2")
    assert is_valid_cloid(a) and len(a) == 34 and a == a.lower()
    assert Cloid(a).to_raw() == a
    with pytest.raises(ValueError):
        cloid_for("")


@pytest.mark.parametrize("bad", ["0x" + "AB" * 16, "0x" + "ab" * 15, "ab" * 17, "0x" + "g" * 32, None, 7])
def test_validate_cloid_rejects(bad: object) -> None:
    assert not is_valid_cloid(bad)
    with pytest.raises(ValueError):
        validate_cloid(bad)


def test_signing_key_redacts_and_refuses_pickling() -> None:
    key = SigningKey.from_hex(SECRET)
    hex_key = SECRET[2:]
    assert hex_key not in repr(key) and hex_key not in str(key) and key.address in repr(key)
    signer = ActionSigner(key, is_mainnet=False)
    assert hex_key not in repr(signer)
    signed = signer.sign_schedule_cancel(None)
    assert "signature" not in repr(signed) and hex_key not in repr(signed)
    with pytest.raises(TypeError):
        pickle.dumps(key)


@pytest.mark.parametrize("bad", ["", "0x1234", "zz" * 32, SECRET + "00"])
def test_signing_key_from_bad_hex_does_not_echo_it(bad: str) -> None:
    with pytest.raises(ValueError) as err:
        SigningKey.from_hex(bad)
    assert not bad or bad not in str(err.value)


# --- precision ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("px", "sz_decimals", "direction", "expected"),
    [
        (65012.345, 5, RoundDirection.NEAREST, 65012.0),
        (1234567.8, 0, RoundDirection.NEAREST, 1234568.0),
        (0.0123456, 0, RoundDirection.NEAREST, 0.012346),
        (1.23456, 2, RoundDirection.NEAREST, 1.2346),
        (1.23451, 2, RoundDirection.UP, 1.2346),
        (1.23459, 2, RoundDirection.DOWN, 1.2345),
        (30135.55, 5, RoundDirection.UP, 30136.0),
        (0.00156549, 0, RoundDirection.NEAREST, 0.001565),
        (2.11049, 1, RoundDirection.NEAREST, 2.1105),
        (99999.5, 3, RoundDirection.UP, 100000.0),
        (101.0, 2, RoundDirection.NEAREST, 101.0),
    ],
)
def test_round_price_to_the_venue_tick(
    px: float, sz_decimals: int, direction: RoundDirection, expected: float
) -> None:
    assert round_price(px, sz_decimals, direction) == expected
    assert is_valid_price(expected, sz_decimals)


@pytest.mark.parametrize(
    ("px", "sz_decimals", "valid"),
    [
        (65000.5, 5, False),
        (65000.0, 5, True),
        (123456.0, 5, True),
        (1.23456, 0, False),
        (1.2345, 2, True),
        (0.001565, 0, True),
        (0.0015655, 0, False),
        (0.0, 0, False),
        (float("nan"), 0, False),
        (-1.0, 0, False),
    ],
)
def test_is_valid_price(px: float, sz_decimals: int, valid: bool) -> None:
    assert is_valid_price(px, sz_decimals) is valid


def test_round_price_refuses_prices_that_round_to_zero() -> None:
    with pytest.raises(ValueError):
        round_price(0.0000001, 5, RoundDirection.DOWN)
    with pytest.raises(ValueError):
        round_price(-3.0, 1)


@settings(max_examples=300, deadline=None)
@given(px=st.floats(min_value=1e-4, max_value=1e7), sz_decimals=st.integers(min_value=0, max_value=5))
def test_round_price_property_brackets_and_is_valid(px: float, sz_decimals: int) -> None:
    try:
        down = round_price(px, sz_decimals, RoundDirection.DOWN)
    except ValueError:
        return  # too small for this asset's tick
    up = round_price(px, sz_decimals, RoundDirection.UP)
    nearest = round_price(px, sz_decimals)
    assert down <= px <= up and nearest in (down, up)
    assert all(is_valid_price(p, sz_decimals) for p in (down, up, nearest))
    assert max_price_decimals(sz_decimals) == 6 - sz_decimals


@pytest.mark.parametrize(
    ("sz", "sz_decimals", "direction", "expected"),
    [
        (0.29, 2, RoundDirection.DOWN, 0.29),
        (256.03, 2, RoundDirection.DOWN, 256.03),
        (1.239, 2, RoundDirection.DOWN, 1.23),
        (0.9999999999995, 0, RoundDirection.DOWN, 0.0),
        (1.2300000000001, 2, RoundDirection.UP, 1.23),
        (1.231, 2, RoundDirection.UP, 1.24),
        (0.000123, 5, RoundDirection.NEAREST, 0.00012),
        (0.0, 3, RoundDirection.DOWN, 0.0),
    ],
)
def test_round_size(sz: float, sz_decimals: int, direction: RoundDirection, expected: float) -> None:
    assert round_size(sz, sz_decimals, direction) == expected


def test_size_validation() -> None:
    assert is_valid_size(0.001, 5) and is_valid_size(208.7, 1) and not is_valid_size(208.75, 1)
    assert not is_valid_size(0.0, 2) and not is_valid_size(float("nan"), 2)
    with pytest.raises(ValueError):
        round_size(-1.0, 2)


def test_aggressive_limit_price_follows_the_sdk_market_semantics() -> None:
    assert aggressive_limit_price(100.0, True, 0.01, 2) == 101.0
    assert aggressive_limit_price(100.0, False, 0.01, 2) == 99.0
    assert aggressive_limit_price(65000.0, True, 0.05, 5) == 68250.0
    with pytest.raises(ValueError):
        aggressive_limit_price(100.0, True, 1.5, 2)
