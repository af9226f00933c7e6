"""HIP-3 builder-deployed perp DEXes of the simulated venue: names, collateral, fee scale, asset ids.

Owns which coin belongs to which perp dex and the asset-id arithmetic the venue and the SDK share:
the original dex's coins have asset id = their index in its `meta` universe; the i-th builder dex
(0-based, in `perpDexs` order after the null entry of the original dex) numbers its assets
``110000 + i * 10000 + index`` (hyperliquid-python-sdk 0.24 `Info.__init__`). A builder dex's coins
are named ``dex:COIN`` everywhere (meta, allMids, candles, fills, positions), case kept.

[sim] Simplifications, stated once: every dex's collateral is a USD stablecoin valued at par, and an
account's collateral is one pool shared by all dexes (the venue's "dex abstraction"): each dex's
`clearinghouseState` lists only that dex's positions and margin, while `accountValue` and
`withdrawable` are the whole account's. A builder dex charges the base fee times
``1 + deployerFeeScale`` (the deployer's share is that extra part); fills report the dex's
collateral token as `feeToken`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

BUILDER_ASSET_BASE = 110_000
BUILDER_ASSET_STRIDE = 10_000
MAX_MARKETS_PER_DEX = BUILDER_ASSET_STRIDE
MAX_BUILDER_DEXES = 8
# (name, full name, collateral token, deployerFeeScale): short lower-case names as deployed on the venue
DEX_CATALOGUE: tuple[tuple[str, str, str, float], ...] = (
    ("xyz", "XYZ Equity Perps", "USDC", 1.0),
    ("flx", "Felix Exchange", "USDH", 0.5),
    ("vntl", "Ventuals", "USDE", 1.0),
    ("hyna", "Hyena Perps", "USDC", 0.25),
    ("km", "Kinetiq Markets", "USDH", 0.75),
    ("cash", "Cash Perps", "USDT0", 1.0),
    ("abcd", "ABCD Markets", "USDE", 0.5),
    ("unit", "Unit Perps", "USDC", 1.0),
)
TOKEN_INDEX = {"USDC": 0, "USDH": 360, "USDE": 235, "USDT0": 268}
# a few real-looking tickers first; the rest are generated three-to-five-letter names
_TICKERS = ("TSLA", "kBONK", "AAPL", "GOLD", "NVDA", "SILVER", "XYZ100", "EUR", "JPY", "SPX")


@dataclass(frozen=True, slots=True)
class BuilderDex:
    """One builder-deployed perp dex and its coins (full ``dex:COIN`` names, index order)."""

    name: str
    full_name: str
    deployer: str
    collateral: str
    collateral_token: int
    fee_scale: float
    coins: tuple[str, ...]


def _address(seed: str) -> str:
    return "0x" + hashlib.blake2b(seed.encode(), digest_size=20).hexdigest()


def _tickers(dex: str, count: int) -> list[str]:
    """``count`` distinct coin names for `dex`: catalogue tickers, then hash-derived letters."""
    out = list(_TICKERS[:count])
    seen = set(out)
    n = 0
    while len(out) < count:
        digest = hashlib.blake2b(f"{dex}:{n}".encode(), digest_size=8).digest()
        n += 1
        name = "".join(chr(ord("A") + b % 26) for b in digest[: 3 + digest[7] % 3])
        if name not in seen:
            seen.add(name)
            out.append(name)
    return out


def make_builder_dexes(n_dexes: int, markets_per_dex: int) -> tuple[BuilderDex, ...]:
    """The first `n_dexes` catalogue dexes with `markets_per_dex` coins each (deterministic)."""
    if not 0 <= n_dexes <= MAX_BUILDER_DEXES:
        raise ValueError(f"--builder-dexes must be in 0..{MAX_BUILDER_DEXES}, got {n_dexes}")
    if n_dexes and not 1 <= markets_per_dex <= MAX_MARKETS_PER_DEX:
        raise ValueError(f"--markets-per-dex must be in 1..{MAX_MARKETS_PER_DEX}, got {markets_per_dex}")
    out = []
    for name, full, token, scale in DEX_CATALOGUE[:n_dexes]:
        coins = tuple(f"{name}:{t}" for t in _tickers(name, markets_per_dex))
        out.append(BuilderDex(name=name, full_name=full, deployer=_address(f"deployer:{name}"),
                              collateral=token, collateral_token=TOKEN_INDEX[token], fee_scale=scale,
                              coins=coins))
    return tuple(out)


def dex_of(coin: str) -> str:
    """The perp dex a coin name belongs to ("" = the original dex)."""
    dex, sep, _ = coin.partition(":")
    return dex if sep else ""


class DexTable:
    """Asset ids and per-dex facts over the market's coin list (original dex's coins first)."""

    def __init__(self, coins: Sequence[str], builders: Iterable[BuilderDex] = ()) -> None:
        self.builders = tuple(builders)
        self._by_name = {d.name: d for d in self.builders}
        self._asset_of: dict[str, int] = {}
        self._coins_of: dict[str, list[str]] = {"": []}
        for d in self.builders:
            self._coins_of[d.name] = []
        for coin in coins:
            dex = dex_of(coin)
            if dex not in self._coins_of:
                raise ValueError(f"coin {coin!r} names an unknown perp dex {dex!r}")
            self._coins_of[dex].append(coin)
        for pos, d in enumerate([None, *self.builders]):
            name = "" if d is None else d.name
            base = 0 if d is None else BUILDER_ASSET_BASE + (pos - 1) * BUILDER_ASSET_STRIDE
            for index, coin in enumerate(self._coins_of[name]):
                self._asset_of[coin] = base + index
        self._coin_of = {a: c for c, a in self._asset_of.items()}

    def has_dex(self, dex: str) -> bool:
        return dex == "" or dex in self._by_name

    def coins_of(self, dex: str) -> list[str]:
        """The dex's coins in its meta order; KeyError for an unknown dex."""
        return self._coins_of[dex]

    def asset_of(self, coin: str) -> int:
        return self._asset_of[coin]

    def coin_of(self, asset: int) -> str | None:
        return self._coin_of.get(asset)

    def builder(self, dex: str) -> BuilderDex | None:
        return self._by_name.get(dex)

    def fee_multiplier(self, coin: str) -> float:
        """Fee multiplier of the coin's dex: 1 on the original dex, 1 + deployerFeeScale on a builder's."""
        d = self._by_name.get(dex_of(coin))
        return 1.0 if d is None else 1.0 + d.fee_scale

    def collateral_of(self, coin: str) -> str:
        d = self._by_name.get(dex_of(coin))
        return "USDC" if d is None else d.collateral

    def collateral_index(self, dex: str) -> int:
        d = self._by_name.get(dex)
        return 0 if d is None else d.collateral_token
