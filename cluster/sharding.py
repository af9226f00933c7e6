"""Symbol → shard assignment by rendezvous (highest-random-weight) hashing. Pure.

Why rendezvous: every symbol goes to the shard with the highest hash(shard, symbol) weight, so
going from K to K+1 shards moves only the symbols the new shard wins (≈ 1/(K+1) of them) and
removing a shard moves only that shard's symbols; no ring or virtual nodes to tune. The hash is
blake2b (not Python's `hash`, which is salted per process), so the driver, every shard and
every restart agree on the assignment.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable


def _weight(shard_index: int, symbol: str, salt: str) -> int:
    digest = hashlib.blake2b(f"{salt}|{shard_index}|{symbol}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def shard_for(symbol: str, n_shards: int, *, salt: str = "") -> int:
    """Return the shard index in [0, n_shards) that owns `symbol`; raise ValueError if n_shards < 1."""
    if n_shards < 1:
        raise ValueError(f"n_shards must be >= 1, got {n_shards}")
    best_index = 0
    best_weight = -1
    for index in range(n_shards):
        weight = _weight(index, symbol, salt)
        if weight > best_weight:
            best_index, best_weight = index, weight
    return best_index


def assign(symbols: Iterable[str], n_shards: int, *, salt: str = "") -> dict[int, list[str]]:
    """Group symbols by owning shard: {shard_index: [symbols in input order]}, every shard present."""
    groups: dict[int, list[str]] = {index: [] for index in range(n_shards)}
    for symbol in symbols:
        groups[shard_for(symbol, n_shards, salt=salt)].append(symbol)
    return groups


def moved_symbols(symbols: Iterable[str], old_n: int, new_n: int, *, salt: str = "") -> list[str]:
    """Return the symbols whose owning shard changes when the shard count goes old_n → new_n."""
    return [
        symbol
        for symbol in symbols
        if shard_for(symbol, old_n, salt=salt) != shard_for(symbol, new_n, salt=salt)
    ]
