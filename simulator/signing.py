"""Signature recovery and nonce bookkeeping for the simulated venue's POST /exchange.

Owns the venue side of Hyperliquid's signing scheme: the L1 action hash (msgpack of the action in the
key order received, the nonce, the vault flag and optional expiry), the phantom-agent EIP-712 payload
(source "a" on mainnet, "b" otherwise) and the user-signed payloads (approveAgent). Written against
the wire format so that it checks the official SDK rather than reusing it. Also owns the per-signer
nonce window: a nonce must lie in (T - 2 days, T + 1 day) of the venue clock, must not repeat, and
once 100 nonces are stored must exceed the smallest of them.
"""

from __future__ import annotations

import bisect
from typing import Any

import msgpack
from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils import keccak

from simulator import venue_vocab as vt

ZERO_ADDRESS = "0x0000000000000000000000000000000000000000"
NONCE_PAST_WINDOW_MS = 2 * 24 * 3600 * 1000
NONCE_FUTURE_WINDOW_MS = 1 * 24 * 3600 * 1000
NONCE_SET_SIZE = 100

_EIP712_DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]

APPROVE_AGENT_TYPES = [
    {"name": "hyperliquidChain", "type": "string"},
    {"name": "agentAddress", "type": "address"},
    {"name": "agentName", "type": "string"},
    {"name": "nonce", "type": "uint64"},
]
APPROVE_AGENT_PRIMARY = "HyperliquidTransaction:ApproveAgent"


class SignatureError(ValueError):
    """The signature could not be parsed or recovered (not: recovered to an unknown address)."""


def _address_bytes(address: str) -> bytes:
    raw = address[2:] if address.startswith("0x") else address
    if len(raw) != 40:
        raise SignatureError(f"bad address length: {address!r}")
    return bytes.fromhex(raw)


def l1_action_hash(action: Any, vault_address: str | None, nonce: int, expires_after: int | None) -> bytes:
    """Return keccak256(msgpack(action) ‖ nonce u64be ‖ vault flag[+addr] ‖ [0x00 ‖ expiresAfter u64be]).

    The action must be the decoded JSON with its key order preserved: msgpack is order-sensitive.
    """
    data = msgpack.packb(action)
    data += int(nonce).to_bytes(8, "big")
    if vault_address is None:
        data += b"\x00"
    else:
        data += b"\x01" + _address_bytes(vault_address)
    if expires_after is not None:
        data += b"\x00" + int(expires_after).to_bytes(8, "big")
    return keccak(data)


def _l1_typed_data(connection_id: bytes, is_mainnet: bool) -> dict[str, Any]:
    return {
        "domain": {"chainId": 1337, "name": "Exchange", "verifyingContract": ZERO_ADDRESS, "version": "1"},
        "types": {
            "Agent": [{"name": "source", "type": "string"}, {"name": "connectionId", "type": "bytes32"}],
            "EIP712Domain": _EIP712_DOMAIN_TYPE,
        },
        "primaryType": "Agent",
        "message": {"source": "a" if is_mainnet else "b", "connectionId": connection_id},
    }


def _vrs(signature: Any) -> tuple[int, int, int]:
    if not isinstance(signature, dict):
        raise SignatureError("signature is not an object")
    try:
        r = int(str(signature["r"]), 16)
        s = int(str(signature["s"]), 16)
        v = int(signature["v"])
    except (KeyError, TypeError, ValueError) as e:
        raise SignatureError(f"malformed signature: {e}") from e
    return v, r, s


def _recover(typed: dict[str, Any], signature: Any) -> str:
    v, r, s = _vrs(signature)
    try:
        address = Account.recover_message(encode_typed_data(full_message=typed), vrs=(v, r, s))
    except Exception as e:  # eth_keys raises several unrelated types for a bad point / v / s
        raise SignatureError(f"signature recovery failed: {type(e).__name__}") from e
    return str(address).lower()


def recover_l1_signer(
    action: Any,
    signature: Any,
    nonce: int,
    vault_address: str | None,
    expires_after: int | None,
    is_mainnet: bool,
) -> str:
    """Recover the lowercase address that signed an L1 action (order, cancel, ...); raises SignatureError."""
    try:
        connection_id = l1_action_hash(action, vault_address, nonce, expires_after)
    except (TypeError, ValueError, OverflowError) as e:
        raise SignatureError(f"action cannot be hashed: {e}") from e
    return _recover(_l1_typed_data(connection_id, is_mainnet), signature)


def recover_user_signed(
    message: dict[str, Any],
    signature: Any,
    payload_types: list[dict[str, str]],
    primary_type: str,
    signature_chain_id: str,
) -> str:
    """Recover the signer of a user-signed action (e.g. approveAgent); raises SignatureError."""
    try:
        chain_id = int(signature_chain_id, 16)
    except (TypeError, ValueError) as e:
        raise SignatureError(f"bad signatureChainId: {signature_chain_id!r}") from e
    typed = {
        "domain": {
            "name": "HyperliquidSignTransaction",
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": ZERO_ADDRESS,
        },
        "types": {primary_type: payload_types, "EIP712Domain": _EIP712_DOMAIN_TYPE},
        "primaryType": primary_type,
        "message": message,
    }
    return _recover(typed, signature)


class NonceBook:
    """Per-signer store of the highest nonces seen, enforcing the venue's nonce rules."""

    def __init__(self) -> None:
        self._by_signer: dict[str, list[int]] = {}

    def check(self, signer: str, nonce: int, now_ms: int) -> str | None:
        """Return the venue's error text if `nonce` is unusable for `signer` at venue time `now_ms`."""
        if nonce <= now_ms - NONCE_PAST_WINDOW_MS:
            return vt.nonce_too_old(nonce)
        if nonce >= now_ms + NONCE_FUTURE_WINDOW_MS:
            return vt.nonce_too_new(nonce)
        stored = self._by_signer.get(signer, [])
        i = bisect.bisect_left(stored, nonce)
        if i < len(stored) and stored[i] == nonce:
            return vt.duplicate_nonce(nonce)
        if len(stored) >= NONCE_SET_SIZE and nonce < stored[0]:
            return vt.nonce_too_low(nonce)
        return None

    def record(self, signer: str, nonce: int) -> None:
        """Store a nonce as used; keeps only the NONCE_SET_SIZE highest per signer."""
        stored = self._by_signer.setdefault(signer, [])
        bisect.insort(stored, nonce)
        if len(stored) > NONCE_SET_SIZE:
            del stored[0]
